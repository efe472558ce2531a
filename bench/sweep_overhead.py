"""Per-trial overhead of `pamiqx sweep` over a plain `pamiqx run` (goal < 10%).

The same short experiment (quickstart, ``run.max_steps=1024``, Aim off) runs
three times as ``pamiqx run``, and as the trials of two sweeps on a local Ray,
of 2 and of 6 trials (one at a time, ``cpus`` = this machine's CPUs, as a plain
run uses them). A trial's time is the marginal cost of a trial, ``(T6 - T2) / 4``:
Ray's scheduling, the trial's worker and the run's process, without the costs a
sweep pays once (starting Ray, validating every trial, the driver's own start-up),
which are reported on their own row.
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
SWEEPS = (2, 6)  # trials in each of the two sweeps
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


def _sweep(folder: Path, trials: int) -> float:
    """Run a sweep of ``trials`` seeds of the short experiment; return its wall time."""
    sweep = folder / f"sweep{trials}.toml"
    sweep.write_text(
        f'name = "overhead"\nexperiment = "{ROOT / "experiments" / "quickstart.toml"}"\n'
        f"[grid]\nseed = {list(range(trials))}\n"
        f"[resources]\ncpus = {os.cpu_count() or 1}\nmax_concurrent = 1\nmax_failures = 0\n"
    )
    storage = folder / f"sweep{trials}"
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
    assert sum(e["event"] == "end" and e["status"] == "finished" for e in finished) == trials
    return total


def run() -> list[dict[str, object]]:
    """Return the plain run's and a trial's wall time, the overhead, and a sweep's fixed cost."""
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        plain = _plain(folder)
        small, large = (_sweep(folder, trials) for trials in SWEEPS)
    trial = (large - small) / (SWEEPS[1] - SWEEPS[0])
    fixed = small - SWEEPS[0] * trial
    plain_command = " ".join(["pamiqx", "run", "experiments/quickstart.toml", *SHORT])
    command = " ".join(["pamiqx", "sweep", "SWEEP.toml", *SHORT])
    return [
        {
            "name": "plain pamiqx run wall time (median of 3)",
            "value": plain,
            "unit": "s",
            "command": plain_command,
        },
        {
            "name": "sweep trial wall time ((6-trial sweep - 2-trial sweep) / 4)",
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
            "name": "a sweep's cost paid once (local Ray, validation, driver)",
            "value": fixed,
            "unit": "s",
            "command": command,
        },
    ]


if __name__ == "__main__":
    for row in run():
        print(row)
