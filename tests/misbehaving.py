"""A plugin distribution whose world and curiosity break their contract on request (for probes).

``install_misbehaving(root)`` writes it as an installed distribution
(``pamiqx-misbehaving``) into a folder on ``sys.path``. Its environment
``faulty-world`` and curiosity ``faulty-curiosity`` behave until step
``at_step`` and then commit the ``fault`` named in their options; the world's
start-up faults (``raise-setup``, ``spec-raises``, ``sigterm-setup``,
``sigterm-swallowed``, ``sigint-build``) strike while it is built or set up.
"""

from __future__ import annotations

from pathlib import Path

from tests.fake_dists import write_distribution

MODULE = '''
import os
import signal
import time
from typing import Any

import attrs
import numpy as np

from pamiqx.api import (
    ActionSpec,
    Curiosity,
    CuriosityPlugin,
    EnvironmentPlugin,
    Environment,
    EnvStep,
    ObservationSpec,
    hookimpl,
)


@attrs.frozen
class WorldOptions:
    fault: str = "none"
    at_step: int = 0


def _signal_and_wait(signum: int) -> None:
    os.kill(os.getpid(), signum)
    time.sleep(60)  # the run must not wait for this to end


class FaultyWorld(Environment):
    def __init__(self, options: WorldOptions) -> None:
        self.options = options
        self.t = 0

    @property
    def observation_spec(self) -> ObservationSpec:
        if self.options.fault == "spec-raises":
            raise LookupError("the camera resolution is unknown")
        return ObservationSpec((16, 16, 3), "uint8", "image")

    def setup(self) -> None:
        fault = self.options.fault
        if fault == "raise-setup":
            raise ValueError("the calibration file is empty")
        if fault == "sigterm-setup":
            _signal_and_wait(signal.SIGTERM)
        if fault == "sigterm-swallowed":
            try:  # a plugin that catches Exception does not swallow the interruption
                _signal_and_wait(signal.SIGTERM)
            except Exception:
                pass

    @property
    def action_spec(self) -> ActionSpec:
        return ActionSpec("discrete", (3,))

    def _now(self, fault: str) -> bool:
        return self.options.fault == fault and self.t >= self.options.at_step

    def observe(self) -> EnvStep:
        frame: Any = np.full((16, 16, 3), (self.t * 7) % 255, dtype=np.uint8)
        reward: Any = 0.0
        if self._now("float64"):
            frame = frame.astype(np.float64)
        if self._now("shape"):
            frame = frame[:8]
        if self._now("rank"):
            frame = frame[..., 0]
        if self._now("list"):
            frame = frame.tolist()
        if self._now("nan-reward"):
            reward = float("nan")
        if self._now("string-reward"):
            reward = "1.0"
        if self._now("raise-observe"):
            raise OSError("the simulator socket closed")
        return EnvStep(frame, reward, self.t == 0)

    def affect(self, action: Any) -> None:
        if self._now("raise-affect"):
            raise RuntimeError("actuator jammed")
        self.t += 1

    def state_dict(self) -> dict[str, Any]:
        if self._now("raise-state"):
            raise ValueError("cannot serialise the world")
        return {"t": self.t}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.t = int(state["t"])


class FaultyWorldPlugin(EnvironmentPlugin):
    """A world that breaks its contract on request."""

    name = "faulty-world"
    Options = WorldOptions

    def build(self, options: Any, context: Any) -> Environment:
        if options.fault == "raise-build":
            raise KeyError("missing asset")
        if options.fault == "sigint-build":
            _signal_and_wait(signal.SIGINT)
        return FaultyWorld(options)


@attrs.frozen
class CuriosityOptions:
    fault: str = "none"
    at_update: int = 0
    online: bool = False


class FaultyCuriosity(Curiosity):
    def __init__(self, options: CuriosityOptions) -> None:
        import torch

        self.options = options
        self.updates = 0
        self.steps = 0
        self.net = torch.nn.Linear(1, 1)
        self.style = "online" if options.online else "batch"

    def _now(self, fault: str) -> bool:
        return self.options.fault == fault and self.updates >= self.options.at_update

    def modules(self) -> dict[str, Any]:
        return {"net": self.net}

    def agent_step(self, observation: Any, action: Any, episode_start: Any) -> Any:
        import torch

        if self._now("raise-agent-step"):
            raise ZeroDivisionError("division by zero")
        if action is None:
            return None
        rewards = torch.ones(observation.shape[0])
        if self._now("nan-online"):
            rewards[0] = float("nan")
        if self._now("online-shape"):
            rewards = torch.ones(observation.shape[0], 2)
        return rewards

    def rewards(self, batch: Any) -> Any:
        import torch

        if self._now("raise-rewards"):
            raise IndexError("index 9 is out of bounds")
        if batch.intrinsic is not None:
            return batch.intrinsic
        rewards = torch.zeros(batch.shape)
        if self._now("nan-rewards"):
            rewards[0, 0] = float("inf")
        if self._now("rewards-shape"):
            return rewards[:-1]
        if self._now("numpy-rewards"):
            return rewards.numpy()
        return rewards

    def update(self, batch: Any) -> dict[str, float]:
        self.updates += 1
        if self._now("raise-update"):
            raise RuntimeError("CUDA error: an illegal memory access was encountered")
        if self._now("nan-metric"):
            return {"loss": float("nan")}
        if self._now("nan-weights"):
            import torch

            with torch.no_grad():
                self.net.weight.fill_(float("nan"))
        return {"loss": 1.0}

    def state_dict(self) -> dict[str, Any]:
        if self._now("raise-state"):
            raise TypeError("cannot pickle the replay buffer")
        return super().state_dict()


class FaultyCuriosityPlugin(CuriosityPlugin):
    """A curiosity that breaks its contract on request."""

    name = "faulty-curiosity"
    Options = CuriosityOptions

    def build(self, options: Any, context: Any, observation_spec: Any, action_spec: Any) -> Any:
        if options.fault == "raise-build":
            raise ImportError("libfancy.so: cannot open shared object file")
        return FaultyCuriosity(options)


@hookimpl
def pamiqx_register_environments():
    return [FaultyWorldPlugin]


@hookimpl
def pamiqx_register_curiosities():
    return [FaultyCuriosityPlugin]
'''

EXPERIMENT = """
name = "probe"
seed = 0

[run]
max_steps = {max_steps}
device = "cpu"
num_envs = 2
checkpoint_every = 64
log_every = 1
log_dir = "{log_dir}"

[environment]
plugin = "faulty-world"
fault = "{world_fault}"
at_step = {world_at}

[models.encoder]
plugin = "conv-encoder"
feature_dim = 16
channels = [8, 8, 8]

[models.policy]
plugin = "actor-critic"
hidden = [16]

[curiosity]
plugin = "faulty-curiosity"
fault = "{curiosity_fault}"
at_update = {curiosity_at}
online = {online}

[policy]
rollout_steps = 16
epochs = 1
minibatch_size = 32

[tracking]
enabled = false
"""


def install_misbehaving(root: Path) -> None:
    """Write the ``pamiqx-misbehaving`` distribution into ``root`` (a sys.path folder)."""
    write_distribution(
        root,
        "pamiqx-misbehaving",
        "0.2.0",
        {"pamiqx_misbehaving": MODULE},
        {"misbehaving": "pamiqx_misbehaving"},
        requires=("pamiqx>=0.2,<0.3",),
    )


def probe_experiment(
    log_dir: Path,
    world_fault: str = "none",
    world_at: int = 0,
    curiosity_fault: str = "none",
    curiosity_at: int = 0,
    online: bool = False,
    max_steps: int = 256,
) -> str:
    """Return the TOML of a small run of the misbehaving plugins."""
    return EXPERIMENT.format(
        log_dir=log_dir,
        world_fault=world_fault,
        world_at=world_at,
        curiosity_fault=curiosity_fault,
        curiosity_at=curiosity_at,
        online=str(online).lower(),
        max_steps=max_steps,
    )
