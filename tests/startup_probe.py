"""A world that fails during start-up on request, and helpers to damage and inspect runs.

``install_startup_probe(root)`` writes the ``pamiqx-startup-probe`` distribution
into a folder on ``sys.path``; its environment ``startup-world`` commits the
``fault`` named in its options while it is built or set up (raises, sends
itself SIGTERM or SIGINT, or declares specs that raise).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

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
    Environment,
    EnvironmentPlugin,
    EnvStep,
    ObservationSpec,
    hookimpl,
)


@attrs.frozen
class Options:
    fault: str = "none"


def _signal_and_wait(signum: int) -> None:
    os.kill(os.getpid(), signum)
    time.sleep(60)  # the run must not wait for this to end


class StartupWorld(Environment):
    def __init__(self, options: Options) -> None:
        self.options = options
        self.t = 0

    @property
    def observation_spec(self) -> ObservationSpec:
        if self.options.fault == "spec-raises":
            raise LookupError("the camera resolution is unknown")
        return ObservationSpec((16, 16, 3), "uint8", "image")

    @property
    def action_spec(self) -> ActionSpec:
        return ActionSpec("discrete", (3,))

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

    def observe(self) -> EnvStep:
        return EnvStep(np.full((16, 16, 3), self.t % 255, dtype=np.uint8), 0.0, self.t == 0)

    def affect(self, action: Any) -> None:
        self.t += 1

    def state_dict(self) -> dict[str, Any]:
        return {"t": self.t}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.t = int(state["t"])


class StartupWorldPlugin(EnvironmentPlugin):
    """A world that fails during start-up on request."""

    name = "startup-world"
    Options = Options

    def build(self, options: Any, context: Any) -> Environment:
        if options.fault == "sigint-build":
            _signal_and_wait(signal.SIGINT)
        return StartupWorld(options)


@hookimpl
def pamiqx_register_environments():
    return [StartupWorldPlugin]
'''

EXPERIMENT = """
name = "startup"
seed = 0

[run]
max_steps = {max_steps}
device = "cpu"
num_envs = 2
checkpoint_every = 64
log_every = 1
log_dir = "{log_dir}"

[environment]
plugin = "startup-world"
fault = "{fault}"

[models.encoder]
plugin = "conv-encoder"
feature_dim = 16
channels = [8, 8, 8]

[models.policy]
plugin = "actor-critic"
hidden = [16]

[policy]
rollout_steps = 16
epochs = 1
minibatch_size = 32

[tracking]
enabled = false
"""


def install_startup_probe(root: Path) -> None:
    """Write the ``pamiqx-startup-probe`` distribution into ``root`` (a sys.path folder)."""
    write_distribution(
        root,
        "pamiqx-startup-probe",
        "0.2.0",
        {"pamiqx_startup_probe": MODULE},
        {"startup-probe": "pamiqx_startup_probe"},
        requires=("pamiqx>=0.2,<0.3",),
    )


def startup_experiment(log_dir: Path, fault: str = "none", max_steps: int = 64) -> str:
    """Return the TOML of a small run of ``startup-world``."""
    return EXPERIMENT.format(log_dir=log_dir, fault=fault, max_steps=max_steps)


def rewrite_state(checkpoint: Path, change: Callable[[dict[str, Any]], Any]) -> None:
    """Replace a checkpoint's state by ``change(state)``, with a checksum that matches it."""
    path = checkpoint / "state.pt"
    state = torch.load(path, map_location="cpu", weights_only=True)
    torch.save(change(state), path)
    meta = json.loads((checkpoint / "meta.json").read_text())
    meta["state_sha256"] = hashlib.sha256(path.read_bytes()).hexdigest()
    (checkpoint / "meta.json").write_text(json.dumps(meta))


def rewrite_meta(checkpoint: Path, change: Callable[[dict[str, Any]], Any]) -> None:
    """Replace a checkpoint's ``meta.json`` by ``change(meta)`` (state.pt is left alone)."""
    meta = json.loads((checkpoint / "meta.json").read_text())
    (checkpoint / "meta.json").write_text(json.dumps(change(meta)))


def snapshot(folder: Path) -> dict[str, bytes]:
    """Return every file under ``folder`` with its bytes (to show nothing was written)."""
    return {
        str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()
    }


def events(run_dir: Path) -> list[dict[str, Any]]:
    """Return a run directory's ``events.jsonl`` records."""
    return [json.loads(line) for line in (run_dir / "events.jsonl").read_text().splitlines()]


def flat(out: str) -> str:
    """Return command output on one line (rich wraps long messages)."""
    return " ".join(out.split())


def runs(logs: Path, name: str = "tiny") -> list[Path]:
    """Return the run directories of experiment ``name`` under ``logs``."""
    return sorted((logs / name).iterdir()) if (logs / name).is_dir() else []
