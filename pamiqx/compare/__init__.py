"""``pamiqx compare``: compare curiosity mechanisms by how their runs explored.

:func:`load_runs` reads run directories (:mod:`pamiqx.compare.run_dirs`) and
their metrics from Aim (:mod:`pamiqx.compare.runs`), :func:`summarize` groups
them by curiosity and computes the statistics over seeds
(:mod:`pamiqx.compare.stats`), leaving failed, unfinished and duplicate runs out
(:mod:`pamiqx.compare.selection`), and :func:`write_report` draws and writes them
(:mod:`pamiqx.compare.report`, the text in :mod:`pamiqx.compare.tables`).
``pamiqx sweep`` (:mod:`pamiqx.sweep`) runs the comparison's runs first.

Importing this package imports numpy but neither torch, aim nor matplotlib.
"""

from __future__ import annotations

from pamiqx.compare.errors import CompareError
from pamiqx.compare.report import markdown, notes, output_target, rich_table, write_report
from pamiqx.compare.runs import COVERAGE, INTRINSIC, RATE, RunRecord, load_runs
from pamiqx.compare.selection import LeftOut, partition
from pamiqx.compare.stats import Band, GroupSummary, differing_settings, summarize

__all__ = [
    "COVERAGE",
    "INTRINSIC",
    "RATE",
    "Band",
    "CompareError",
    "GroupSummary",
    "LeftOut",
    "RunRecord",
    "differing_settings",
    "load_runs",
    "markdown",
    "notes",
    "output_target",
    "partition",
    "rich_table",
    "summarize",
    "write_report",
]
