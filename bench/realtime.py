"""Real-time control: a fake 10 Hz world with PPO training concurrently, at time scale 1.

Reports, as the world sees it, the step latency (observation out -> action in,
p50 and p99; the run's ``inference_budget_ms`` by design), the control
interval's jitter (p99 and max of each interval's distance from a whole number
of ticks: the beat) and the overruns (intervals spanning more than one tick,
where a late action went out at the next tick). Targets: p99 latency under
20 ms on the CPU, jitter under 5 ms. ``python -m bench realtime``.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import attrs
import numpy as np
import numpy.typing as npt

from bench.beat import TimedWorld, read_times, summarise
from pamiqx.api import (
    ActionSpec,
    BuildContext,
    Environment,
    EnvironmentPlugin,
    EnvStep,
    ObservationSpec,
)
from pamiqx.api.hooks import hookimpl

ROOT = Path(__file__).resolve().parents[1]
COMMAND = "python -m bench realtime"
STEPS = 600  # one minute at 10 Hz


class TickingWorld(Environment):
    """Observes random 64x64 frames at 10 Hz (timed by :class:`bench.beat.TimedWorld`)."""

    realtime = True
    control_interval = 0.1

    def __init__(self) -> None:
        self.rng = np.random.default_rng(0)
        self.steps = 0

    @property
    def observation_spec(self) -> ObservationSpec:
        return ObservationSpec((64, 64, 3), "uint8", "image")

    @property
    def action_spec(self) -> ActionSpec:
        return ActionSpec("discrete", (7,))

    def observe(self) -> EnvStep:
        frame = self.rng.integers(0, 255, (64, 64, 3), dtype=np.uint8)
        return EnvStep(frame, 0.0, self.steps == 0)

    def affect(self, action: npt.NDArray[np.int64]) -> None:
        self.steps += 1


@attrs.frozen
class _NoOptions:
    pass


class _BenchPlugins:
    """Registers the fake world with the plugin manager, as a third party would."""

    times: Path | None = None

    class TickingWorldPlugin(EnvironmentPlugin):
        """A fake 10 Hz real-time world for the benchmark."""

        name = "bench-ticking-world"
        Options = _NoOptions

        def build(self, options: Any, context: BuildContext) -> Environment:
            assert _BenchPlugins.times is not None
            return TimedWorld(TickingWorld(), _BenchPlugins.times)

    @hookimpl
    def pamiqx_register_environments(self) -> list[type[EnvironmentPlugin]]:
        return [self.TickingWorldPlugin]


def run() -> list[dict[str, object]]:
    """Run one minute of real-time control with training and report latency and jitter."""
    return measure()


def measure(
    extra: Sequence[str] = (), label: str = "", command: str = COMMAND, steps: int = STEPS
) -> list[dict[str, object]]:
    """Run ``steps`` steps of real-time control with training; report latency and jitter.

    Args:
        extra: Further ``KEY=VALUE`` overrides of the measured experiment.
        label: Appended to each row's name (what ``extra`` changes).
        command: The command that reproduces the rows.
        steps: Steps at 10 Hz.
    """
    from rich.console import Console

    from pamiqx.experiment import apply_overrides, load_raw, resolve
    from pamiqx.plugins.manager import load_plugins
    from pamiqx.runtime.session import run_experiment

    manager = load_plugins()
    manager.register_module(_BenchPlugins(), "bench", "0", "bench.realtime")
    with tempfile.TemporaryDirectory() as logs:
        _BenchPlugins.times = times = Path(logs) / "times.txt"
        data, sources = load_raw(ROOT / "experiments" / "vrchat-none.toml")
        data = apply_overrides(
            data,
            sources,
            [
                "environment.plugin=bench-ticking-world",
                f"run.max_steps={steps}",
                "run.device=cpu",
                "tracking.enabled=false",
                f'run.log_dir="{logs}"',
                *extra,
            ],
        )
        resolved = resolve(data, sources, manager)
        with open(os.devnull, "w") as sink:
            code = run_experiment(resolved, manager, console=Console(file=sink))
        observed, acted = read_times(times)
    if code != 0:
        raise RuntimeError(f"the real-time run ended with exit code {code}")
    beat = summarise(observed, acted, 0.1)
    return [
        {
            "name": f"real-time step latency p50 (10 Hz, training running){label}",
            "value": beat["latency_ms_p50"],
            "unit": "ms",
            "command": command,
        },
        {
            "name": f"real-time step latency p99 (target < 20 ms){label}",
            "value": beat["latency_ms_p99"],
            "unit": "ms",
            "command": command,
        },
        {
            "name": f"control interval jitter p99 (target < 5 ms){label}",
            "value": beat["jitter_ms_p99"],
            "unit": "ms",
            "command": command,
        },
        {
            "name": f"control interval jitter max{label}",
            "value": beat["jitter_ms_max"],
            "unit": "ms",
            "command": command,
        },
        {
            "name": f"overruns: actions sent a tick late, of {beat['steps']:.0f}{label}",
            "value": beat["overruns"],
            "unit": "steps",
            "command": command,
        },
    ]


if __name__ == "__main__":
    for row in run():
        print(row)
