"""Start-up times: `pamiqx list-plugins` and `validate` (target: under 1.5 s), and a run's
start-up to its first step (goal: under 5 s).

A run's start-up is the wall time from launching ``pamiqx run`` to its ``start``
event in ``events.jsonl``, which the run writes just before its first step: the
imports, the build of the world, models and curiosity, and opening Aim. It is
measured with Aim on, in a log folder whose Aim repository exists (every run but a
folder's first) and in a fresh one (which creates the repository).
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PAMIQX = str(Path(sys.executable).with_name("pamiqx"))
RUN = [PAMIQX, "run", "experiments/quickstart.toml", "run.max_steps=1"]


def _wall(args: list[str], repeats: int = 5) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        subprocess.run(args, check=True, capture_output=True, cwd=ROOT)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def _to_first_step(log_dir: Path) -> float:
    """Launch a run and return the seconds until its ``start`` event appears."""
    before = _starts(log_dir)
    start = time.perf_counter()
    process = subprocess.Popen(
        [*RUN, f"run.log_dir={log_dir}"],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env={**os.environ, "CI": "1"},
    )
    try:
        while _starts(log_dir) == before:
            if process.poll() is not None and _starts(log_dir) == before:
                raise RuntimeError(f"the run in {log_dir} ended (rc {process.returncode}) early")
            time.sleep(0.01)
        return time.perf_counter() - start
    finally:
        process.wait()


def _starts(log_dir: Path) -> int:
    """How many runs under ``log_dir`` have written their ``start`` event."""
    return sum(
        json.loads(line)["event"] == "start"
        for events in log_dir.glob("quickstart/*/events.jsonl")
        for line in events.read_text().splitlines()
        if line.endswith("}")
    )


def run() -> list[dict[str, object]]:
    """Return the median wall time of each command over 5 runs, and of a run's start-up."""
    rows: list[dict[str, object]] = []
    for label, args in [
        ("pamiqx list-plugins wall time (median of 5)", [PAMIQX, "list-plugins"]),
        (
            "pamiqx validate quickstart wall time (median of 5)",
            [PAMIQX, "validate", "experiments/quickstart.toml"],
        ),
    ]:
        rows.append(
            {
                "name": label,
                "value": _wall(args),
                "unit": "s",
                "command": " ".join(["pamiqx", *args[1:]]),
            }
        )
    command = "pamiqx run experiments/quickstart.toml run.max_steps=1"
    with tempfile.TemporaryDirectory() as tmp:
        fresh = [_to_first_step(Path(tmp) / f"fresh{i}") for i in range(3)]
        shared = [_to_first_step(Path(tmp) / "fresh0") for _ in range(5)]
    rows.append(
        {
            "name": "run start-up to first step, Aim repository exists (median of 5; goal < 5 s)",
            "value": statistics.median(shared),
            "unit": "s",
            "command": command,
        }
    )
    rows.append(
        {
            "name": "run start-up to first step, new Aim repository (median of 3)",
            "value": statistics.median(fresh),
            "unit": "s",
            "command": command,
        }
    )
    return rows


if __name__ == "__main__":
    for row in run():
        print(row)
