"""Starting a run: where it goes (new, continued or branched), leaving nothing behind on failure.

``--resume`` from the latest checkpoint of a run continues that run directory.
From any other checkpoint (an earlier one of a run, or a copy kept outside a
run directory) it *branches*: a new run directory under the log root, whose
``experiment.toml`` header and ``start`` event name the checkpoint and step it
came from, so that no run's history is ever rewritten and nothing is written
outside the log root.

Until the first step, SIGINT and SIGTERM end the start-up at once
(:class:`StartupInterrupted`), and the session removes a run directory it
created whenever start-up ends without reaching the first step.
"""

from __future__ import annotations

import signal
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from types import FrameType
from typing import Any

import attrs

from pamiqx.api.environment import Environment
from pamiqx.api.errors import EnvironmentUnavailableError, PamiqxError
from pamiqx.checkpoint import (
    create_run_dir,
    find_checkpoint,
    load_checkpoint,
    run_dir_around,
    run_dir_to_continue,
)
from pamiqx.experiment import ResolvedExperiment
from pamiqx.faults import PluginIdentity, summarise
from pamiqx.runtime.signals import StopRequest

_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class StartupInterrupted(BaseException):
    """SIGINT or SIGTERM arrived before the first step.

    A BaseException, like KeyboardInterrupt, so that plugin code catching
    ``Exception`` during build or setup does not swallow it.
    """

    def __init__(self, signal_name: str) -> None:
        """Remember which signal it was."""
        super().__init__(signal_name)
        self.signal_name = signal_name


class StartupSignals:
    """SIGINT/SIGTERM handler: interrupts start-up, then only asks the run to stop."""

    def __init__(self, stop: StopRequest) -> None:
        """Start armed: the first signal raises :class:`StartupInterrupted`."""
        self.stop = stop
        self.armed = True
        self.running = False

    def handler(self, signum: int, frame: FrameType | None) -> None:
        """Raise once during start-up; afterwards (and during clean-up) request a stop."""
        name = signal.Signals(signum).name
        if self.armed:
            self.armed = False
            raise StartupInterrupted(name)
        self.stop.request(name)

    def running_now(self) -> None:
        """Mark the first step as reached: a signal is now the loop's stop request."""
        self.armed = False
        self.running = True


@contextmanager
def startup_signals(stop: StopRequest) -> Iterator[StartupSignals]:
    """Install :class:`StartupSignals` for SIGINT and SIGTERM while the block runs."""
    guard = StartupSignals(stop)
    previous = {s: signal.signal(s, guard.handler) for s in _SIGNALS}
    try:
        yield guard
    finally:
        for s, old in previous.items():
            signal.signal(s, old)


@contextmanager
def signals_deferred() -> Iterator[None]:
    """Hold SIGINT and SIGTERM back (delivered on exit), e.g. while a folder is created."""
    signal.pthread_sigmask(signal.SIG_BLOCK, _SIGNALS)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_UNBLOCK, _SIGNALS)


@attrs.define
class Place:
    """Where a run goes and what it starts from.

    Attributes:
        run_dir: The run directory (None until created).
        created: True when this session creates ``run_dir`` (a new run or a branch).
        state: The checkpoint's state when resuming.
        meta: The checkpoint's ``meta.json`` when resuming.
        source: The checkpoint folder resumed from.
    """

    run_dir: Path | None = None
    created: bool = False
    state: dict[str, Any] | None = None
    meta: dict[str, Any] = attrs.Factory(dict)
    source: Path | None = None

    @property
    def branched(self) -> bool:
        """True for a new run directory continuing a checkpoint."""
        return self.created and self.source is not None

    def branched_from(self) -> dict[str, Any] | None:
        """The origin a branch records in its ``start`` event (None when not a branch)."""
        if not self.branched or self.source is None:
            return None
        source_run = run_dir_around(self.source)
        return {
            "checkpoint": str(self.source.resolve()),
            "step": int(self.meta["step"]),
            "run_dir": None if source_run is None else str(source_run.resolve()),
            "aim_run_hash": self.meta.get("aim_run_hash"),
        }


def choose_place(
    resolved: ResolvedExperiment,
    root: Path,
    resume: str | None,
    check_state: Callable[[dict[str, Any], Path], None],
) -> Place:
    """Find and check what ``--resume`` means; decide whether to continue or branch.

    Writes nothing: the caller creates a new run directory with :func:`create_place`.

    Args:
        resolved: The experiment being run.
        root: The log root (where ``latest`` looks, and new run directories go).
        resume: ``--resume``'s value, or None for a new run.
        check_state: Checks the loaded state's layout (raises CheckpointError).

    Returns:
        A place whose ``run_dir`` is set when a run continues in place.

    Raises:
        CheckpointError: Nothing to resume, or a foreign, corrupt or malformed checkpoint.
    """
    if not resume:
        return Place()
    name = resolved.experiment.name
    checkpoint = find_checkpoint(resume, root, name)
    state, meta = load_checkpoint(checkpoint, name)
    check_state(state, checkpoint)
    return Place(run_dir_to_continue(checkpoint), False, state, meta, checkpoint)


def create_place(place: Place, root: Path, name: str) -> None:
    """Create the run directory of a new run or a branch (signals held back meanwhile)."""
    if place.run_dir is None:
        with signals_deferred():
            place.run_dir = create_run_dir(root, name)
            place.created = True


def write_experiment_file(place: Place, resolved: ResolvedExperiment) -> None:
    """Write the resolved experiment into the run directory.

    A branch names its origin in the header; a resumed run whose settings changed
    keeps both files (``experiment.resumed-at-<step>.toml``).
    """
    assert place.run_dir is not None
    text = resolved.to_toml()
    origin = place.branched_from()
    if origin is not None:  # a header line of its own, after the provenance lines
        header, body = text.split("\n\n", 1)
        line = f"# Branched from {origin['checkpoint']} at step {origin['step']:,}."
        text = f"{header}\n{line}\n\n{body}"
    path = place.run_dir / "experiment.toml"
    if not path.exists():
        path.write_text(text)
    elif path.read_text() != text:
        step = int(place.meta.get("step", 0))
        (place.run_dir / f"experiment.resumed-at-{step}.toml").write_text(text)


def set_up(env: Environment, resolved: ResolvedExperiment) -> None:
    """Set an environment up, naming the plugin when a device or connection is missing."""
    who = PluginIdentity.of("environment", resolved.environment.entry)
    try:
        env.setup()
    except PamiqxError:
        raise
    except (OSError, RuntimeError, ConnectionError, TimeoutError) as error:
        raise EnvironmentUnavailableError(
            f"environment {who.label} could not start: {summarise(error)}"
        ) from error
    except Exception as error:
        raise who.fault("setup()", summarise(error)) from error


def interrupted_message(place: Place, signal_name: str) -> str:
    """Say what a signal during start-up left behind (the caller removed a created directory)."""
    if place.created or place.run_dir is None:
        kept = "no run directory is left"
    else:
        kept = f"the run directory {place.run_dir} is unchanged"
    again = "--resume continues from the same checkpoint" if place.source else "nothing was run"
    return f"stopped by {signal_name} during start-up, before the first step: {kept}; {again}."
