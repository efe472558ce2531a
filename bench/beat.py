"""The real-time beat on sim-maze: an experiment file driven in real time while it trains.

Runs an experiment (the quickstart, or a reference ``-maze`` experiment) with
``run.mode = "realtime"`` on sim-maze at ``--hz`` steps per second for
``--seconds``, time scale 1, training running in its own thread as in any
real-time run, and reports what the world saw:

* step latency: from each observation handed out to the action that follows it
  (the run's ``inference_budget_ms`` by design), p50 / p99 / max;
* jitter: each interval between actions against the nearest whole number of
  ticks (the beat), p50 / p99 / max;
* overruns: intervals spanning more than one tick (an action that missed its
  tick and went at the next one).

The world is sim-maze wrapped by a bench plugin that timestamps ``observe`` and
``affect``. Targets (issue: real time that keeps its beat): jitter p99 under
5 ms and step latency p99 under 20 ms at 10 Hz on a 2-core CPU.

``python -m bench.beat --file experiments/quickstart.toml --hz 10 --seconds 600``;
``python -m bench beat`` runs the quickstart and ``reference/adversarial-maze`` at
10 and 30 Hz for one minute each.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from pamiqx.api import BuildContext, Environment, EnvironmentPlugin, EnvStep
from pamiqx.api.hooks import hookimpl
from pamiqx.envs.sim_maze import SimMazeOptions, SimMazePlugin

ROOT = Path(__file__).resolve().parents[1]
FILES = ("experiments/quickstart.toml", "experiments/reference/adversarial-maze.toml")
RATES = (10.0, 30.0)
SECONDS = 60.0


class TimedWorld(Environment):
    """Delegates to a world and timestamps each observation and action (wall clock)."""

    def __init__(self, inner: Environment) -> None:
        self.inner = inner
        self.realtime = True
        self.control_interval = inner.control_interval
        self.observed_at: list[float] = []
        self.acted_at: list[float] = []

    @property
    def observation_spec(self) -> Any:
        return self.inner.observation_spec

    @property
    def action_spec(self) -> Any:
        return self.inner.action_spec

    def setup(self) -> None:
        self.inner.setup()

    def observe(self) -> EnvStep:
        self.observed_at.append(time.perf_counter())
        return self.inner.observe()

    def affect(self, action: npt.NDArray[np.int64]) -> None:
        self.acted_at.append(time.perf_counter())
        self.inner.affect(action)

    def evaluation_metrics(self) -> dict[str, float]:
        return self.inner.evaluation_metrics()


class _BenchPlugins:
    """Registers ``timed-sim-maze`` (sim-maze's options) with the plugin manager."""

    world: TimedWorld | None = None

    class TimedSimMaze(EnvironmentPlugin):
        """sim-maze, timestamped for the beat benchmark."""

        name = "timed-sim-maze"
        Options = SimMazeOptions

        def build(self, options: SimMazeOptions, context: BuildContext) -> Environment:
            _BenchPlugins.world = TimedWorld(SimMazePlugin().build(options, context))
            return _BenchPlugins.world

    @hookimpl
    def pamiqx_register_environments(self) -> list[type[EnvironmentPlugin]]:
        return [self.TimedSimMaze]


def measure(file: str, hz: float, seconds: float, extra: tuple[str, ...] = ()) -> dict[str, float]:
    """Drive ``file`` on sim-maze in real time at ``hz`` for ``seconds``; the world's view.

    ``extra`` holds further ``KEY=VALUE`` overrides (``run.inference_budget_ms=40``).
    """
    from rich.console import Console

    from pamiqx.experiment import apply_overrides, load_raw, resolve
    from pamiqx.plugins.manager import load_plugins
    from pamiqx.runtime.session import run_experiment

    manager = load_plugins()
    manager.register_module(_BenchPlugins(), "bench", "0", "bench.beat")
    steps = int(hz * seconds)
    with tempfile.TemporaryDirectory() as logs:
        data, sources = load_raw(ROOT / file)
        data = apply_overrides(
            data,
            sources,
            [
                "environment.plugin=timed-sim-maze",
                f"environment.control_hz={hz}",
                "run.mode=realtime",
                "run.num_envs=1",
                f"run.max_steps={steps}",
                "run.device=cpu",
                "run.checkpoint_every=0",
                "tracking.enabled=false",
                f'run.log_dir="{logs}"',
                *extra,
            ],
        )
        resolved = resolve(data, sources, manager)
        with open(os.devnull, "w") as sink:
            code = run_experiment(resolved, manager, console=Console(file=sink))
    if code != 0:
        raise RuntimeError(f"the real-time run of {file} ended with exit code {code}")
    world = _BenchPlugins.world
    assert world is not None
    return summarise(world.observed_at, world.acted_at, 1.0 / hz)


def summarise(observed_at: list[float], acted_at: list[float], interval: float) -> dict[str, float]:
    """Latency, jitter against the tick grid and overruns (milliseconds and counts).

    The first 10 steps (start-up) are left out.
    """
    observed = np.asarray(observed_at[10 : len(acted_at)])
    acted = np.asarray(acted_at[10:])
    latency = 1e3 * (acted - observed)
    intervals = np.diff(acted)
    ticks = np.maximum(np.round(intervals / interval), 1.0)
    jitter = 1e3 * np.abs(intervals - ticks * interval)
    out: dict[str, float] = {"steps": float(len(acted)), "overruns": float((ticks > 1).sum())}
    for name, values in (("latency_ms", latency), ("jitter_ms", jitter)):
        out[f"{name}_p50"] = float(np.percentile(values, 50))
        out[f"{name}_p99"] = float(np.percentile(values, 99))
        out[f"{name}_max"] = float(values.max())
    return out


def run() -> list[dict[str, object]]:
    """Each of :data:`FILES` at each of :data:`RATES`, one minute, in its own process."""
    from bench.training_speed import run_json

    rows: list[dict[str, object]] = []
    for file in FILES:
        for hz in RATES:
            command = f"python -m bench.beat --file {file} --hz {hz:g} --seconds {SECONDS:g}"
            args = ["-m", "bench.beat", "--file", file, "--hz", str(hz), "--seconds", str(SECONDS)]
            result = run_json(args)
            rows.append(
                {
                    "name": f"real-time sim-maze, {file}, {hz:g} Hz, training running: "
                    "jitter p50 / p99 / max (ms); overruns",
                    "value": result["jitter_ms_p99"],
                    "unit": "ms",
                    "command": command,
                    **result,
                }
            )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--file", default=FILES[0], help="experiment file")
    parser.add_argument("--hz", type=float, default=10.0)
    parser.add_argument("--seconds", type=float, default=SECONDS)
    parser.add_argument(
        "--set", action="append", default=[], metavar="KEY=VALUE", help="extra override"
    )
    args = parser.parse_args()
    print(json.dumps(measure(args.file, args.hz, args.seconds, tuple(args.set))))


if __name__ == "__main__":
    main()
