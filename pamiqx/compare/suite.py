"""The curiosity comparison suite: each ``experiments/compare-<world>-*.toml`` over seeds, a report.

``make compare`` (``pamiqx compare-suite``) runs each comparison file for
seeds 0, 1 and 2 as ``pamiqx run FILE seed=S run.log_dir=DIR`` subprocesses,
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

The jobs are planned in :mod:`pamiqx.compare.suite_plan` and run by
:mod:`pamiqx.compare.suite_pool`; :func:`run_suite` ties them together and
:func:`run_report` runs ``pamiqx compare`` over the finished runs.
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from pamiqx.compare.errors import SuiteError
from pamiqx.compare.suite_plan import find_experiments, plan_jobs, report_command
from pamiqx.compare.suite_pool import DEFAULT_JOBS, Outcome, Suite, child_environment, minutes

__all__ = [
    "DEFAULT_JOBS",
    "DEFAULT_SEEDS",
    "failure_lines",
    "parse_seeds",
    "run_report",
    "run_suite",
]

DEFAULT_SEEDS = (0, 1, 2)


def parse_seeds(text: str) -> list[int]:
    """Return the seeds of ``--seeds``: comma-separated, e.g. ``0,1,2``.

    Commas rather than several values, so that ``KEY=VALUE`` overrides may follow.

    Raises:
        SuiteError: A part is not an integer.
    """
    try:
        return [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise SuiteError(f"--seeds: expected seeds like 0,1,2, got {text!r}.") from None


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
    plans = plan_jobs(files, seeds, log_dir, overrides)
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
        f"{minutes(time.monotonic() - started)}"
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
        if not run_report(suite, run_dirs, out or str(log_dir / f"report-{world}")):
            code = 1
    return code


def run_report(suite: Suite, run_dirs: Sequence[Path], out: str) -> bool:
    """Run ``pamiqx compare`` over the finished runs; return whether it succeeded.

    Args:
        suite: The suite (how to call pamiqx, where progress lines go).
        run_dirs: The finished runs' directories.
        out: The report destination (``pamiqx compare --out``).
    """
    command = report_command(run_dirs, out, suite.pamiqx)
    suite.echo(f"report: pamiqx compare ({len(run_dirs)} runs) --out {out}")
    result = subprocess.run(command, stdin=subprocess.DEVNULL, check=False)
    if result.returncode != 0:
        suite.echo(f"report FAILED (pamiqx compare exit {result.returncode})")
    return result.returncode == 0
