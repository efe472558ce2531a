"""Shell completion of ``pamiqx run`` and ``pamiqx validate`` (``pamiqx --install-completion``).

The experiment file completes to ``*.toml`` files and folders. An override
completes to the experiment's settings with their current values
(``policy.l`` → ``policy.lr=0.0003``), and after ``environment.plugin=``,
``models.<role>.plugin=`` or ``curiosity.plugin=`` to the installed plugins of
that kind. The settings come from the experiment file named earlier on the
command line, with the overrides typed before the one being completed (so that
``curiosity.plugin=icm curiosity.<TAB>`` offers icm's options). A file that does
not load completes no settings: completion never prints an error.

:func:`complete_experiment_file` and :func:`complete_override` are the typer
``autocompletion`` callbacks; the functions they call take and return plain
values, so that each is tested on its own.

bash splits words at ``=`` and ``:`` (``COMP_WORDBREAKS``) and replaces only the
text after the last of them: ``curiosity.plugin=r`` reaches pamiqx as
``curiosity.plugin``, ``=``, ``r`` and must be answered with ``rnd``.
:func:`current_word` and :func:`rejoin_words` undo that split; zsh and fish
pass whole words and get whole candidates.
"""

from __future__ import annotations

import os
import re
import shlex
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from pamiqx.api.errors import PamiqxError

if TYPE_CHECKING:
    from pamiqx.api import PluginKind
    from pamiqx.plugins.manager import PluginManager

__all__ = [
    "bash_break_token",
    "complete_experiment_file",
    "complete_override",
    "current_word",
    "flatten",
    "load_settings",
    "override_candidates",
    "plugin_kind",
    "rejoin_words",
    "toml_path_candidates",
    "value_text",
]

# Characters of COMP_WORDBREAKS that occur in overrides.
_BREAKS = frozenset("=:")
# Values a shell passes on unchanged without quotes (bash inserts candidates as they are).
_SHELL_SAFE = re.compile(r"[A-Za-z0-9_.,:/+~@%=\[\]-]*")
_PLUGIN_KINDS: dict[str, PluginKind] = {
    "environment.plugin": "environment",
    "curiosity.plugin": "curiosity",
}
_MODEL_PLUGIN = re.compile(r"models\.[A-Za-z0-9_-]+\.plugin")
# How many single-folder levels a path completion descends (a bound for symlink loops).
_DESCENT_LIMIT = 16


# --- settings and their values ---------------------------------------------------------------


def flatten(table: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Return nested tables as dotted keys: ``{"policy": {"lr": 3e-4}}`` → ``{"policy.lr": 3e-4}``.

    Args:
        table: Nested TOML data (e.g. ``ResolvedExperiment.to_dict()``).
        prefix: Prepended to every key.
    """
    flat: dict[str, Any] = {}
    for key, value in table.items():
        if isinstance(value, Mapping):
            flat.update(flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def value_text(value: Any) -> str | None:
    """Return a value as typed after ``KEY=`` in an override, or None when it needs quotes.

    The text reads back as the same value (``parse_override``) and passes through
    a shell unquoted: ``0.0003``, ``true``, ``sim-maze``, ``[32,64,64]``. Strings
    with spaces, empty strings and lists of strings give None.
    """
    text = _toml_text(value)
    if text is None or not _SHELL_SAFE.fullmatch(text):
        return None
    from pamiqx.experiment import parse_override

    try:
        _, parsed = parse_override(f"v={text}")
    except PamiqxError:
        return None
    # repr also tells 1 from 1.0 and True, and nan from nothing.
    return text if type(parsed) is type(value) and repr(parsed) == repr(value) else None


def _toml_text(value: Any) -> str | None:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return repr(value)  # round-trips, and TOML reads inf, nan and 1e-05 alike
    if isinstance(value, int | str):
        return str(value)
    if isinstance(value, list) and not any(isinstance(item, str) for item in value):
        items = [_toml_text(item) for item in value]
        return None if None in items else f"[{','.join(str(item) for item in items)}]"
    return None


def plugin_kind(key: str) -> PluginKind | None:
    """Return the plugin kind an override key selects (``curiosity.plugin``), else None."""
    if _MODEL_PLUGIN.fullmatch(key):
        return "model"
    return _PLUGIN_KINDS.get(key)


def override_candidates(
    word: str,
    settings: Mapping[str, Any],
    plugin_names: Callable[[PluginKind], Sequence[str]],
) -> list[str]:
    """Return the overrides that complete ``word``.

    Args:
        word: The override typed so far, e.g. ``policy.l`` or ``curiosity.plugin=r``.
        settings: The experiment's settings as dotted key -> value (:func:`flatten`).
        plugin_names: The installed plugin names of a kind.

    Returns:
        ``KEY=NAME`` for each plugin whose name starts with what follows
        ``<kind key>=``; otherwise ``KEY=VALUE`` (``KEY=`` when the value needs
        quotes) for each setting that starts with ``word``, in the experiment's order.
    """
    key, sep, typed = word.partition("=")
    kind = plugin_kind(key) if sep else None
    if kind is not None:
        return [f"{key}={name}" for name in plugin_names(kind) if name.startswith(typed)]
    candidates = []
    for setting, value in settings.items():
        candidate = f"{setting}={value_text(value) or ''}"
        if candidate.startswith(word):
            candidates.append(candidate)
    return candidates


def load_settings(
    path: Path, overrides: Sequence[str], manager: PluginManager | None = None
) -> dict[str, Any]:
    """Return an experiment's resolved settings as dotted keys, or {} when it does not load.

    Args:
        path: The experiment file.
        overrides: Overrides applied first; when they do not apply (one half typed,
            a misspelt key), the file alone is loaded.
        manager: A loaded plugin registry (discovered when None).
    """
    from pamiqx.experiment import load_experiment

    for attempt in ([*overrides], []) if overrides else ([],):
        try:
            return flatten(load_experiment(path, attempt, manager).to_dict())
        except PamiqxError:
            continue
    return {}


# --- the command line as the shell passes it -------------------------------------------------


def _is_break(token: str) -> bool:
    return bool(token) and set(token) <= _BREAKS


def current_word(args: Sequence[str], incomplete: str) -> tuple[int, str, str]:
    """Reassemble the word being completed from bash's pieces.

    Args:
        args: The words before the one being completed, as the shell split them.
        incomplete: The word being completed, as the shell split it.

    Returns:
        ``(glued, before, word)``: how many of the last ``args`` belong to the word,
        the word's text before bash's completion point (what every candidate must
        lose, as bash keeps it), and the whole word. For zsh, fish and words without
        ``=`` or ``:``: ``(0, "", incomplete)``.
    """
    pieces = [incomplete] if _is_break(incomplete) else []
    rest = "" if pieces else incomplete
    glued = 0
    while glued < len(args):
        previous = args[-1 - glued]
        if not (_is_break(previous) or (pieces and _is_break(pieces[0]))):
            break
        pieces.insert(0, previous)
        glued += 1
    before = "".join(pieces)
    return glued, before, before + rest


def bash_break_token(comp_words: str, comp_cword: str) -> str:
    """Return the word bash completes when it is a lone ``=`` or ``:``, else ``""``.

    Click turns a word ``=`` into ``""`` before a completion callback sees it, so
    ``curiosity.plugin=<TAB>`` would look like ``curiosity.plugin <TAB>``; the
    ``COMP_WORDS`` and ``COMP_CWORD`` that bash passes still tell them apart.

    Args:
        comp_words: ``$COMP_WORDS``: the command line's words joined by spaces.
        comp_cword: ``$COMP_CWORD``: the index of the word being completed.
    """
    lexer = shlex.shlex(comp_words, posix=True)
    lexer.whitespace_split = True
    lexer.commenters = ""
    try:
        words = list(lexer)
        token = words[int(comp_cword)]
    except (ValueError, IndexError):  # an open quote, a bad index: nothing to tell
        return ""
    return token if _is_break(token) else ""


def rejoin_words(tokens: Sequence[str]) -> list[str]:
    """Join bash's pieces of complete words: ``a``, ``=``, ``1`` → ``a=1``."""
    words: list[str] = []
    glue = False
    for token in tokens:
        if words and (glue or _is_break(token)):
            words[-1] += token
        else:
            words.append(token)
        glue = _is_break(token)
    return words


# --- files ----------------------------------------------------------------------------------


def toml_path_candidates(incomplete: str, cwd: Path | None = None) -> list[str]:
    """Return the ``*.toml`` files and folders that complete a path.

    A single folder is replaced by its contents, so that a shell inserts
    ``experiments/`` without the space it puts after a single candidate.

    Args:
        incomplete: The path typed so far.
        cwd: The folder relative paths start from (default: the working directory).

    Returns:
        Paths as typed plus the rest of a name, folders ending in ``/``, in name
        order; hidden entries only when the name typed starts with ``.``.
    """
    candidates = _path_entries(incomplete, cwd)
    for _ in range(_DESCENT_LIMIT):
        if len(candidates) != 1 or not candidates[0].endswith("/"):
            break
        inside = _path_entries(candidates[0], cwd)
        if not inside:
            break
        candidates = inside
    return candidates


def _path_entries(incomplete: str, cwd: Path | None) -> list[str]:
    head, slash, name = incomplete.rpartition("/")
    typed_folder = head + slash
    folder = Path(os.path.expanduser(typed_folder or "."))
    if cwd is not None and not folder.is_absolute():
        folder = cwd / folder
    try:
        entries = sorted(folder.iterdir())
    except OSError:
        return []
    found = []
    for entry in entries:
        if not entry.name.startswith(name) or (entry.name[:1] == "." and name[:1] != "."):
            continue
        if entry.is_dir():
            found.append(f"{typed_folder}{entry.name}/")
        elif entry.suffix == ".toml" and entry.is_file():
            found.append(f"{typed_folder}{entry.name}")
    return found


# --- typer callbacks ------------------------------------------------------------------------


def complete_experiment_file(incomplete: str) -> list[str]:
    """Typer ``autocompletion`` of the experiment file argument: ``*.toml`` files and folders."""
    return toml_path_candidates(incomplete)


def complete_override(ctx: typer.Context, incomplete: str) -> list[str]:
    """Typer ``autocompletion`` of the overrides argument of ``run`` and ``validate``.

    Args:
        ctx: The command's context; its ``file`` and ``overrides`` parameters hold
            the words before the one being completed, as the shell split them.
        incomplete: The word being completed, as the shell split it.

    Returns:
        The candidates, without the part bash keeps (see :func:`current_word`).
    """
    # (Right after a ':' nothing is offered: typer keeps only candidates starting with
    # the word, here ':', which bash would then insert twice.)
    if not incomplete and "COMP_WORDS" in os.environ:
        incomplete = bash_break_token(os.environ["COMP_WORDS"], os.environ.get("COMP_CWORD", ""))
    typed = list(ctx.params.get("overrides") or ())
    glued, before, word = current_word(typed, incomplete)
    earlier = rejoin_words(typed[: len(typed) - glued])
    file = ctx.params.get("file")
    try:
        from pamiqx.plugins.manager import load_plugins

        manager = load_plugins()
        settings = load_settings(Path(file), earlier, manager) if file else {}
        candidates = override_candidates(word, settings, manager.names)
    except Exception:  # noqa: BLE001 - a traceback would land in the middle of the prompt
        return []
    return [candidate[len(before) :] for candidate in candidates]
