"""Running the suite's planned jobs as ``pamiqx run`` subprocesses, a few at a time.

Each run writes its console output to ``<log_dir>/suite-logs/<name>.seed-<S>.log``
and gets its share of the cores (:func:`child_environment`). Ctrl-C or SIGTERM
stops the suite: no more runs start, and the running ones get the signal and
write a checkpoint before they exit, so that the next suite resumes them.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from contextlib import contextmanager
from pathlib import Path
from types import FrameType
from typing import Literal

import attrs

from pamiqx.compare.suite_plan import Job, Plan, has_checkpoint, matching_runs, run_command

__all__ = ["DEFAULT_JOBS", "Outcome", "Status", "Suite", "child_environment", "minutes"]

DEFAULT_JOBS = 2
# pamiqx's exit codes after a checkpoint on SIGINT / SIGTERM (pamiqx.runtime.session).
INTERRUPTED_CODES = (130, 143)

Status = Literal["skipped", "finished", "failed", "interrupted", "not started"]


@attrs.frozen
class Outcome:
    """How one job ended.

    Attributes:
        job: The experiment and seed.
        status: ``skipped``, ``finished``, ``failed``, ``interrupted`` or ``not started``.
        log: The run's console output (None when no process ran).
        run_dir: Its run directory, when one was found.
        returncode: The process's exit code (None when no process ran).
        seconds: Wall time of the process.
        message: Why it failed without running.
    """

    job: Job
    status: Status
    log: Path | None = None
    run_dir: Path | None = None
    returncode: int | None = None
    seconds: float = 0.0
    message: str = ""


def child_environment(jobs: int, base: dict[str, str] | None = None) -> dict[str, str]:
    """Return the environment of a run: the cores shared out between the parallel runs.

    ``OMP_NUM_THREADS`` (torch's intra-op threads) and ``MKL_NUM_THREADS`` default
    to the cores divided by ``jobs``, so parallel runs do not fight over cores;
    values already set are kept. Output is unbuffered so the logs stay current.
    """
    env = dict(os.environ if base is None else base)
    threads = str(max(1, (os.cpu_count() or 1) // jobs))
    env.setdefault("OMP_NUM_THREADS", threads)
    env.setdefault("MKL_NUM_THREADS", threads)
    env["PYTHONUNBUFFERED"] = "1"
    return env


def minutes(seconds: float) -> str:
    """Return ``M:SS`` for progress lines."""
    return f"{int(seconds) // 60}:{int(seconds) % 60:02d}"


class Suite:
    """Runs planned jobs in parallel subprocesses and reports how each ended."""

    def __init__(
        self,
        log_dir: Path,
        overrides: Sequence[str] = (),
        jobs: int = DEFAULT_JOBS,
        pamiqx: Sequence[str] | None = None,
        echo: Callable[[str], None] | None = None,
    ) -> None:
        """Prepare a suite.

        Args:
            log_dir: ``run.log_dir`` of every run; run logs go to ``log_dir/suite-logs``.
            overrides: Extra ``KEY=VALUE`` overrides for every run.
            jobs: Runs at a time.
            pamiqx: How to call pamiqx (default: this Python's ``-m pamiqx``).
            echo: Where progress lines go (default: stdout, flushed).
        """
        self.log_dir = log_dir
        self.overrides = list(overrides)
        self.jobs = jobs
        self.pamiqx = list(pamiqx) if pamiqx is not None else [sys.executable, "-m", "pamiqx"]
        self._echo = echo or (lambda line: print(line, flush=True))
        self._lock = threading.Lock()
        self._processes: set[subprocess.Popen[bytes]] = set()
        self._stopping = threading.Event()
        self._signal = signal.SIGINT  # what stops the runs: SIGINT, or SIGTERM when received
        self._total = 0

    def echo(self, line: str) -> None:
        """Print one progress line (thread-safe)."""
        with self._lock:
            self._echo(line)

    def log_path(self, job: Job) -> Path:
        """Return where a job's console output goes."""
        return self.log_dir / "suite-logs" / f"{job.name}.seed-{job.seed}.log"

    def execute(self, plans: Sequence[Plan]) -> list[Outcome]:
        """Run the plans, ``jobs`` at a time; Ctrl-C or SIGTERM stops them after a checkpoint.

        Returns:
            One outcome per plan, in plan order.
        """
        self._total = len(plans)
        outcomes: dict[int, Outcome] = {}
        pending: dict[Future[Outcome], int] = {}
        with ThreadPoolExecutor(max_workers=self.jobs) as pool, self._forward_signals():
            try:
                for index, plan in enumerate(plans):
                    if plan.action in ("skip", "invalid"):
                        outcomes[index] = self._settled(index, plan)
                    else:
                        pending[pool.submit(self._run, index, plan)] = index
                waiting = set(pending)
                while waiting:
                    done, waiting = wait(waiting, timeout=1.0, return_when=FIRST_COMPLETED)
                    for future in done:
                        outcomes[pending[future]] = future.result()
            except KeyboardInterrupt:
                self.stop(self._signal)
                for future, index in pending.items():
                    outcomes[index] = future.result()  # the running ones checkpoint first
        return [outcomes.get(i, Outcome(p.job, "not started")) for i, p in enumerate(plans)]

    def stop(self, signum: int) -> None:
        """Start no more runs and pass ``signum`` on to the running ones (they checkpoint)."""
        self._stopping.set()
        with self._lock:
            for process in self._processes:
                if process.poll() is None:
                    process.send_signal(signum)

    @contextmanager
    def _forward_signals(self) -> Iterator[None]:
        # SIGTERM (e.g. from a job scheduler) stops the suite the way Ctrl-C does; stop()
        # passes the signal on once to each run (they run in their own process groups,
        # out of reach of the terminal's Ctrl-C, so none gets it twice).
        def on_term(signum: int, frame: FrameType | None) -> None:
            self._signal = signal.SIGTERM
            raise KeyboardInterrupt

        if threading.current_thread() is not threading.main_thread():
            yield
            return
        previous = signal.signal(signal.SIGTERM, on_term)
        try:
            yield
        finally:
            signal.signal(signal.SIGTERM, previous)

    def _prefix(self, index: int) -> str:
        width = len(str(self._total))
        return f"[{index + 1:>{width}}/{self._total}]"

    def _settled(self, index: int, plan: Plan) -> Outcome:
        if plan.action == "skip":
            self.echo(f"{self._prefix(index)} skip   {plan.job.label}: finished in {plan.run_dir}")
            return Outcome(plan.job, "skipped", run_dir=plan.run_dir)
        self.echo(f"{self._prefix(index)} FAILED {plan.job.label}: {plan.message}")
        return Outcome(plan.job, "failed", message=plan.message)

    def _run(self, index: int, plan: Plan) -> Outcome:
        job = plan.job
        if self._stopping.is_set():
            return Outcome(job, "not started")
        log = self.log_path(job)
        log.parent.mkdir(parents=True, exist_ok=True)
        command = run_command(plan, self.log_dir, self.overrides, self.pamiqx)
        verb = "resume" if plan.action == "resume" else "start "
        self.echo(f"{self._prefix(index)} {verb} {job.label} (log: {log})")
        started = time.monotonic()
        with log.open("ab") as output:
            output.write(f"$ {' '.join(command)}\n".encode())
            output.flush()
            process = subprocess.Popen(
                command,
                stdout=output,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=child_environment(self.jobs),
                process_group=0,
            )
            with self._lock:
                self._processes.add(process)
                if self._stopping.is_set():  # stop() ran while this one was starting
                    process.send_signal(self._signal)
            try:
                returncode = process.wait()
            finally:
                with self._lock:
                    self._processes.discard(process)
        seconds = time.monotonic() - started
        matching = matching_runs(self.log_dir, job.name, plan.expected)
        run_dir = plan.run_dir or (matching[-1] if matching else None)
        status: Status
        if returncode == 0:
            status = "finished"
            self.echo(f"{self._prefix(index)} done   {job.label} in {minutes(seconds)}")
        elif returncode in INTERRUPTED_CODES or self._stopping.is_set():
            # Stopped by the suite; one still starting up ends without a checkpoint.
            status = "interrupted"
            saved = run_dir is not None and has_checkpoint(run_dir)
            after = "checkpointed; it resumes" if saved else "no checkpoint; it starts again"
            self.echo(f"{self._prefix(index)} stop   {job.label} ({after} next time)")
        else:
            status = "failed"
            self.echo(
                f"{self._prefix(index)} FAILED {job.label} (exit {returncode}) after "
                f"{minutes(seconds)}; log: {log}"
            )
        return Outcome(job, status, log, run_dir, returncode, seconds)
