"""Soak: resident memory of long runs stays flat after warm-up.

Two runs, each in its own process, sampled every ``SAMPLE_EVERY`` seconds from
``/proc/<pid>/status``:

* lock-step: the quickstart (RND on sim-maze) for ``PAMIQX_SOAK_SECONDS``
  (default 1,800 s), then SIGTERM (it checkpoints and exits 143);
* real time: the VRChat plugin against a fake camera that drops out for two
  seconds every 30 s and a recording actuator, at time scale 10, for the same
  time (``python -m bench.soak_realtime`` is the child).

What is measured. A run's resident memory (RSS) rises and falls within every
training phase: the quickstart holds 60 to 95 MiB more at the height of a
phase than after it, of which glibc used to keep a varying part (lock-step runs
now hand it back after each phase, :mod:`pamiqx.runtime.heap`). A single
reading every 5 s lands anywhere in that cycle, so its spread says where in a
phase it landed, not whether memory grows.
Each sample is therefore the *peak* RSS of the 5 s since the previous one
(``VmHWM``, reset through ``/proc/<pid>/clear_refs`` after every reading): the
most the run held in that window, which a leak raises as surely as it raises
every reading. Where the peak cannot be reset (a kernel that refuses the
write), the samples are single readings, and the rows say so.

Warm-up. Memory grows while a run starts: libraries load, every kernel and
code path runs for the first time, the heap grows to its working size. It ends
when everything a steady run repeats has run at least once: collection,
training phases and writing a checkpoint. The harness watches the run's
``events.jsonl`` and ends warm-up at the run's first checkpoint (step 20,000,
some 80 training phases of the quickstart; its heap reaches its working size
within its first 20 phases). A fixed fraction of the samples would not say
that: on a loaded machine the same run reaches the same point later.

After warm-up: the level is the median of the first minute of samples (one
sample would make the level depend on a single window), the end the median of
the last minute, the slope a least-squares fit in MiB per hour, and the
largest change the largest distance of a sample from the level (target: within
5%). ``python -m bench soak``; ``PAMIQX_SOAK_SECONDS=600`` for a short check,
``PAMIQX_SOAK_PARTS=realtime`` for one part, ``PAMIQX_SOAK_SAMPLES=DIR`` to
keep every sample as ``DIR/<part>.csv``.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
SECONDS = float(os.environ.get("PAMIQX_SOAK_SECONDS", "1800"))
PARTS = os.environ.get("PAMIQX_SOAK_PARTS", "lockstep,realtime").split(",")
SAMPLES_DIR = os.environ.get("PAMIQX_SOAK_SAMPLES", "")
SAMPLE_EVERY = 5.0
# The level after warm-up and the end are medians over this many samples (a minute).
LEVEL_SAMPLES = 12
COMMAND = "PAMIQX_SOAK_SECONDS=1800 python -m bench soak"


def memory_mib(pid: int) -> tuple[float, float] | None:
    """Return a process's resident memory and its peak since the last reset, in MiB.

    Returns:
        ``(VmRSS, VmHWM)``, or None once the process has exited.
    """
    try:
        lines = Path(f"/proc/{pid}/status").read_text().splitlines()
    except (FileNotFoundError, ProcessLookupError):
        return None
    values = {}
    for line in lines:
        key, _, rest = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            values[key] = int(rest.split()[0]) / 1024
    if len(values) < 2:
        return None
    return values["VmRSS"], values["VmHWM"]


def reset_peak(pid: int) -> bool:
    """Reset a process's peak resident memory to its current one; False where refused."""
    try:
        Path(f"/proc/{pid}/clear_refs").write_text("5")
    except OSError:
        return False
    return True


def first_checkpoint(logs: Path) -> bool:
    """Return True once a run under ``logs`` has recorded a checkpoint in ``events.jsonl``."""
    for events in logs.glob("*/*/events.jsonl"):
        try:
            text = events.read_text()
        except OSError:
            continue
        for line in text.splitlines():
            try:
                if json.loads(line).get("event") == "checkpoint":
                    return True
            except ValueError:
                continue
    return False


@dataclass
class Soak:
    """What one soaked run gave: peak and single RSS readings, the end of its warm-up."""

    peaks: list[float] = field(default_factory=list)
    readings: list[float] = field(default_factory=list)
    seconds: list[float] = field(default_factory=list)
    # Samples taken before the run's first checkpoint (None: it wrote none).
    warm_up: int | None = None
    # True when every sample is a window's peak (the kernel let the peak be reset).
    windowed: bool = True

    def save(self, path: Path) -> None:
        """Write the samples as CSV (seconds, peak, reading, warm-up)."""
        lines = ["seconds,peak_mib,rss_mib,warm_up"]
        rows = zip(self.seconds, self.peaks, self.readings, strict=True)
        for i, (seconds, peak, reading) in enumerate(rows):
            warm = int(self.warm_up is None or i < self.warm_up)
            lines.append(f"{seconds:.1f},{peak:.1f},{reading:.1f},{warm}")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("\n".join(lines) + "\n")


def sample(command: list[str], seconds: float, env: dict[str, str], logs: Path) -> Soak:
    """Run a command for ``seconds``, sampling its memory; stop it with SIGTERM.

    Args:
        command: The run to soak.
        seconds: How long to let it run.
        env: Its environment.
        logs: Where its run directories go (watched for its first checkpoint).

    Returns:
        The samples and where warm-up ended.
    """
    process = subprocess.Popen(
        command, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
    )
    soak = Soak()
    started = time.monotonic()
    deadline = started + seconds
    while time.monotonic() < deadline and process.poll() is None:
        time.sleep(SAMPLE_EVERY)
        values = memory_mib(process.pid)
        if values is None:
            continue
        reading, peak = values
        soak.windowed = reset_peak(process.pid) and soak.windowed
        soak.peaks.append(peak if soak.windowed else reading)
        soak.readings.append(reading)
        soak.seconds.append(time.monotonic() - started)
        if soak.warm_up is None and first_checkpoint(logs):
            # The checkpoint was written within the window this sample covers.
            soak.warm_up = len(soak.peaks)
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
    try:
        _, stderr = process.communicate(timeout=120)
    except subprocess.TimeoutExpired:
        process.kill()
        _, stderr = process.communicate()
    if process.returncode not in (0, 143):
        raise RuntimeError(f"{command} ended with {process.returncode}: {stderr[-2000:]}")
    return soak


def summary(
    label: str, samples: Sequence[float], warm_up: int | None = None
) -> list[dict[str, object]]:
    """Return the rows of one soak: level after warm-up, end, slope, largest change.

    Args:
        label: Names the run in the rows.
        samples: Resident memory in MiB, one every ``SAMPLE_EVERY`` seconds.
        warm_up: How many samples warm-up took (before the first checkpoint);
            None leaves the first 20% out.

    Returns:
        Four rows: the level after warm-up and at the end (medians of a minute),
        the slope after warm-up and the largest change from the level.

    Raises:
        RuntimeError: Too few samples after warm-up to tell a level from a slope.
    """
    skip = len(samples) // 5 if warm_up is None else warm_up
    steady = np.array(samples[skip:], dtype=float)
    if len(steady) < 2 * LEVEL_SAMPLES:
        raise RuntimeError(
            f"{label}: {len(steady)} memory samples after warm-up ({skip} before it); run longer"
        )
    hours = np.arange(len(steady)) * SAMPLE_EVERY / 3600
    slope = float(np.polyfit(hours, steady, 1)[0])
    level = float(np.median(steady[:LEVEL_SAMPLES]))
    end = float(np.median(steady[-LEVEL_SAMPLES:]))
    deviation = float(100 * np.max(np.abs(steady - level)) / level)
    minutes = len(steady) * SAMPLE_EVERY / 60
    return [
        {"name": f"{label}: RSS after warm-up", "value": level, "unit": "MiB"},
        {"name": f"{label}: RSS at the end", "value": end, "unit": "MiB"},
        {"name": f"{label}: RSS slope after warm-up", "value": slope, "unit": "MiB/h"},
        {
            "name": f"{label}: largest RSS change after warm-up, {minutes:.0f} min (target < 5%)",
            "value": deviation,
            "unit": "%",
        },
    ]


def soak_rows(label: str, soak: Soak) -> list[dict[str, object]]:
    """Return one soak's rows: peaks over the steady part and how long warm-up took."""
    if soak.warm_up is None:
        raise RuntimeError(f"{label}: no checkpoint written, so warm-up never ended; run longer")
    what = "peak RSS per 5 s" if soak.windowed else "RSS read every 5 s"
    rows = summary(f"{label}, {what}", soak.peaks, soak.warm_up)
    rows.append(
        {
            "name": f"{label}: warm-up (to the first checkpoint)",
            "value": round(soak.seconds[soak.warm_up - 1]),
            "unit": "s",
        }
    )
    return rows


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
    for part in PARTS:
        with tempfile.TemporaryDirectory() as folder:
            logs = Path(folder)
            env = {**os.environ, "PAMIQX_LOG_DIR": folder, "CI": "true"}
            if part == "lockstep":
                label = "lock-step quickstart"
                command = [
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
            elif part == "realtime":
                label = "real-time vrchat (fake camera drops 2 s in every 30 s, x10)"
                command = [sys.executable, "-m", "bench.soak_realtime", folder]
            else:
                raise ValueError(f"unknown soak part {part!r}: lockstep or realtime")
            soak = sample(command, SECONDS, env, logs)
            if SAMPLES_DIR:
                soak.save(Path(SAMPLES_DIR) / f"{part}.csv")
            rows += soak_rows(label, soak)
            if part == "realtime":
                rows += outcome(label, logs / "vrchat-none")
    for row in rows:
        row["command"] = COMMAND
    return rows


if __name__ == "__main__":
    for row in run():
        print(row)
