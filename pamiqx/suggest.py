"""'Did you mean ...' suggestions for misspelt keys and plugin names."""

from __future__ import annotations

import difflib
from collections.abc import Iterable


def did_you_mean(word: str, candidates: Iterable[str], prefix: str = "") -> str:
    """Return a ' Did you mean ...?' sentence for the closest candidates, or ''.

    Args:
        word: What the user wrote.
        candidates: The valid spellings.
        prefix: Dotted table path shown before each suggestion (``"run"`` gives
            ``'run.max_steps'``).

    Returns:
        A sentence starting with a space, or an empty string when nothing is close.
    """
    matches = difflib.get_close_matches(word, list(candidates), n=2, cutoff=0.6)
    if not matches:
        return ""
    shown = [f"{prefix}.{m}" if prefix else m for m in matches]
    return " Did you mean " + " or ".join(f"'{m}'" for m in shown) + "?"
