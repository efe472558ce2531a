"""``pamiqx sweep SWEEP.toml``: validate every trial, then run them on Ray."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from rich.console import Console

__all__ = ["run_sweep"]


def run_sweep(
    file: Path,
    storage: Path | None = None,
    address: str | None = None,
    resume: bool = False,
    overrides: Sequence[str] = (),
    console: Console | None = None,
) -> int:
    """Run a sweep file's trials (or continue them), then print the summary.

    Args:
        file: The sweep file.
        storage: Its storage folder (None: the file's ``storage`` or ``logs/sweeps/<name>``).
        address: A Ray cluster (``auto``, ``HOST:PORT`` or ``ray://HOST:PORT``); None
            starts an embedded local Ray.
        resume: Continue the sweep in the storage folder, skipping finished runs.
        overrides: ``KEY=VALUE`` overrides for every run.
        console: Where the progress and summary go.

    Returns:
        0 when every trial finished, 1 when one failed, 130 when interrupted.

    Raises:
        SweepError: The sweep file, an expanded experiment, the storage folder or
            the cluster's resources are wrong (nothing has started).
    """
    from pamiqx.plugins.manager import load_plugins
    from pamiqx.sweep.driver import (
        check_cluster,
        check_storage,
        ray_session,
        run_trials,
        write_plan,
    )
    from pamiqx.sweep.expand import plan, storage_dir
    from pamiqx.sweep.progress import plain_output
    from pamiqx.sweep.spec import load_sweep_file
    from pamiqx.sweep.trial import sweep_trial

    console = console or Console(emoji=False, highlight=False)
    sweep = load_sweep_file(file)
    folder = storage_dir(sweep, storage)
    trials = plan(sweep, folder, load_plugins(), overrides)
    resumed = check_storage(folder, trials, resume)
    verb = "continuing" if resumed else "starting"
    console.print(f"sweep {sweep.name}: {verb} {len(trials)} trials in {folder}", markup=False)
    with ray_session(address):
        check_cluster(trials, sweep.resources)
        if not resumed:
            write_plan(folder, trials)
        return run_trials(
            trials, sweep.resources, folder, sweep_trial, console, plain_output(console.file)
        )
