"""The real-time beat: an experiment file driven in real time while it trains.

Runs an experiment (the quickstart, or a reference ``-maze`` experiment) with
``run.mode = "realtime"`` at ``--hz`` steps per second for ``--seconds``, time
scale 1, training running as in any real-time run (acting in its own process
unless ``--set run.acting=thread``), and reports what the world saw:

* step latency: from each observation handed out to the action that follows it
  (the run's ``inference_budget_ms`` by design), p50 / p99 / max;
* jitter: each interval between actions against the nearest whole number of
  ticks (the beat), p50 / p99 / max;
* overruns: intervals spanning more than one tick (an action that missed its
  tick and went at the next one).

The world (``--world``) is ``sim-maze``, or ``vrchat``: the VRChat plugin as in
production (its outage handling, its real ``SmoothOscActuator``) with the
camera replaced by sim-maze frames read from a file and OSC sent to a loopback
socket of the benchmark, which counts the datagrams. Either is wrapped by a
bench plugin that timestamps ``observe`` and ``affect`` into a file (the world
runs in the acting process). Targets (issue: real time that keeps its beat):
jitter p99 under 5 ms and step latency p99 under 20 ms at 10 Hz on a 2-core CPU.

``python -m bench.beat --file experiments/quickstart.toml --hz 10 --seconds 600
[--world vrchat]``; ``python -m bench beat`` runs the quickstart and
``reference/adversarial-maze`` at 10 and 30 Hz in both worlds, one minute each.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import socket
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import attrs
import numpy as np
import numpy.typing as npt
from pamiqx_vrchat.plugin import VRChatOptions, VRChatPlugin

from pamiqx.api import BuildContext, Environment, EnvironmentPlugin, EnvStep
from pamiqx.api.hooks import hookimpl
from pamiqx.envs.sim_maze import SimMazeOptions, SimMazePlugin
from pamiqx.evaluation.probe import random_walk

ROOT = Path(__file__).resolve().parents[1]
FILES = ("experiments/quickstart.toml", "experiments/reference/adversarial-maze.toml")
RATES = (10.0, 30.0)
WORLDS = ("sim-maze", "vrchat")
SECONDS = 60.0


class TimedWorld(Environment):
    """Delegates to a world and timestamps each observation and action (wall clock).

    The times go to a file, one line each (``o TIME`` or ``a TIME``): the world may
    run in the run's acting process.
    """

    def __init__(self, inner: Environment, times: Path) -> None:
        self.inner = inner
        self.realtime = True
        self.control_interval = inner.control_interval
        self.times = times.open("a", buffering=1)

    @property
    def observation_spec(self) -> Any:
        return self.inner.observation_spec

    @property
    def action_spec(self) -> Any:
        return self.inner.action_spec

    def setup(self) -> None:
        self.inner.setup()

    def teardown(self) -> None:
        self.inner.teardown()

    def on_paused(self) -> None:
        self.inner.on_paused()

    def on_resumed(self) -> None:
        self.inner.on_resumed()

    def state_dict(self) -> dict[str, Any]:
        return self.inner.state_dict()

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.inner.load_state_dict(state)

    def observe(self) -> EnvStep:
        self.times.write(f"o {time.perf_counter()}\n")
        return self.inner.observe()

    def affect(self, action: npt.NDArray[np.int64]) -> None:
        self.times.write(f"a {time.perf_counter()}\n")
        self.inner.affect(action)

    def evaluation_metrics(self) -> dict[str, float]:
        return self.inner.evaluation_metrics()


class FileCamera:
    """A camera whose frames come from a ``.npy`` file of ``(N, H, W, 3)`` uint8, looped."""

    def __init__(self, path: Path) -> None:
        self.frames = np.load(path)
        self.reads = 0

    def setup(self) -> None:
        """Nothing to open."""

    def read(self) -> npt.NDArray[np.uint8]:
        """Return the next frame."""
        frame: npt.NDArray[np.uint8] = self.frames[self.reads % len(self.frames)]
        self.reads += 1
        return frame

    def teardown(self) -> None:
        """Nothing to close."""


class OscLoopback:
    """A UDP socket on 127.0.0.1 that counts the OSC datagrams the VRChat plugin sends."""

    def __init__(self) -> None:
        self.socket = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.socket.bind(("127.0.0.1", 0))
        self.socket.settimeout(0.2)
        self.port: int = self.socket.getsockname()[1]
        self.datagrams = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._receive, daemon=True)
        self._thread.start()

    def _receive(self) -> None:
        while not self._stop.is_set():
            try:
                self.socket.recv(4096)
            except TimeoutError:
                continue
            self.datagrams += 1

    def close(self) -> None:
        """Stop receiving."""
        self._stop.set()
        self._thread.join()
        self.socket.close()


@attrs.frozen
class TimedSimMazeOptions(SimMazeOptions):
    """sim-maze's options, and the file the times go to.

    Paths travel as options (not as globals of this module) because a spawned
    acting process (``run.acting_start = "spawn"``, CUDA runs) builds the world
    again from them.
    """

    times: str = ""


@attrs.frozen
class TimedVRChatOptions(VRChatOptions):
    """The VRChat plugin's options, the file the times go to and the camera's frames."""

    times: str = ""
    frames: str = ""


class TimedSimMaze(EnvironmentPlugin):
    """sim-maze, timestamped for the beat benchmark."""

    name = "timed-sim-maze"
    Options = TimedSimMazeOptions

    def build(self, options: TimedSimMazeOptions, context: BuildContext) -> Environment:
        return TimedWorld(SimMazePlugin().build(options, context), Path(options.times))


class TimedVRChat(EnvironmentPlugin):
    """The VRChat plugin on a file-backed camera and its real OSC actuator, timestamped."""

    name = "timed-vrchat"
    Options = TimedVRChatOptions

    def build(self, options: TimedVRChatOptions, context: BuildContext) -> Environment:
        VRChatPlugin.sensor_factory = functools.partial(FileCamera, Path(options.frames))
        return TimedWorld(VRChatPlugin().build(options, context), Path(options.times))


class _BenchPlugins:
    """Registers ``timed-sim-maze`` and ``timed-vrchat`` with the plugin manager."""

    @hookimpl
    def pamiqx_register_environments(self) -> list[type[EnvironmentPlugin]]:
        return [TimedSimMaze, TimedVRChat]


def measure(
    file: str, hz: float, seconds: float, extra: tuple[str, ...] = (), world: str = "sim-maze"
) -> dict[str, float]:
    """Drive ``file`` in real time at ``hz`` for ``seconds``; the world's view.

    ``extra`` holds further ``KEY=VALUE`` overrides (``run.inference_budget_ms=40``).
    ``world`` is ``sim-maze`` (the file's own maze) or ``vrchat`` (the VRChat plugin,
    its camera replaced by sim-maze frames read from a file, its OSC actuator sending
    to a loopback socket here).
    """
    from rich.console import Console

    from pamiqx.experiment import apply_overrides, load_raw, resolve
    from pamiqx.plugins.manager import load_plugins
    from pamiqx.runtime.session import run_experiment

    manager = load_plugins()
    manager.register_module(_BenchPlugins(), "bench", "0", "bench.beat")
    steps = int(hz * seconds)
    with tempfile.TemporaryDirectory() as logs:
        times = Path(logs) / "times.txt"
        data, sources = load_raw(ROOT / file)
        loopback = None
        if world == "vrchat":
            frames = Path(logs) / "frames.npy"
            np.save(frames, random_walk(300, seed=0).frames)
            loopback = OscLoopback()
            data["environment"] = {
                "plugin": "timed-vrchat",
                "osc_port": loopback.port,
                "frames": str(frames),
            }
        else:
            data["environment"]["plugin"] = "timed-sim-maze"
        data["environment"]["times"] = str(times)
        data = apply_overrides(
            data,
            sources,
            [
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
        observed, acted = read_times(times)
        if loopback is not None:
            loopback.close()
    if code != 0:
        raise RuntimeError(f"the real-time run of {file} ended with exit code {code}")
    out = summarise(observed, acted, 1.0 / hz)
    if loopback is not None:
        out["osc_datagrams"] = float(loopback.datagrams)
    return out


def read_times(path: Path) -> tuple[list[float], list[float]]:
    """Return the observation and action times a :class:`TimedWorld` wrote."""
    lines = [line.split() for line in path.read_text().splitlines()]
    observed = [float(t) for kind, t in lines if kind == "o"]
    acted = [float(t) for kind, t in lines if kind == "a"]
    return observed, acted


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
    """Each of :data:`FILES` at each of :data:`RATES` in each world, in its own process."""
    from bench.training_speed import run_json

    rows: list[dict[str, object]] = []
    for world in WORLDS:
        for file in FILES:
            for hz in RATES:
                command = (
                    f"python -m bench.beat --file {file} --hz {hz:g} --seconds {SECONDS:g}"
                    f" --world {world}"
                )
                result = run_json(command.split()[1:])
                rows.append(
                    {
                        "name": f"real-time {world}, {file}, {hz:g} Hz, training running: "
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
    parser.add_argument("--world", choices=("sim-maze", "vrchat"), default="sim-maze")
    parser.add_argument("--hz", type=float, default=10.0)
    parser.add_argument("--seconds", type=float, default=SECONDS)
    parser.add_argument(
        "--set", action="append", default=[], metavar="KEY=VALUE", help="extra override"
    )
    args = parser.parse_args()
    print(json.dumps(measure(args.file, args.hz, args.seconds, tuple(args.set), args.world)))


if __name__ == "__main__":
    main()
