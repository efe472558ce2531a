"""The comparison as plots (matplotlib, rliable's plotting) and as report files.

The table's text, its notes, the claims and the lists of runs are made in
:mod:`pamiqx.compare.tables` (re-exported here).

``--out`` decides what is written:

* ``report.png`` (or ``.svg``, ``.pdf``): one figure, coverage and intrinsic
  reward per world side by side, and the performance profile across worlds;
* ``report.html``: a self-contained page, the figure embedded as a base64 PNG,
  the summary table, the notes, the claims and the list of runs;
* ``DIR/`` or a path without suffix: ``DIR/coverage.png``, ``DIR/intrinsic.png``,
  ``DIR/profile.png`` and ``DIR/summary.md`` (the table and the plots, ready for
  a README).

Curves are the IQM over seeds with a pointwise bootstrap band, drawn with
``rliable.plot_utils.plot_sample_efficiency_curve``; the performance profile
with ``rliable.plot_utils.plot_performance_profiles``. Figures are made with
matplotlib's object-oriented API and handed to rliable as axes: rliable's module
imports pyplot, but no pyplot figure is created and no global figure state kept.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import numpy as np

from pamiqx.compare.curves import CURVE_REPS, Band
from pamiqx.compare.errors import CompareError
from pamiqx.compare.intervals import performance_profiles, plot_utils
from pamiqx.compare.profiles import profile_scores
from pamiqx.compare.runs import COVERAGE, INTRINSIC
from pamiqx.compare.stats import GroupSummary
from pamiqx.compare.tables import (
    claims,
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
    "claims",
    "figure",
    "headers",
    "html_page",
    "left_out_lines",
    "markdown",
    "notes",
    "output_target",
    "profile_figure",
    "rich_table",
    "table_rows",
    "write_report",
]

OutputKind = Literal["figure", "html", "dir"]
FIGURE_SUFFIXES = (".png", ".svg", ".pdf")
HTML_SUFFIXES = (".html", ".htm")
DPI = 120
BAND_LABEL = "IQM over seeds; band: pointwise 95% CI"
_TITLES = {
    COVERAGE: "Coverage (fraction of floor cells visited)",
    INTRINSIC: "Intrinsic reward (raw, mean per rollout)",
}
_FILES = {COVERAGE: "coverage.png", INTRINSIC: "intrinsic.png"}
PROFILE_FILE = "profile.png"
#: Thresholds of the performance profile (final coverage levels).
TAUS = np.linspace(0.0, 1.0, 101)


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
        "ending in '/' or without suffix) for coverage.png, intrinsic.png, profile.png "
        "and summary.md."
    )


# --- the plots ------------------------------------------------------------------------


LineStyle = Literal["-", "--"]
Style = tuple[str, LineStyle]


def _styles(groups: Sequence[GroupSummary]) -> dict[str, Style]:
    """(colour, line style) per curiosity, the same in every panel and world."""
    styles: dict[str, Style] = {}
    for group in groups:
        if group.curiosity not in styles:
            i = len(styles)
            # Ten colours, then the same colours dashed: eleven mechanisms stay distinct.
            styles[group.curiosity] = (f"C{i % 10}", "-" if i < 10 else "--")
    return styles


def _worlds(groups: Sequence[GroupSummary]) -> list[str]:
    return list(dict.fromkeys(group.world for group in groups)) or ["?"]


def figure(
    groups: Sequence[GroupSummary],
    metrics: Sequence[str] = (COVERAGE, INTRINSIC),
    profile: bool = True,
) -> Figure:
    """One row of panels per world (one panel per metric), then the performance profile.

    Args:
        groups: Summaries, ranked (the order gives the colours, same in every panel).
        metrics: :data:`COVERAGE` and/or :data:`INTRINSIC`.
        profile: Add the performance profile across worlds below, full width.

    Returns:
        A matplotlib figure (not attached to pyplot).
    """
    from matplotlib.figure import Figure

    worlds = _worlds(groups)
    styles = _styles(groups)
    rows = len(worlds) + (1 if profile else 0)
    fig = Figure(figsize=(5.5 * len(metrics), 4.2 * rows), layout="constrained")
    grid = fig.add_gridspec(rows, len(metrics))
    for row, world in enumerate(worlds):
        members = [group for group in groups if group.world == world]
        for column, metric in enumerate(metrics):
            title = _TITLES[metric] + (f"\n{world}" if len(worlds) > 1 else "")
            _panel(fig.add_subplot(grid[row, column]), members, metric, styles, title)
    if profile:
        _profile_panel(fig.add_subplot(grid[len(worlds), :]), groups, styles)
    return fig


def profile_figure(groups: Sequence[GroupSummary]) -> Figure:
    """The performance profile across worlds on its own.

    Args:
        groups: Summaries, ranked.

    Returns:
        A matplotlib figure (not attached to pyplot).
    """
    from matplotlib.figure import Figure

    fig = Figure(figsize=(7.0, 4.6), layout="constrained")
    _profile_panel(fig.add_subplot(1, 1, 1), groups, _styles(groups))
    return fig


def _panel(
    ax: Axes, groups: Sequence[GroupSummary], metric: str, styles: dict[str, Style], title: str
) -> None:
    from matplotlib.ticker import PercentFormatter, StrMethodFormatter

    rliable_plots = plot_utils()
    drawn: list[Band] = []
    for group in groups:
        data = group.coverage if metric == COVERAGE else group.intrinsic
        if data is None:
            continue
        color, style = styles[group.curiosity]
        seeds = f"{data.seeds} seed" + ("s" if data.seeds != 1 else "")
        label = f"{group.curiosity} ({seeds})"
        rliable_plots.plot_sample_efficiency_curve(
            data.steps,
            {label: data.iqm},
            {label: (data.low, data.high)},
            algorithms=[label],
            colors={label: color},
            ax=ax,
            marker="",
            linewidth=1.5,
            xlabel="environment steps",
            ylabel="",
            labelsize="medium",
            ticklabelsize="small",
        )
        ax.lines[-1].set_linestyle(style)
        drawn.append(data)
    ax.set_title(title, fontsize=11)
    ax.xaxis.set_major_formatter(StrMethodFormatter("{x:,.0f}"))
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


def _profile_panel(ax: Axes, groups: Sequence[GroupSummary], styles: dict[str, Style]) -> None:
    scores = profile_scores(groups)
    worlds = ", ".join(scores.worlds)
    ax.set_title(f"Performance profile: final coverage over runs in {worlds}", fontsize=11)
    if not scores.scores:
        ax.text(0.5, 0.5, f"no '{COVERAGE}' series in these runs", ha="center", va="center")
        ax.set_axis_off()
        return
    profiles, bands = performance_profiles(scores.scores, TAUS, reps=CURVE_REPS)
    plot_utils().plot_performance_profiles(
        profiles,
        TAUS,
        performance_profile_cis=bands,
        ax=ax,
        colors={name: styles[name][0] for name in profiles},
        linestyles={name: styles[name][1] for name in profiles},
        linewidth=1.5,
        xlabel="final coverage level τ",
        ylabel="fraction of runs above τ",
        labelsize="medium",
        ticklabelsize="small",
    )
    runs = {name: matrix.size for name, matrix in scores.scores.items()}
    lines = ax.lines[-len(profiles) :]  # one line per mechanism, in the profiles' order
    labels = [f"{name} ({runs[name]} runs)" for name in profiles]
    ax.legend(lines, labels, fontsize=8, loc="best")
    left = [*scores.left_out]
    if left or scores.trimmed:
        parts = []
        if left:
            parts.append(f"not in every world: {', '.join(left)}")
        if scores.trimmed:
            parts.append(f"seeds cut to the fewest of any world: {', '.join(scores.trimmed)}")
        ax.text(0.01, 0.01, "; ".join(parts), transform=ax.transAxes, fontsize=7, va="bottom")


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
                figure(groups, [metric], profile=False).savefig(target, dpi=DPI)
                written.append(target)
            profile_figure(groups).savefig(path / PROFILE_FILE, dpi=DPI)
            written.append(path / PROFILE_FILE)
            summary = path / "summary.md"
            images = [
                ("coverage", _FILES[COVERAGE]),
                ("intrinsic reward", _FILES[INTRINSIC]),
                ("performance profile", PROFILE_FILE),
            ]
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
