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
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import attrs
import numpy as np
import numpy.typing as npt

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
    """Observes 64x64 frames and records wall-clock times of observations and actions."""

    realtime = True
    control_interval = 0.1

    def __init__(self) -> None:
        self.observed_at: float | None = None
        self.latencies: list[float] = []
        self.acted_at: list[float] = []
        self.rng = np.random.default_rng(0)

    @property
    def observation_spec(self) -> ObservationSpec:
        return ObservationSpec((64, 64, 3), "uint8", "image")

    @property
    def action_spec(self) -> ActionSpec:
        return ActionSpec("discrete", (7,))

    def observe(self) -> EnvStep:
        self.observed_at = time.perf_counter()
        frame = self.rng.integers(0, 255, (64, 64, 3), dtype=np.uint8)
        return EnvStep(frame, 0.0, not self.acted_at)

    def affect(self, action: npt.NDArray[np.int64]) -> None:
        now = time.perf_counter()
        if self.observed_at is not None:
            self.latencies.append(now - self.observed_at)
        self.acted_at.append(now)


@attrs.frozen
class _NoOptions:
    pass


class _BenchPlugins:
    """Registers the fake world with the plugin manager, as a third party would."""

    world = TickingWorld()

    class TickingWorldPlugin(EnvironmentPlugin):
        """A fake 10 Hz real-time world for the benchmark."""

        name = "bench-ticking-world"
        Options = _NoOptions

        def build(self, options: Any, context: BuildContext) -> Environment:
            return _BenchPlugins.world

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
    _BenchPlugins.world = TickingWorld()
    bench = _BenchPlugins()
    manager.register_module(bench, "bench", "0", "bench.realtime")
    with tempfile.TemporaryDirectory() as logs:
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
    if code != 0:
        raise RuntimeError(f"the real-time run ended with exit code {code}")
    world = bench.world
    latency_ms = 1e3 * np.array(world.latencies[10:])  # skip start-up
    intervals_ms = 1e3 * np.diff(world.acted_at[10:])
    ticks = np.maximum(np.round(intervals_ms / 100.0), 1.0)
    jitter_ms = np.abs(intervals_ms - 100.0 * ticks)
    overruns = int((ticks > 1).sum())
    return [
        {
            "name": f"real-time step latency p50 (10 Hz, training running){label}",
            "value": float(np.percentile(latency_ms, 50)),
            "unit": "ms",
            "command": command,
        },
        {
            "name": f"real-time step latency p99 (target < 20 ms){label}",
            "value": float(np.percentile(latency_ms, 99)),
            "unit": "ms",
            "command": command,
        },
        {
            "name": f"control interval jitter p99 (target < 5 ms){label}",
            "value": float(np.percentile(jitter_ms, 99)),
            "unit": "ms",
            "command": command,
        },
        {
            "name": f"control interval jitter max{label}",
            "value": float(jitter_ms.max()),
            "unit": "ms",
            "command": command,
        },
        {
            "name": f"overruns: actions sent a tick late, of {len(intervals_ms)}{label}",
            "value": float(overruns),
            "unit": "steps",
            "command": command,
        },
    ]


if __name__ == "__main__":
    for row in run():
        print(row)
