"""The comparison as plots (matplotlib) and as report files.

The table's text, its notes and the lists of runs are made in
:mod:`pamiqx.compare.tables` (re-exported here).

``--out`` decides what is written:

* ``report.png`` (or ``.svg``, ``.pdf``): one figure, coverage and intrinsic
  reward side by side;
* ``report.html``: a self-contained page, the figure embedded as a base64 PNG,
  the summary table, the notes and the list of runs;
* ``DIR/`` or a path without suffix: ``DIR/coverage.png``, ``DIR/intrinsic.png``
  and ``DIR/summary.md`` (the table and the plots, ready for a README).

matplotlib is imported by the functions that draw, and only its object-oriented
API is used (no pyplot): no backend is chosen and no global figure state kept.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from pamiqx.compare.errors import CompareError
from pamiqx.compare.runs import COVERAGE, INTRINSIC
from pamiqx.compare.stats import Band, GroupSummary
from pamiqx.compare.tables import (
    headers,
    html_page,
    left_out_lines,
    markdown,
    notes,
    rich_table,
    table_rows,
)

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

__all__ = [
    "figure",
    "headers",
    "html_page",
    "left_out_lines",
    "markdown",
    "notes",
    "output_target",
    "rich_table",
    "table_rows",
    "write_report",
]

OutputKind = Literal["figure", "html", "dir"]
FIGURE_SUFFIXES = (".png", ".svg", ".pdf")
HTML_SUFFIXES = (".html", ".htm")
DPI = 120
BAND_LABEL = "mean over seeds; band: min–max"
_TITLES = {
    COVERAGE: "Coverage (fraction of floor cells visited)",
    INTRINSIC: "Intrinsic reward (raw, mean per rollout)",
}
_FILES = {COVERAGE: "coverage.png", INTRINSIC: "intrinsic.png"}


def output_target(out: str) -> tuple[OutputKind, Path]:
    """Decide what ``--out`` asks for, before any run is read.

    Args:
        out: The option's text; a trailing ``/`` always means a folder.

    Returns:
        (kind, path): ``figure`` for .png/.svg/.pdf, ``html`` for .html, ``dir``
        for a folder (an existing one, a trailing slash, or no suffix).

    Raises:
        CompareError: An unsupported suffix, or a file where a folder is asked for.
    """
    path = Path(out)
    suffix = path.suffix.lower()
    if out.endswith(("/", "\\")) or path.is_dir() or not suffix:
        if path.exists() and not path.is_dir():
            raise CompareError(f"--out {path} is a file; a folder (or .png/.html) was expected.")
        return "dir", path
    if suffix in FIGURE_SUFFIXES:
        return "figure", path
    if suffix in HTML_SUFFIXES:
        return "html", path
    raise CompareError(
        f"--out {path}: '{suffix}' is not a supported output. Use a figure "
        f"({', '.join(FIGURE_SUFFIXES)}), an HTML page (.html), or a folder (a path "
        "ending in '/' or without suffix) for coverage.png, intrinsic.png and summary.md."
    )


# --- the plots ------------------------------------------------------------------------


def figure(
    groups: Sequence[GroupSummary], metrics: Sequence[str] = (COVERAGE, INTRINSIC)
) -> Figure:
    """One panel per metric against environment steps, one line and band per group.

    Args:
        groups: Summaries, ranked (the order gives the colours, same in every panel).
        metrics: :data:`COVERAGE` and/or :data:`INTRINSIC`.

    Returns:
        A matplotlib figure (not attached to pyplot).
    """
    from matplotlib.figure import Figure

    fig = Figure(figsize=(5.5 * len(metrics), 4.2), layout="constrained")
    axes = fig.subplots(1, len(metrics), squeeze=False)[0]
    for ax, metric in zip(axes, metrics, strict=True):
        _panel(ax, groups, metric)
    return fig


def _panel(ax: Axes, groups: Sequence[GroupSummary], metric: str) -> None:
    from matplotlib.ticker import PercentFormatter, StrMethodFormatter

    drawn: list[Band] = []
    for i, group in enumerate(groups):
        data = group.coverage if metric == COVERAGE else group.intrinsic
        if data is None:
            continue
        # Ten colours, then the same colours dashed: eleven mechanisms stay distinct.
        color = f"C{i % 10}"
        style = "-" if i < 10 else "--"
        seeds = f"{data.seeds} seed" + ("s" if data.seeds != 1 else "")
        label = f"{group.key} ({seeds})"
        ax.plot(data.steps, data.mean, color=color, linestyle=style, label=label)
        ax.fill_between(data.steps, data.low, data.high, color=color, alpha=0.2, linewidth=0)
        drawn.append(data)
    ax.set_title(_TITLES[metric], fontsize=11)
    ax.set_xlabel("environment steps")
    ax.xaxis.set_major_formatter(StrMethodFormatter("{x:,.0f}"))
    ax.grid(alpha=0.3)
    if not drawn:
        ax.text(0.5, 0.5, f"no '{metric}' series in these runs", ha="center", va="center")
        ax.set_axis_off()
        return
    if metric == COVERAGE:
        ax.set_ylim(0.0, 1.0)
        ax.yaxis.set_major_formatter(PercentFormatter(1.0))
    elif _wide_positive(drawn):
        # Mechanisms' raw rewards differ by orders of magnitude.
        ax.set_yscale("log")
    ax.legend(title=BAND_LABEL, title_fontsize=8, fontsize=8, loc="best")


def _wide_positive(bands: Sequence[Band]) -> bool:
    """Whether all values are positive and span more than two orders of magnitude."""
    low = min(float(b.low.min()) for b in bands)
    high = max(float(b.high.max()) for b in bands)
    return low > 0 and high / low > 100


def _png(fig: Figure) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=DPI)
    return buffer.getvalue()


def write_report(groups: Sequence[GroupSummary], out: str) -> list[Path]:
    """Write the comparison where ``--out`` says (see the module docstring).

    Args:
        groups: Summaries, ranked.
        out: The ``--out`` text.

    Returns:
        The files written.

    Raises:
        CompareError: An unsupported output, or the files cannot be written.
    """
    kind, path = output_target(out)
    try:
        if kind == "dir":
            path.mkdir(parents=True, exist_ok=True)
            written = []
            for metric in (COVERAGE, INTRINSIC):
                target = path / _FILES[metric]
                figure(groups, [metric]).savefig(target, dpi=DPI)
                written.append(target)
            summary = path / "summary.md"
            images = [("coverage", _FILES[COVERAGE]), ("intrinsic reward", _FILES[INTRINSIC])]
            summary.write_text(markdown(groups, images), encoding="utf-8")
            return [*written, summary]
        path.parent.mkdir(parents=True, exist_ok=True)
        if kind == "figure":
            figure(groups).savefig(path, dpi=DPI)
        else:
            path.write_text(html_page(groups, _png(figure(groups))), encoding="utf-8")
        return [path]
    except OSError as error:
        raise CompareError(f"Cannot write {path}: {error.strerror or error}.") from None
