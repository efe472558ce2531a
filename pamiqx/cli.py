"""The ``pamiqx`` command line: run, validate, list-plugins, new-plugin, compare, sweep, tune.

User mistakes (:class:`pamiqx.errors.PamiqxError`) end with a one-paragraph
message on stderr and exit code 2; ``--debug`` shows the traceback instead.
Heavy imports (torch, aim) happen only inside the commands that need them.
``pamiqx --install-completion`` sets up shell completion (:mod:`pamiqx.completion`).
"""

from __future__ import annotations

import json
import re
import traceback
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape

from pamiqx import __version__
from pamiqx.api import PLUGIN_KINDS
from pamiqx.api.errors import PamiqxError
from pamiqx.completion import complete_experiment_file, complete_override

USER_ERROR_EXIT = 2

app = typer.Typer(
    name="pamiqx",
    help="Curiosity-driven reinforcement learning experiments, assembled from plugins.",
    add_completion=True,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
# emoji=False everywhere: messages quote file names and keys, and ':thumbs_up:' in a
# file name must print as typed, not as an emoji.
stderr = Console(stderr=True, highlight=False, soft_wrap=True, emoji=False)
_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f-\x9f]")


def plain(text: str) -> str:
    """Return ``text`` as one printable paragraph: control characters shown escaped.

    A newline or an escape sequence in a path or key would split the message or
    drive the terminal, so each is written as Python writes it in a string literal.
    """
    return _CONTROL.sub(lambda m: repr(m.group())[1:-1], text)


DebugOption = Annotated[
    bool,
    typer.Option("--debug", help="Show the full traceback of an error.", envvar="PAMIQX_DEBUG"),
]
FileArgument = Annotated[
    Path,
    typer.Argument(
        help="The experiment TOML file.",
        show_default=False,
        autocompletion=complete_experiment_file,
    ),
]
OverridesArgument = Annotated[
    list[str] | None,
    typer.Argument(
        help="Overrides KEY.PATH=VALUE (VALUE is TOML; a bare word is a string).",
        show_default=False,
        autocompletion=complete_override,
    ),
]


@contextmanager
def user_errors(debug: bool) -> Iterator[None]:
    """Turn user mistakes into a short message and exit code 2."""
    try:
        yield
    except PamiqxError as error:
        if debug:
            traceback.print_exc()
        # The message itself is plain text: "[models.encoder]" must not be read as markup.
        stderr.print(f"[bold red]error:[/] {escape(plain(str(error)))}", markup=True)
        if not debug:
            stderr.print("(run with --debug for the traceback)", style="dim")
        raise typer.Exit(USER_ERROR_EXIT) from None


def _version_callback(value: bool) -> None:
    if value:
        typer.echo(f"pamiqx {__version__}")
        raise typer.Exit()


@app.callback()
def _main(
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_version_callback, is_eager=True, help="Print the version."
        ),
    ] = False,
) -> None:
    """Curiosity-driven reinforcement learning experiments, assembled from plugins."""


@app.command("list-plugins")
def list_plugins(
    kind: Annotated[
        str | None,
        typer.Option(
            "--kind", help="Only this kind: environment, representation, model or curiosity."
        ),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")] = False,
    debug: DebugOption = False,
) -> None:
    """List every installed plugin, and the plugins that failed to load."""
    from pamiqx.api.search import describe_search_space
    from pamiqx.plugins.manager import load_plugins

    with user_errors(debug):
        if kind is not None and kind not in PLUGIN_KINDS:
            from pamiqx.suggest import did_you_mean

            raise PamiqxError(
                f"--kind '{kind}' is not a plugin kind.{did_you_mean(kind, PLUGIN_KINDS)} "
                f"Kinds: {', '.join(PLUGIN_KINDS)}."
            )
        manager = load_plugins()
        entries = [e for e in manager.entries if kind is None or e.kind == kind]
        entries.sort(key=lambda e: (PLUGIN_KINDS.index(e.kind), e.name, e.distribution))
        if as_json:
            payload: dict[str, Any] = {
                "plugins": [
                    {
                        "kind": e.kind,
                        "name": e.name,
                        "distribution": e.distribution,
                        "version": e.version,
                        "summary": e.plugin.summary(),
                        "search_space": describe_search_space(e.plugin.Options),
                    }
                    for e in entries
                ],
                "failures": [
                    {
                        "distribution": f.distribution,
                        "version": f.version,
                        "entry_point": f.entry_point,
                        "reason": f.reason,
                    }
                    for f in manager.failures
                ],
            }
            typer.echo(json.dumps(payload, indent=2))
            return
        from rich.table import Table
        from rich.text import Text

        def cells(*values: str) -> list[Text]:
            # Text cells: a summary such as "pamiqx[minigrid]" is not markup.
            return [Text(plain(value)) for value in values]

        out = Console(highlight=False, emoji=False)
        table = Table(title="pamiqx plugins", title_justify="left")
        for column in ("kind", "name", "distribution", "version", "description"):
            table.add_column(column, overflow="fold")
        for e in entries:
            table.add_row(*cells(e.kind, e.name, e.distribution, e.version, e.plugin.summary()))
        out.print(table)
        if manager.failures:
            failed = Table(title="Plugins that failed to load", title_justify="left", style="red")
            for column in ("distribution", "version", "entry point", "reason"):
                failed.add_column(column, overflow="fold")
            for f in manager.failures:
                failed.add_row(*cells(f.distribution, f.version, f.entry_point, f.reason))
            out.print(failed)


@app.command()
def validate(
    file: FileArgument,
    overrides: OverridesArgument = None,
    debug: DebugOption = False,
) -> None:
    """Check an experiment file and print it resolved, every default filled in."""
    from pamiqx.experiment import load_experiment

    with user_errors(debug):
        resolved = load_experiment(file, overrides or [])
        typer.echo(resolved.to_toml(), nl=False)


@app.command()
def run(
    file: FileArgument,
    overrides: OverridesArgument = None,
    resume: Annotated[
        str | None,
        typer.Option(
            "--resume",
            help="Continue from a checkpoint folder, a run directory, or 'latest'.",
            show_default=False,
        ),
    ] = None,
    debug: DebugOption = False,
) -> None:
    """Run an experiment: build its plugins and train until run.max_steps."""
    from pamiqx.experiment import load_experiment
    from pamiqx.plugins.manager import load_plugins
    from pamiqx.runtime.session import run_experiment

    with user_errors(debug):
        manager = load_plugins()
        resolved = load_experiment(file, overrides or [], manager)
        console = Console(emoji=False)  # the summary quotes run.log_dir as typed
        code = run_experiment(resolved, manager, resume=resume, console=console)
    raise typer.Exit(code)


@app.command("new-plugin")
def new_plugin(
    kind: Annotated[str, typer.Argument(help="Plugin kind; 'curiosity' is supported.")],
    name: Annotated[str, typer.Argument(help="Plugin name, e.g. count-based.")],
    directory: Annotated[
        Path, typer.Option("--dir", help="Folder in which the package folder is created.")
    ] = Path("."),
    debug: DebugOption = False,
) -> None:
    """Write a new plugin package (pyproject, entry point, mechanism, tests, README)."""
    from pamiqx.plugins.manager import load_plugins
    from pamiqx.scaffold import install_hint, new_curiosity_package

    with user_errors(debug):
        if kind != "curiosity":
            raise PamiqxError(f"new-plugin {kind}: only 'curiosity' packages can be generated.")
        # A name already installed (of any kind) would make `curiosity.plugin = NAME`
        # ambiguous or confusing; refuse it before anything is written.
        taken = {
            e.name: f"{e.kind} plugin '{e.name}' of {e.distribution} {e.version}"
            for e in load_plugins().entries
        }
        root = new_curiosity_package(name, directory, taken)
        typer.echo(f"wrote {root}")
        typer.echo(f"next: {install_hint(root)}")


@app.command()
def compare(
    run_dirs: Annotated[
        list[Path],
        typer.Argument(
            help="Run directories, or folders searched for them (e.g. logs/ or logs/rnd-maze).",
            show_default=False,
        ),
    ],
    out: Annotated[
        str | None,
        typer.Option(
            "--out",
            "-o",
            help=(
                "report.png (.svg, .pdf): both plots in one figure; report.html: a "
                "self-contained page with plots and table; DIR/ (or no suffix): "
                "coverage.png, intrinsic.png and summary.md. Default: the table only."
            ),
            show_default=False,
        ),
    ] = None,
    repo: Annotated[
        Path | None,
        typer.Option(
            "--repo",
            help="Read every run from this Aim repository (default: the one each run recorded).",
            show_default=False,
        ),
    ] = None,
    threshold: Annotated[
        float,
        typer.Option(
            "--threshold", min=0.0, max=1.0, help="Coverage level of the 'steps to' column."
        ),
    ] = 0.5,
    debug: DebugOption = False,
) -> None:
    """Compare curiosities: coverage and intrinsic reward over seeds, a summary table."""
    from pamiqx.compare import (
        differing_settings,
        load_runs,
        notes,
        output_target,
        rich_table,
        summarize,
        write_report,
    )

    def warn(message: str) -> None:
        stderr.print(f"[yellow]warning:[/] {escape(plain(message))}", markup=True)

    with user_errors(debug):
        if out is not None:
            output_target(out)  # a bad --out fails before the runs are read
        groups = summarize(load_runs(run_dirs, repo=repo, warn=warn), threshold)
        for group in groups:
            differing = differing_settings(group)
            if differing:
                shown = ", ".join(differing[:5]) + (", ..." if len(differing) > 5 else "")
                warn(f"the runs of '{group.key}' differ in more than their seed ({shown}).")
        console = Console(highlight=False, emoji=False)
        console.print(rich_table(groups))
        for note in notes(groups):
            console.print(note, style="dim", markup=False)
        if out is not None:
            for path in write_report(groups, out):
                console.print(f"wrote {path}", markup=False)


SweepFileArgument = Annotated[
    Path,
    typer.Argument(help="The sweep TOML file.", show_default=False),
]
AddressOption = Annotated[
    str | None,
    typer.Option(
        "--address",
        help="A Ray cluster: 'auto', HOST:PORT or ray://HOST:PORT (default: a local Ray).",
        show_default=False,
    ),
]
StorageOption = Annotated[
    Path | None,
    typer.Option(
        "--storage",
        help="Where runs and Ray's state go (a shared filesystem on a cluster); "
        "default: the file's storage, or logs/sweeps/<name>.",
        show_default=False,
    ),
]


@app.command()
def sweep(
    file: SweepFileArgument,
    overrides: OverridesArgument = None,
    address: AddressOption = None,
    storage: StorageOption = None,
    resume: Annotated[
        bool,
        typer.Option(
            "--resume", help="Continue the sweep in its storage folder, skipping finished runs."
        ),
    ] = False,
    debug: DebugOption = False,
) -> None:
    """Run a sweep file's grid of experiments on Ray, each trial an ordinary pamiqx run.

    Every expanded experiment is validated before anything starts. A failed or
    lost trial is retried from its latest checkpoint. Exit code 1 when a trial
    failed, 130 when the sweep stopped early (`--resume` continues it).
    """
    from pamiqx.sweep import run_sweep

    with user_errors(debug):
        code = run_sweep(file, storage, address, resume, overrides or [])
    raise typer.Exit(code)


@app.command()
def tune(
    file: SweepFileArgument,
    overrides: OverridesArgument = None,
    address: AddressOption = None,
    storage: StorageOption = None,
    debug: DebugOption = False,
) -> None:
    """Tune each variant of a tune file with ASHA, then write its best settings as experiments.

    Every variant gets the same trials and steps; the tuned experiment files and a
    sweep file that evaluates them on fresh seeds go to tune.out.
    """
    from pamiqx.sweep.tune import run_tune

    with user_errors(debug):
        code = run_tune(file, storage, address, overrides or [])
    raise typer.Exit(code)


def main() -> None:
    """Console-script entry point."""
    app()


if __name__ == "__main__":
    main()
