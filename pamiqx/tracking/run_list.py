"""aim's cached list of a repository's runs (aim 3.29).

``Repo._all_run_hashes`` keeps a repository's run list for 0.5 s, and
``Repo.from_path`` keeps the repository for the process: a run this process
finished a moment ago would be missing from the list (a ``read_metrics`` or a
resume right after a run). :func:`forget_cached_run_list` makes the next listing
read the repository's folder again.
"""

from __future__ import annotations

__all__ = ["forget_cached_run_list"]


def forget_cached_run_list() -> None:
    """Drop aim's cached run lists; with another aim that has no such cache, do nothing."""
    from aim.sdk.repo import Repo

    clear = getattr(getattr(Repo, "_all_run_hashes", None), "cache_clear", None)
    if callable(clear):
        clear()
