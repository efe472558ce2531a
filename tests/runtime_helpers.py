"""Small experiments and a metrics-recording test plugin for runtime tests."""

from __future__ import annotations

from pathlib import Path

from tests.fake_dists import write_distribution

TINY_MAZE = """
name = "{name}"
seed = {seed}

[run]
max_steps = {max_steps}
device = "cpu"
num_envs = 2
checkpoint_every = {checkpoint_every}
log_every = 1
log_dir = "{log_dir}"

[environment]
plugin = "sim-maze"
size = 32
map_size = 11
rooms = 2

[models.encoder]
plugin = "conv-encoder"
feature_dim = 32
channels = [8, 16, 16]

[models.policy]
plugin = "actor-critic"
hidden = [32]

[curiosity]
plugin = "{curiosity}"

[policy]
rollout_steps = 32
epochs = 2
minibatch_size = 32

[tracking]
enabled = {tracking}
"""

# A test curiosity that pays for walking forward (discrete action 1), and an
# observer recording every metrics batch, so tests can read the run in-process.
RECORDER = '''
from typing import Any

import attrs
import torch

import pamiqx
from pamiqx.api import Curiosity, CuriosityPlugin

METRICS: list[tuple[int, dict[str, float]]] = []
CALLS = {"rewards": 0, "update": 0}


@attrs.frozen
class Options:
    target_action: int = 1


class ForwardBonus(Curiosity):
    def __init__(self, target: int) -> None:
        self.target = target
        self.scale = torch.nn.Linear(1, 1)

    def modules(self) -> dict[str, torch.nn.Module]:
        return {"scale": self.scale}

    def rewards(self, batch: Any) -> torch.Tensor:
        CALLS["rewards"] += 1
        assert batch.observations.shape[:2] == batch.dones.shape
        return (batch.actions == self.target).float()

    def update(self, batch: Any) -> dict[str, float]:
        CALLS["update"] += 1
        return {"updates": float(CALLS["update"])}


class ForwardBonusPlugin(CuriosityPlugin):
    """Pays intrinsic reward for one chosen action (tests the wiring)."""

    name = "forward-bonus"
    Options = Options

    def build(self, options: Any, context: Any, obs_spec: Any, action_spec: Any) -> Curiosity:
        return ForwardBonus(options.target_action)


@pamiqx.hookimpl
def pamiqx_register_curiosities():
    return [ForwardBonusPlugin]


@pamiqx.hookimpl
def pamiqx_metrics_emitted(step, metrics):
    METRICS.append((step, dict(metrics)))
'''


def install_recorder(root: Path) -> None:
    """Put the recorder plugin distribution on ``root`` (a sys.path folder)."""
    write_distribution(
        root, "pamiqx-recorder", "1.0", {"pamiqx_recorder": RECORDER}, {"rec": "pamiqx_recorder"}
    )


def tiny_maze(
    log_dir: Path,
    name: str = "tiny",
    seed: int = 0,
    max_steps: int = 256,
    checkpoint_every: int = 0,
    curiosity: str = "none",
    tracking: bool = False,
) -> str:
    """Return the TOML of a small, fast maze experiment."""
    return TINY_MAZE.format(
        name=name,
        seed=seed,
        max_steps=max_steps,
        checkpoint_every=checkpoint_every,
        log_dir=log_dir,
        curiosity=curiosity,
        tracking=str(tracking).lower(),
    )


# A real-time world at 10 Hz that records when (in pamiq-core's scaled time) each
# action arrives, and which frame it followed: in ACTION_TIMES when it runs in this
# process, and as lines "time frame action" in the file `log` names (it may run in
# the acting process); `lifecycle` names a file of "setup|teardown pid step" lines.
REALTIME_WORLD = '''
import os
from typing import Any

import attrs
import numpy as np
from pamiq_core import time as pamiq_time

import pamiqx
from pamiqx.api import ActionSpec, EnvStep, Environment, EnvironmentPlugin, ObservationSpec

ACTION_TIMES: list[float] = []


@attrs.frozen
class Options:
    hz: float = 10.0
    log: str = ""
    fail_at: int = -1
    lifecycle: str = ""


class TickingWorld(Environment):
    realtime = True

    def __init__(self, hz: float, log: str, fail_at: int, lifecycle: str) -> None:
        self.fail_at = fail_at
        self.lifecycle = lifecycle
        self.control_interval = 1.0 / hz
        self.rng = np.random.default_rng(0)
        self.t = 0
        self.log = open(log, "a", buffering=1) if log else None

    def _note(self, what: str) -> None:
        if self.lifecycle:
            with open(self.lifecycle, "a") as file:
                file.write(f"{what} {os.getpid()} {self.t}\\n")

    def setup(self) -> None:
        self._note("setup")

    def teardown(self) -> None:
        self._note("teardown")

    def state_dict(self) -> dict[str, Any]:
        return {"t": self.t}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.t = state["t"]

    @property
    def observation_spec(self) -> ObservationSpec:
        return ObservationSpec((16, 16, 3), "uint8", "image")

    @property
    def action_spec(self) -> ActionSpec:
        return ActionSpec("discrete", (3,))

    def observe(self) -> EnvStep:
        if self.t == self.fail_at:
            raise OSError("the camera went away")
        frame = np.full((16, 16, 3), (self.t * 7) % 255, dtype=np.uint8)
        return EnvStep(frame, 0.0, self.t == 0)

    def affect(self, action: Any) -> None:
        now = pamiq_time.perf_counter()
        ACTION_TIMES.append(now)
        if self.log is not None:
            self.log.write(f"{now} {self.t} {int(action)}\\n")
        self.t += 1


class TickingWorldPlugin(EnvironmentPlugin):
    """A 10 Hz fake real-time world."""

    name = "ticking-world"
    Options = Options

    def build(self, options: Any, context: Any) -> Environment:
        return TickingWorld(options.hz, options.log, options.fail_at, options.lifecycle)


@pamiqx.hookimpl
def pamiqx_register_environments():
    return [TickingWorldPlugin]
'''

REALTIME_EXPERIMENT = """
name = "realtime"
seed = 0

[run]
max_steps = {max_steps}
device = "cpu"
time_scale = {time_scale}
checkpoint_every = {checkpoint_every}
log_every = 1
log_dir = "{log_dir}"

[environment]
plugin = "ticking-world"

[models.encoder]
plugin = "conv-encoder"
feature_dim = 32
channels = [8, 16, 16]

[models.policy]
plugin = "actor-critic"
hidden = [32]

[policy]
rollout_steps = 32
epochs = 4
minibatch_size = 32

[tracking]
enabled = false
"""


def install_ticking_world(root: Path) -> None:
    """Put the fake real-time world distribution on ``root``."""
    modules = {"pamiqx_ticking": REALTIME_WORLD}
    write_distribution(root, "pamiqx-ticking", "1.0", modules, {"tick": "pamiqx_ticking"})
