"""Soak: resident memory of long runs stays flat after warm-up.

Two runs, each in its own process, sampled every few seconds from
``/proc/<pid>/status`` (VmRSS):

* lock-step: the quickstart (RND on sim-maze) for ``PAMIQX_SOAK_SECONDS``
  (default 1,800 s), then SIGTERM (it checkpoints and exits 143);
* real time: the VRChat plugin against a fake camera that drops out for two
  seconds every 30 s and a recording actuator, at time scale 10, for the same
  time (``python -m bench.soak_realtime`` is the child).

For each: RSS after warm-up (the first 20% of the samples) and at the end, the
least-squares slope in MiB per hour and the largest deviation from the first
post-warm-up sample (target: within 5%). ``python -m bench soak``; set
``PAMIQX_SOAK_SECONDS=120`` for a short check, ``PAMIQX_SOAK_PARTS=realtime`` for one part.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
SECONDS = float(os.environ.get("PAMIQX_SOAK_SECONDS", "1800"))
PARTS = os.environ.get("PAMIQX_SOAK_PARTS", "lockstep,realtime").split(",")
SAMPLE_EVERY = 5.0
COMMAND = "PAMIQX_SOAK_SECONDS=1800 python -m bench soak"


def rss_mib(pid: int) -> float | None:
    """Return a process's resident memory in MiB, or None once it has exited."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except (FileNotFoundError, ProcessLookupError):
        return None
    return None


def sample(command: list[str], seconds: float, env: dict[str, str]) -> tuple[list[float], int]:
    """Run a command for ``seconds``, sampling its RSS; stop it with SIGTERM; return samples."""
    process = subprocess.Popen(
        command, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
    )
    samples: list[float] = []
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and process.poll() is None:
        time.sleep(SAMPLE_EVERY)
        value = rss_mib(process.pid)
        if value is not None:
            samples.append(value)
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
    try:
        _, stderr = process.communicate(timeout=120)
    except subprocess.TimeoutExpired:
        process.kill()
        _, stderr = process.communicate()
    if process.returncode not in (0, 143):
        raise RuntimeError(f"{command} ended with {process.returncode}: {stderr[-2000:]}")
    return samples, process.returncode


def summary(label: str, samples: list[float]) -> list[dict[str, object]]:
    """Return the rows of one soak: RSS after warm-up and at the end, slope, deviation."""
    if len(samples) < 10:
        raise RuntimeError(f"{label}: only {len(samples)} memory samples; run longer")
    steady = np.array(samples[len(samples) // 5 :])
    hours = np.arange(len(steady)) * SAMPLE_EVERY / 3600
    slope = float(np.polyfit(hours, steady, 1)[0])
    deviation = float(100 * np.max(np.abs(steady - steady[0])) / steady[0])
    minutes = SECONDS / 60
    return [
        {"name": f"{label}: RSS after warm-up", "value": float(steady[0]), "unit": "MiB"},
        {"name": f"{label}: RSS at the end", "value": float(steady[-1]), "unit": "MiB"},
        {"name": f"{label}: RSS slope after warm-up", "value": slope, "unit": "MiB/h"},
        {
            "name": f"{label}: largest RSS change after warm-up, {minutes:.0f} min (target < 5%)",
            "value": deviation,
            "unit": "%",
        },
    ]


def outcome(label: str, runs: Path) -> list[dict[str, object]]:
    """Read the steps and camera outages from the real-time run's final checkpoint."""
    from pamiqx.checkpoint import list_checkpoints, load_checkpoint

    [run_dir] = list(runs.iterdir())
    state, _ = load_checkpoint(list_checkpoints(run_dir)[-1], "vrchat-none")
    world = state["envs"][0]
    return [
        {
            "name": f"{label}: steps in the final checkpoint",
            "value": int(state["step"]),
            "unit": "",
        },
        {"name": f"{label}: camera outages survived", "value": int(world["outages"]), "unit": ""},
    ]


def run() -> list[dict[str, object]]:
    """Soak a lock-step and a real-time run; return their memory rows."""
    rows: list[dict[str, object]] = []
    with tempfile.TemporaryDirectory() as logs:
        env = {**os.environ, "PAMIQX_LOG_DIR": logs, "CI": "true"}
        lockstep = [
            sys.executable,
            "-m",
            "pamiqx",
            "run",
            "experiments/quickstart.toml",
            "run.max_steps=1000000000",
            "run.device=cpu",
            "tracking.enabled=false",
            "run.checkpoint_every=20000",
        ]
        if "lockstep" in PARTS:
            samples, _ = sample(lockstep, SECONDS, env)
            rows += summary("lock-step quickstart", samples)
        if "realtime" in PARTS:
            realtime = [sys.executable, "-m", "bench.soak_realtime", logs]
            samples, _ = sample(realtime, SECONDS, env)
            label = "real-time vrchat (fake camera drops 2 s in every 30 s, x10)"
            rows += summary(label, samples)
            rows += outcome(label, Path(logs) / "vrchat-none")
    for row in rows:
        row["command"] = COMMAND
    return rows


if __name__ == "__main__":
    for row in run():
        print(row)
