"""Child of the soak benchmark: a VRChat run whose camera drops out for 2 s every 30 s.

The VRChat plugin runs as in production (pamiq-core threads, its outage
handling, the real OSC actuator sending to 127.0.0.1, where nothing listens),
with the camera replaced by frames that go dark on a wall-clock schedule, at
time scale 10. It runs until SIGTERM (``python -m bench.soak_realtime LOG_DIR``).
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import numpy as np
import numpy.typing as npt

ROOT = Path(__file__).resolve().parents[1]
DROP_EVERY_S = 30.0
DROP_FOR_S = 2.0
# One schedule for every camera the plugin opens: it reopens the device after an
# outage, and a fresh camera must not start dark again (it would never recover).
STARTED = time.monotonic()


class DroppingCamera:
    """Frames that change with every read; none for ``DROP_FOR_S`` every ``DROP_EVERY_S``."""

    def __init__(self) -> None:
        self.reads = 0

    def setup(self) -> None:
        """Nothing to open."""

    def read(self) -> npt.NDArray[np.uint8] | None:
        """Return the next frame, or None while the camera is out."""
        self.reads += 1
        if (time.monotonic() - STARTED) % DROP_EVERY_S >= DROP_EVERY_S - DROP_FOR_S:
            return None
        return np.full((72, 128, 3), (self.reads * 7) % 255, dtype=np.uint8)

    def teardown(self) -> None:
        """Nothing to close."""


def main(log_dir: str) -> int:
    """Run ``experiments/vrchat-none.toml`` with the dropping camera until a signal."""
    from pamiqx_vrchat.plugin import VRChatPlugin
    from rich.console import Console

    from pamiqx.experiment import load_experiment
    from pamiqx.plugins.manager import load_plugins
    from pamiqx.runtime.session import run_experiment

    VRChatPlugin.sensor_factory = DroppingCamera
    manager = load_plugins()
    overrides = [
        "run.max_steps=1000000000",
        "run.device=cpu",
        "run.time_scale=10.0",
        "run.checkpoint_every=20000",
        "tracking.enabled=false",
        f'run.log_dir="{log_dir}"',
        "environment.audio=false",
        "environment.mouse=false",
    ]
    resolved = load_experiment(ROOT / "experiments" / "vrchat-none.toml", overrides, manager)
    with open(os.devnull, "w") as sink:
        return run_experiment(resolved, manager, console=Console(file=sink))


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
