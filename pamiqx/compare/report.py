"""The comparison as a table (Rich, Markdown, HTML) and as plots (matplotlib).

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

import base64
import html
import io
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from pamiqx.compare.errors import CompareError
from pamiqx.compare.runs import COVERAGE, INTRINSIC, RATE
from pamiqx.compare.stats import Band, GroupSummary

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure
    from rich.table import Table

__all__ = [
    "figure",
    "headers",
    "html_page",
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


# --- the table ------------------------------------------------------------------------


def headers(groups: Sequence[GroupSummary]) -> list[str]:
    """Column titles of the summary table.

    Args:
        groups: The summarised groups (their threshold names a column).

    Returns:
        The titles.
    """
    threshold = groups[0].threshold if groups else 0.5
    return [
        "curiosity",
        "seeds",
        "steps",
        "final coverage",
        f"steps to {threshold:.0%} coverage",
        "rate (steps/s)",
    ]


def table_rows(groups: Sequence[GroupSummary]) -> list[list[str]]:
    """The summary table's rows as text, in the groups' order.

    Args:
        groups: Summaries, ranked.

    Returns:
        One row per group, matching :func:`headers`.
    """
    rows: list[list[str]] = []
    for group in groups:
        steps = "–" if group.horizon is None else f"{group.horizon:,}"
        if group.truncated:
            steps += "*"
        final = "–"
        if group.final_mean is not None:
            final = f"{group.final_mean:.3f}"
            if group.final_std is not None:
                final += f" ± {group.final_std:.3f}"
        reach = "–"
        if group.steps_to_threshold:
            mean = group.steps_to_threshold_mean
            reached = f"({group.reached}/{len(group.steps_to_threshold)})"
            reach = f"{mean:,.0f} {reached}" if mean is not None else f"– {reached}"
        rate = "–"
        if group.rate_mean is not None:
            rate = ("~" if group.rate_estimated else "") + f"{group.rate_mean:,.0f}"
        rows.append([group.key, str(group.seeds), steps, final, reach, rate])
    return rows


def notes(groups: Sequence[GroupSummary]) -> list[str]:
    """What the table's numbers mean, and marks that apply to these groups.

    Args:
        groups: Summaries.

    Returns:
        One sentence per note.
    """
    threshold = groups[0].threshold if groups else 0.5
    lines = [
        "final coverage: at the group's steps (the last step its shortest seed logged), "
        "mean ± sample standard deviation over seeds.",
        f"steps to {threshold:.0%} coverage: first logged step with coverage ≥ "
        f"{threshold:.0%}, up to the group's steps; mean over the seeds that reached it "
        "(reached/seeds).",
        f"rate: environment steps per second of wall time during training phases "
        f"({RATE}), mean over seeds.",
        "plots: lines are means over seeds, bands span their minimum to maximum; each "
        "seed is interpolated linearly onto the steps any seed of its group logged.",
    ]
    for group in groups:
        if group.truncated:
            lines.append(
                f"*{group.key}: seeds ran to different lengths (longest {group.longest:,} "
                f"steps); statistics stop at the shortest ({group.horizon:,})."
            )
    if any(group.rate_estimated for group in groups):
        lines.append(
            "~: rate estimated from events.jsonl times (runs without the perf metric, "
            "e.g. real-time worlds); it includes set-up and checkpoints."
        )
    running = sum(run.status == "running" for group in groups for run in group.runs)
    if running:
        lines.append(f"{running} run(s) have not ended (still running, or killed).")
    return lines


def rich_table(groups: Sequence[GroupSummary]) -> Table:
    """The summary table for the terminal.

    Args:
        groups: Summaries, ranked.

    Returns:
        A Rich table.
    """
    from rich.table import Table

    runs = sum(group.seeds for group in groups)
    table = Table(title=f"Curiosity comparison ({runs} runs)", title_justify="left")
    for i, title in enumerate(headers(groups)):
        table.add_column(title, justify="left" if i == 0 else "right", overflow="fold")
    for row in table_rows(groups):
        table.add_row(*row)
    return table


def markdown(groups: Sequence[GroupSummary], images: Sequence[tuple[str, str]] = ()) -> str:
    """The summary as Markdown: table, notes, optional images, list of runs.

    Args:
        groups: Summaries, ranked.
        images: (alt text, relative path) of images to show below the table.

    Returns:
        Markdown text ending in a newline.
    """
    titles = headers(groups)
    lines = [
        "# Curiosity comparison",
        "",
        "| " + " | ".join(titles) + " |",
        "|" + "|".join([":---", *["---:"] * (len(titles) - 1)]) + "|",
    ]
    lines += ["| " + " | ".join(_md_cell(c) for c in row) + " |" for row in table_rows(groups)]
    lines.append("")
    lines += [f"- {_md_cell(note)}" for note in notes(groups)]
    for alt, path in images:
        lines += ["", f"![{alt}]({path})"]
    lines += ["", "## Runs", ""]
    for group in groups:
        for run in group.runs:
            lines.append(f"- {group.key}, seed {run.seed} ({run.status}): `{run.path}`")
    return "\n".join(lines) + "\n"


def _md_cell(text: str) -> str:
    # "*" would start emphasis and "|" end the cell.
    return text.replace("|", "\\|").replace("*", "\\*")


def html_page(groups: Sequence[GroupSummary], png: bytes) -> str:
    """A self-contained HTML page: the figure (base64 PNG), the table, notes and runs.

    Args:
        groups: Summaries, ranked.
        png: The figure as PNG bytes.

    Returns:
        The page.
    """
    esc = html.escape
    head = "".join(f"<th>{esc(t)}</th>" for t in headers(groups))
    body = "\n".join(
        "<tr>" + "".join(f"<td>{esc(cell)}</td>" for cell in row) + "</tr>"
        for row in table_rows(groups)
    )
    items = "\n".join(f"<li>{esc(note)}</li>" for note in notes(groups))
    runs = "\n".join(
        f"<li>{esc(group.key)}, seed {run.seed} ({esc(run.status)}): "
        f"<code>{esc(str(run.path))}</code></li>"
        for group in groups
        for run in group.runs
    )
    image = base64.b64encode(png).decode("ascii")
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>Curiosity comparison</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 2em; color: #222; }}
table {{ border-collapse: collapse; margin: 1em 0; }}
th, td {{ border: 1px solid #ccc; padding: 0.3em 0.8em; }}
td:not(:first-child) {{ text-align: right; }}
th {{ background: #f3f3f3; }}
img {{ max-width: 100%; }}
</style>
</head>
<body>
<h1>Curiosity comparison</h1>
<img alt="coverage and intrinsic reward against environment steps"
     src="data:image/png;base64,{image}">
<table>
<thead><tr>{head}</tr></thead>
<tbody>
{body}
</tbody>
</table>
<ul>
{items}
</ul>
<h2>Runs</h2>
<ul>
{runs}
</ul>
</body>
</html>
"""


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
