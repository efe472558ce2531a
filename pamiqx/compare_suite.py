"""The curiosity comparison suite: each ``experiments/compare-<world>-*.toml`` over seeds, a report.

``make compare`` (``python -m pamiqx.compare_suite``) runs each comparison file
for seeds 0, 1 and 2 as ``pamiqx run FILE seed=S run.log_dir=DIR`` subprocesses,
two at a time, then writes ``pamiqx compare RUN_DIR... --out DIR/report-<world>``
(coverage and intrinsic reward against steps, a summary table). A new mechanism
joins by adding one file, ``experiments/compare-maze-<curiosity>.toml``, that
extends its ``<curiosity>-maze.toml`` and ``compare/maze.toml``.

Running it again resumes: a run already finished in DIR with the same resolved
experiment (every setting but ``run.log_dir``) is skipped, one stopped by Ctrl-C
continues from its checkpoint, and a failed one starts again. A failed run does
not stop the others; the suite lists it with its experiment, seed and log, and
exits 1 at the end.

Size (``run.max_steps`` in ``experiments/compare/maze.toml``, the same for every
mechanism): the suite must finish in under 30 minutes on a 2-core machine with
11 curiosities (``none`` and 10 mechanisms) x 3 seeds = 33 runs, two at a time.

- Steps per second of one run alone on the quiet machine (4 worlds): none 1030,
  disagreement 880, rnd 620, adversarial 510, meta 490, delta-minimize 475,
  icm 370; the four newer mechanisms scaled by their speed relative to rnd in a
  back-to-back measurement: ttt-e2e ~500, unified ~460, ttt ~370, hierarchical
  ~400 (assumed). Sum of 1/rate: 0.0219 s per step; the comparison runs one
  world, measured ~10% slower than four: 0.024 s.
- Two runs side by side are assumed to go at half speed each, so pairing saves
  nothing and 3 seeds cost 3 x 0.024 = 0.072 s of wall time per step of
  ``max_steps``. Measured pairing (rnd with icm, 4,096 steps, while other work
  kept the machine busy): rnd 127 steps/s paired vs 205 alone, icm 78 vs 84;
  the pair took 80 s against 102 s one after the other, so half is pessimistic.
- Start-up and teardown (imports, model build, Aim, final checkpoint): ~20 s a
  run, so 33 x 20 / 2 = 330 s on two slots.

With 12,288 steps (48 phases of 256): 12,288 x 0.072 + 330 = 1,215 s, about 20
minutes, leaving a fifth of the 25-minute target for a slower machine. A
machine busy with other work is slower still (above, everything ran about three
times slower than alone on the quiet machine): use ``--seeds 0`` or a lower
``run.max_steps=...`` there.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import threading
import time
import tomllib
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from contextlib import contextmanager
from pathlib import Path
from types import FrameType
from typing import Any, Literal

import attrs

from pamiqx.api.errors import PamiqxError

DEFAULT_SEEDS = (0, 1, 2)
DEFAULT_JOBS = 2
# pamiqx's exit codes after a checkpoint on SIGINT / SIGTERM (pamiqx.runtime.session).
INTERRUPTED_CODES = (130, 143)
FINISHED = "finished"  # the status of the `end` event of a completed run (events.jsonl)

Action = Literal["skip", "resume", "run", "invalid"]
Status = Literal["skipped", "finished", "failed", "interrupted", "not started"]


class SuiteError(PamiqxError):
    """The comparison suite cannot start (no experiment files, a bad option)."""


@attrs.frozen
class Job:
    """One experiment file at one seed.

    Attributes:
        experiment: The experiment file.
        seed: The seed it runs with.
        name: The experiment's name (its run directories' folder); the file's
            stem until the file is resolved (the shipped files are named so).
    """

    experiment: Path
    seed: int
    name: str = attrs.field(
        default=attrs.Factory(lambda self: self.experiment.stem, takes_self=True)
    )

    @property
    def label(self) -> str:
        """``name seed=S`` for progress lines."""
        return f"{self.name} seed={self.seed}"


@attrs.frozen
class Plan:
    """What the suite does with one job.

    Attributes:
        job: The experiment and seed.
        action: ``skip`` (finished already), ``resume`` (from ``run_dir``'s
            checkpoint), ``run`` (a new run) or ``invalid`` (the file does not load).
        run_dir: The finished or resumable run directory.
        message: Why an ``invalid`` job cannot run.
        expected: The job's resolved experiment (``tomllib`` data of ``to_toml()``).
    """

    job: Job
    action: Action
    run_dir: Path | None = None
    message: str = ""
    expected: dict[str, Any] = attrs.field(factory=dict, eq=False, repr=False)


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


# --- finding files and runs --------------------------------------------------------------


def find_experiments(experiments: Path, world: str) -> list[Path]:
    """Return the comparison files of a world, sorted: ``compare-<world>-*.toml``.

    Raises:
        SuiteError: There are none.
    """
    files = sorted(experiments.glob(f"compare-{world}-*.toml"))
    if not files:
        worlds = sorted({p.name.split("-")[1] for p in experiments.glob("compare-*-*.toml")})
        known = f" Worlds with comparison files: {', '.join(worlds)}." if worlds else ""
        raise SuiteError(
            f"{experiments}: no comparison files compare-{world}-*.toml for world '{world}'.{known}"
        )
    return files


def end_status(run_dir: Path) -> str | None:
    """Return the status of the last ``end`` event in ``events.jsonl`` (None: it never ended)."""
    status: str | None = None
    try:
        lines = (run_dir / "events.jsonl").read_text(encoding="utf-8").splitlines()
    except OSError:
        return None
    for line in lines:
        try:
            event = json.loads(line)
        except json.JSONDecodeError:
            continue  # a line cut short by a killed process
        if isinstance(event, dict) and event.get("event") == "end":
            status = str(event.get("status"))
        elif isinstance(event, dict) and event.get("event") == "resume":
            status = None  # a resumed run is running again until its next end
    return status


def has_checkpoint(run_dir: Path) -> bool:
    """Return True when the run directory holds a complete checkpoint (a ``step-*`` folder)."""
    return any(p.is_dir() for p in (run_dir / "checkpoints").glob("step-*"))


def comparable(experiment: dict[str, Any]) -> dict[str, Any]:
    """Return resolved experiment data without the settings that do not change a run."""
    data = dict(experiment)
    data["run"] = {k: v for k, v in data.get("run", {}).items() if k != "log_dir"}
    return data


def matching_runs(log_dir: Path, name: str, expected: dict[str, Any]) -> list[Path]:
    """Return the run directories of ``name`` in ``log_dir`` whose experiment is ``expected``.

    Args:
        log_dir: The suite's log directory (``run.log_dir``).
        name: The experiment name.
        expected: The resolved experiment (``tomllib`` data of ``to_toml()``).

    Returns:
        Matching run directories, oldest first (their names are timestamps).
    """
    runs = []
    for run_dir in sorted((log_dir / name).glob("*/")):
        try:
            recorded = tomllib.loads((run_dir / "experiment.toml").read_text(encoding="utf-8"))
        except (OSError, tomllib.TOMLDecodeError):
            continue
        if comparable(recorded) == comparable(expected):
            runs.append(run_dir)
    return runs


def plan_job(job: Job, log_dir: Path, expected: dict[str, Any]) -> Plan:
    """Decide whether a job is finished, can resume or must run.

    Args:
        job: The experiment and seed.
        log_dir: The suite's log directory.
        expected: The job's resolved experiment (``tomllib`` data of ``to_toml()``).

    Returns:
        ``skip`` with the newest finished run, else ``resume`` from the newest
        unfinished run with a checkpoint, else ``run``.
    """
    runs = matching_runs(log_dir, job.name, expected)
    for run_dir in reversed(runs):
        if end_status(run_dir) == FINISHED:
            return Plan(job, "skip", run_dir, expected=expected)
    for run_dir in reversed(runs):
        if has_checkpoint(run_dir):
            return Plan(job, "resume", run_dir, expected=expected)
    return Plan(job, "run", expected=expected)


def job_overrides(job: Job, log_dir: Path, overrides: Sequence[str]) -> list[str]:
    """Return the ``KEY=VALUE`` overrides of a job: its seed, the log directory, then the user's."""
    # A TOML string, so that any path (spaces, '@') reads back as written.
    return [f"seed={job.seed}", f"run.log_dir={json.dumps(str(log_dir))}", *overrides]


def run_command(
    plan: Plan, log_dir: Path, overrides: Sequence[str], pamiqx: Sequence[str]
) -> list[str]:
    """Return the ``pamiqx run`` command line of a planned job.

    Args:
        plan: A ``run`` or ``resume`` plan.
        log_dir: The suite's log directory.
        overrides: The user's extra ``KEY=VALUE`` overrides.
        pamiqx: How to call pamiqx, e.g. ``[sys.executable, "-m", "pamiqx"]``.
    """
    job = plan.job
    command = [*pamiqx, "run", str(job.experiment), *job_overrides(job, log_dir, overrides)]
    if plan.action == "resume":
        command += ["--resume", str(plan.run_dir)]
    return command


def report_command(run_dirs: Sequence[Path], out: str, pamiqx: Sequence[str]) -> list[str]:
    """Return the ``pamiqx compare`` command line over the suite's finished runs."""
    return [*pamiqx, "compare", *(str(p) for p in run_dirs), "--out", out]


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


# --- running -------------------------------------------------------------------------------


def _minutes(seconds: float) -> str:
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

    def plan(self, files: Sequence[Path], seeds: Sequence[int]) -> list[Plan]:
        """Resolve and plan every file at every seed, seed by seed (seed 0 completes first)."""
        from pamiqx.experiment import load_experiment
        from pamiqx.plugins.manager import load_plugins

        manager = load_plugins()
        plans = []
        for seed in seeds:
            for path in files:
                job = Job(path, seed)
                overrides = job_overrides(job, self.log_dir, self.overrides)
                try:
                    resolved = load_experiment(path, overrides, manager)
                except PamiqxError as error:
                    plans.append(Plan(job, "invalid", message=str(error)))
                    continue
                job = Job(path, seed, resolved.experiment.name)
                plans.append(plan_job(job, self.log_dir, tomllib.loads(resolved.to_toml())))
        return plans

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
            self.echo(f"{self._prefix(index)} done   {job.label} in {_minutes(seconds)}")
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
                f"{_minutes(seconds)}; log: {log}"
            )
        return Outcome(job, status, log, run_dir, returncode, seconds)


def failure_lines(outcomes: Sequence[Outcome]) -> list[str]:
    """Return one line per failed job: experiment, seed, exit code or reason, log and run dir."""
    lines = []
    for o in outcomes:
        if o.status != "failed":
            continue
        if o.log is None:
            lines.append(f"  {o.job.label} ({o.job.experiment}): {o.message}")
            continue
        where = f", run directory {o.run_dir}" if o.run_dir else ""
        lines.append(
            f"  {o.job.label} ({o.job.experiment}): exit {o.returncode}, log {o.log}{where}"
        )
    return lines


def run_suite(
    world: str,
    log_dir: Path,
    experiments: Path = Path("experiments"),
    seeds: Sequence[int] = DEFAULT_SEEDS,
    jobs: int = DEFAULT_JOBS,
    overrides: Sequence[str] = (),
    out: str | None = None,
    report: bool = True,
    pamiqx: Sequence[str] | None = None,
    echo: Callable[[str], None] | None = None,
) -> int:
    """Run a world's comparison suite and write its report.

    Args:
        world: Which files: ``experiments/compare-<world>-*.toml``.
        log_dir: Where the runs go (``run.log_dir``).
        experiments: The folder of experiment files.
        seeds: Seeds of every file.
        jobs: Runs at a time.
        overrides: Extra ``KEY=VALUE`` overrides for every run (e.g. a shorter
            ``run.max_steps`` for a smoke test).
        out: Report destination for ``pamiqx compare --out`` (default
            ``<log_dir>/report-<world>``, a folder).
        report: Write the report at the end.
        pamiqx: How to call pamiqx (default: this Python's ``-m pamiqx``).
        echo: Where progress lines go (default: stdout).

    Returns:
        0 when every run finished and the report was written, 130 when stopped,
        1 when a run or the report failed.

    Raises:
        SuiteError: No comparison files for the world, or a bad option.
    """
    if jobs < 1:
        raise SuiteError(f"--jobs must be at least 1, got {jobs}.")
    if not seeds:
        raise SuiteError("--seeds needs at least one seed.")
    files = find_experiments(experiments, world)
    log_dir = log_dir.absolute()
    suite = Suite(log_dir, overrides, jobs, pamiqx, echo)
    started = time.monotonic()
    plans = suite.plan(files, seeds)
    counts = {a: sum(p.action == a for p in plans) for a in ("skip", "resume", "run", "invalid")}
    threads = child_environment(jobs).get("OMP_NUM_THREADS")
    suite.echo(
        f"compare suite '{world}': {len(files)} experiments x {len(seeds)} seeds = "
        f"{len(plans)} runs in {log_dir}; {counts['skip']} finished already, "
        f"{counts['resume']} to resume, {counts['run']} to run; {jobs} at a time, "
        f"{threads} torch thread(s) each"
    )
    outcomes = suite.execute(plans)
    failed = [o for o in outcomes if o.status == "failed"]
    stopped = [o for o in outcomes if o.status in ("interrupted", "not started")]
    done = [o for o in outcomes if o.status in ("finished", "skipped")]
    suite.echo(
        f"compare suite '{world}': {len(done)}/{len(outcomes)} runs finished in "
        f"{_minutes(time.monotonic() - started)}"
        + (f", {len(failed)} failed" if failed else "")
        + (f", {len(stopped)} stopped" if stopped else "")
    )
    if stopped:
        suite.echo("stopped: run the same command again to resume from the checkpoints")
        return 130
    code = 0
    if failed:
        suite.echo("failed runs (experiment, seed, log):")
        for line in failure_lines(outcomes):
            suite.echo(line)
        code = 1
    if report:
        run_dirs = [o.run_dir for o in done if o.run_dir is not None]
        if not run_dirs:
            suite.echo("no finished runs: no report")
            return 1
        target = out or str(log_dir / f"report-{world}")
        command = report_command(run_dirs, target, suite.pamiqx)
        suite.echo(f"report: pamiqx compare ({len(run_dirs)} runs) --out {target}")
        result = subprocess.run(command, stdin=subprocess.DEVNULL, check=False)
        if result.returncode != 0:
            suite.echo(f"report FAILED (pamiqx compare exit {result.returncode})")
            code = 1
    return code


def _seed_list(text: str) -> list[int]:
    # Comma-separated, so that KEY=VALUE overrides may follow the option.
    try:
        return [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected seeds like 0,1,2, got {text!r}") from None


def main(argv: Sequence[str] | None = None) -> int:
    """Command line: ``python -m pamiqx.compare_suite [--world maze] [KEY=VALUE ...]``."""
    parser = argparse.ArgumentParser(
        prog="python -m pamiqx.compare_suite",
        description=(
            "Run every experiments/compare-<world>-*.toml for each seed (skipping runs "
            "finished in --dir, resuming stopped ones), then `pamiqx compare` over them."
        ),
    )
    parser.add_argument("--world", default="maze", help="compare-<world>-*.toml (default: maze)")
    parser.add_argument("--dir", type=Path, default=Path("logs/compare"), help="run.log_dir")
    parser.add_argument("--experiments", type=Path, default=Path("experiments"))
    parser.add_argument(
        "--seeds", type=_seed_list, default=list(DEFAULT_SEEDS), help="e.g. 0,1,2 (the default)"
    )
    parser.add_argument("--jobs", type=int, default=DEFAULT_JOBS, help="runs at a time")
    parser.add_argument("--out", help="report path (default: DIR/report-<world>/)")
    parser.add_argument("--no-report", action="store_true", help="skip `pamiqx compare`")
    parser.add_argument(
        "overrides", nargs="*", metavar="KEY=VALUE", help="for every run, e.g. run.max_steps=2048"
    )
    args = parser.parse_args(argv)
    try:
        return run_suite(
            args.world,
            args.dir,
            args.experiments,
            args.seeds,
            args.jobs,
            args.overrides,
            args.out,
            report=not args.no_report,
        )
    except PamiqxError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
