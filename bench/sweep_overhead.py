"""Per-trial overhead of `pamiqx sweep` over a plain `pamiqx run` (goal < 10%).

The same short experiment (quickstart, ``run.max_steps=1024``, Aim off) runs
three times as ``pamiqx run`` and three times as the trials of one sweep on a
local Ray (one at a time, ``cpus`` = this machine's CPUs, as a plain run uses
them). A trial's time is the sweep's wall time less the start and stop of a
local Ray (measured alone, once per sweep), divided by the trials: it includes
Ray's scheduling, the trial's worker and the run's process.
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
RUNS = 3
SHORT = ["run.max_steps=1024", "tracking.enabled=false", "run.device=cpu"]


def _plain(folder: Path) -> float:
    times = []
    for i in range(RUNS):
        start = time.perf_counter()
        subprocess.run(
            [
                PAMIQX,
                "run",
                "experiments/quickstart.toml",
                *SHORT,
                f"run.log_dir={folder}/plain{i}",
            ],
            check=True,
            capture_output=True,
            cwd=ROOT,
        )
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def _sweep(folder: Path) -> tuple[float, float, str]:
    sweep = folder / "sweep.toml"
    sweep.write_text(
        f'name = "overhead"\nexperiment = "{ROOT / "experiments" / "quickstart.toml"}"\n'
        f"[grid]\nseed = {list(range(RUNS))}\n"
        f"[resources]\ncpus = {os.cpu_count() or 1}\nmax_concurrent = 1\nmax_failures = 0\n"
    )
    storage = folder / "sweep"
    args = [PAMIQX, "sweep", str(sweep), "--storage", str(storage), *SHORT]
    start = time.perf_counter()
    subprocess.run(args, check=True, capture_output=True, cwd=ROOT, env={**os.environ, "CI": "1"})
    total = time.perf_counter() - start
    finished = [
        json.loads(line)
        for root in (storage / "runs").glob("*")
        for run_dir in (root / "quickstart").iterdir()
        for line in (run_dir / "events.jsonl").read_text().splitlines()
    ]
    assert sum(e["event"] == "end" and e["status"] == "finished" for e in finished) == RUNS
    ray_start = _ray_start()
    command = " ".join(["pamiqx", "sweep", "SWEEP.toml", *SHORT])
    return (total - ray_start) / RUNS, ray_start, command


def _ray_start() -> float:
    code = "import ray; ray.init(include_dashboard=False); ray.shutdown()"
    start = time.perf_counter()
    subprocess.run([sys.executable, "-c", code], check=True, capture_output=True)
    return time.perf_counter() - start


def run() -> list[dict[str, object]]:
    """Return the plain run's and the trial's wall time, the overhead, and Ray's start."""
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        plain = _plain(folder)
        trial, ray_start, command = _sweep(folder)
    plain_command = " ".join(["pamiqx", "run", "experiments/quickstart.toml", *SHORT])
    return [
        {
            "name": "plain pamiqx run wall time (median of 3)",
            "value": plain,
            "unit": "s",
            "command": plain_command,
        },
        {
            "name": "sweep trial wall time (median of 3)",
            "value": trial,
            "unit": "s",
            "command": command,
        },
        {
            "name": "per-trial overhead of a sweep over a plain run (goal < 10%)",
            "value": 100.0 * (trial - plain) / plain,
            "unit": "%",
            "command": command,
        },
        {
            "name": "local Ray start and stop, once per sweep",
            "value": ray_start,
            "unit": "s",
            "command": command,
        },
    ]


if __name__ == "__main__":
    for row in run():
        print(row)
