"""The comparison as text: the summary table (Rich, Markdown, HTML), its notes, claims, the runs.

:mod:`pamiqx.compare.report` draws the plots and writes the files; the words and
numbers they show are made here.
"""

from __future__ import annotations

import base64
import html
from collections.abc import Sequence
from typing import TYPE_CHECKING

from pamiqx.compare.curves import CURVE_REPS
from pamiqx.compare.intervals import CONFIDENCE
from pamiqx.compare.runs import RATE
from pamiqx.compare.stats import BASELINES, FINAL, GroupSummary, Improvement

if TYPE_CHECKING:
    from rich.table import Table

__all__ = [
    "claim",
    "claims",
    "headers",
    "html_page",
    "left_out_lines",
    "markdown",
    "notes",
    "rich_table",
    "table_rows",
]

# Fewer seeds than this: the bootstrap intervals are a rough guide (see notes()).
FEW_SEEDS = 5


def _baselines(groups: Sequence[GroupSummary]) -> list[str]:
    """The baselines some group was compared with, in :data:`BASELINES` order."""
    compared = {item.baseline for group in groups for item in group.improvements}
    return [name for name in BASELINES if name in compared]


def headers(groups: Sequence[GroupSummary]) -> list[str]:
    """Column titles of the summary table.

    Args:
        groups: The summarised groups (their threshold and baselines name columns).

    Returns:
        The titles.
    """
    threshold = groups[0].threshold if groups else 0.5
    ci = f"{CONFIDENCE:.0%} CI"
    return [
        "curiosity",
        "seeds",
        "steps",
        f"final coverage IQM [{ci}]",
        f"coverage AUC IQM [{ci}]",
        *[f"P(> {name})" for name in _baselines(groups)],
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
    baselines = _baselines(groups)
    rows: list[list[str]] = []
    for group in groups:
        steps = "–" if group.horizon is None else f"{group.horizon:,}"
        if group.truncated:
            steps += "*"
        final = "–" if group.final_iqm is None else group.final_iqm.text(3)
        auc = "–" if group.auc_iqm is None else group.auc_iqm.text(3)
        improvements = []
        for name in baselines:
            item = group.improvement(name, FINAL)
            improvements.append("–" if item is None else item.estimate.text(2))
        reach = "–"
        if group.steps_to_threshold:
            mean = group.steps_to_threshold_mean
            reached = f"({group.reached}/{len(group.steps_to_threshold)})"
            reach = f"{mean:,.0f} {reached}" if mean is not None else f"– {reached}"
        rate = "–"
        if group.rate_mean is not None:
            rate = ("~" if group.rate_estimated else "") + f"{group.rate_mean:,.0f}"
        rows.append([group.key, str(group.seeds), steps, final, auc, *improvements, reach, rate])
    return rows


def claim(group: GroupSummary, item: Improvement) -> str:
    """What one comparison with a baseline allows one to say, in words.

    A difference is claimed only when the interval of P(improvement) lies
    entirely above 0.5 (the mechanism tends to beat the baseline) or below it
    (it tends to lose); otherwise the difference is not resolved.

    Args:
        group: The compared group.
        item: One of its :attr:`GroupSummary.improvements`.

    Returns:
        One sentence, e.g. ``rnd > none on sim-maze in final coverage:
        P(improvement) 0.89 [0.67, 1.00]``.
    """
    where = f"on {group.world} in {item.metric}"
    if item.step != group.horizon:
        where += f" at {item.step:,} steps"
    numbers = f"P(improvement) {item.estimate.text(2)}"
    seeds = f"{item.seeds[0]} vs {item.seeds[1]} seeds"
    if item.verdict == "better":
        return f"{group.curiosity} > {item.baseline} {where}: {numbers} ({seeds})"
    if item.verdict == "worse":
        return f"{group.curiosity} < {item.baseline} {where}: {numbers} ({seeds})"
    return (
        f"{group.curiosity} vs {item.baseline} {where}: not resolved, {numbers} includes "
        f"0.5 ({seeds})"
    )


def claims(groups: Sequence[GroupSummary]) -> list[str]:
    """One sentence per comparison with a baseline: resolved ones first, then the rest.

    Args:
        groups: Summaries, ranked.

    Returns:
        The sentences of :func:`claim`.
    """
    pairs = [(group, item) for group in groups for item in group.improvements]
    resolved = [claim(g, i) for g, i in pairs if i.verdict != "unresolved"]
    return resolved + [claim(g, i) for g, i in pairs if i.verdict == "unresolved"]


def notes(groups: Sequence[GroupSummary]) -> list[str]:
    """What the table's numbers mean, what they allow one to claim, and the runs left out.

    Lines starting with two spaces belong to the line before them (claims, runs).

    Args:
        groups: Summaries.

    Returns:
        One sentence per note.
    """
    threshold = groups[0].threshold if groups else 0.5
    reps = groups[0].reps if groups else 0
    ci = f"{CONFIDENCE:.0%}"
    lines = [
        "final coverage: at the group's steps (the last step its shortest seed logged); "
        "IQM is the interquartile mean over seeds (the mean of the middle half; with fewer "
        f"than 4 seeds, the mean), with its {ci} stratified-bootstrap confidence interval "
        f"(rliable, {reps:,} resamples).",
        "coverage AUC: area under each seed's coverage curve, from the first to the last "
        "step all its group's seeds logged, divided by that span (the mean coverage over "
        "the run, 0 to 1); IQM and interval as above.",
    ]
    baselines = _baselines(groups)
    if baselines:
        names = " and ".join(f"P(> {name})" for name in baselines)
        lines.append(
            f"{names}: probability of improvement in final coverage, the chance that a run "
            "of the mechanism ends with more coverage than a run of the baseline in the same "
            "world (ties count half; 0.5 means no difference), with its "
            f"{ci} bootstrap interval; compared at the last step both reached."
        )
    lines += [
        f"steps to {threshold:.0%} coverage: first logged step with coverage ≥ "
        f"{threshold:.0%}, up to the group's steps; mean over the seeds that reached it "
        "(reached/seeds).",
        f"rate: environment steps per second of wall time during training phases "
        f"({RATE}), mean over seeds.",
        "plots: lines are the IQM over seeds at each step, bands its pointwise "
        f"{ci} bootstrap interval ({CURVE_REPS} resamples); each seed is interpolated "
        "linearly onto the steps any seed of its group logged. The performance profile "
        "shows, per mechanism, the fraction of its runs (over all worlds) whose final "
        "coverage exceeds each level, with bootstrap bands.",
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
    said = claims(groups)
    if said:
        lines.append(
            "What the intervals allow one to claim: a mechanism beats (>) or trails (<) a "
            f"baseline only where the {ci} interval of P(improvement) excludes 0.5; "
            "overlapping IQM intervals alone do not settle a difference either way:"
        )
        lines += [f"  {line}" for line in said]
    elif groups and not baselines:
        lines.append(
            "No baseline (`none` or `random`) in these runs, so no mechanism is compared "
            "with one: run them in the same worlds to tell what a mechanism adds."
        )
    few = sorted({group.seeds for group in groups if 0 < group.seeds < FEW_SEEDS})
    if few:
        lines.append(
            f"Groups of {' or '.join(str(n) for n in few)} seed(s): bootstrap intervals from "
            "so few runs cannot reach beyond the seeds' own range and are too narrow more "
            "often than their level says; more seeds narrow the question honestly."
        )
    left = left_out_lines(groups)
    if left:
        lines.append(
            f"{len(left)} run(s) left out of the statistics (failed, not ended, or a "
            "duplicate of another run's experiment and seed):"
        )
        lines += [f"  {line}" for line in left]
    return lines


def left_out_lines(groups: Sequence[GroupSummary]) -> list[str]:
    """One line per run the statistics leave out: its directory, group, seed and why.

    Args:
        groups: Summaries.

    Returns:
        The lines, in group order.
    """
    return [
        f"{item.run.path} ({group.key}, seed {item.run.seed}): {item.why}"
        for group in groups
        for item in group.left_out
    ]


def rich_table(groups: Sequence[GroupSummary]) -> Table:
    """The summary table for the terminal.

    Args:
        groups: Summaries, ranked.

    Returns:
        A Rich table.
    """
    from rich.table import Table
    from rich.text import Text

    runs = sum(group.seeds for group in groups)
    left = sum(len(group.left_out) for group in groups)
    title = f"Curiosity comparison ({runs} runs" + (f", {left} left out)" if left else ")")
    table = Table(title=title, title_justify="left")
    for i, title in enumerate(headers(groups)):
        table.add_column(title, justify="left" if i == 0 else "right", overflow="fold")
    for row in table_rows(groups):
        # Group keys come from experiment files: "[x]" is text here, never markup.
        table.add_row(*(Text(cell) for cell in row))
    return table


def markdown(groups: Sequence[GroupSummary], images: Sequence[tuple[str, str]] = ()) -> str:
    """The summary as Markdown: table, notes and claims, optional images, list of runs.

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
        "| " + " | ".join(_md_cell(t) for t in titles) + " |",
        "|" + "|".join([":---", *["---:"] * (len(titles) - 1)]) + "|",
    ]
    lines += ["| " + " | ".join(_md_cell(c) for c in row) + " |" for row in table_rows(groups)]
    lines.append("")
    lines += [_md_note(note) for note in notes(groups)]
    for alt, path in images:
        lines += ["", f"![{alt}]({path})"]
    lines += ["", "## Runs", ""]
    for group in groups:
        for run in group.runs:
            lines.append(f"- {group.key}, seed {run.seed} ({run.status}): `{run.path}`")
    left = [(group.key, item) for group in groups for item in group.left_out]
    if left:
        lines += ["", "## Left out of the statistics", ""]
        for key, item in left:
            why = _md_cell(item.why)
            lines.append(f"- `{item.run.path}` ({key}, seed {item.run.seed}): {why}")
    return "\n".join(lines) + "\n"


def _md_note(note: str) -> str:
    # Indented notes (claims, left-out runs) are a nested list under the note before them.
    if note.startswith("  "):
        return f"  - {_md_cell(note.strip())}"
    return f"- {_md_cell(note)}"


def _md_cell(text: str) -> str:
    # "*" would start emphasis and "|" end the cell.
    return text.replace("|", "\\|").replace("*", "\\*")


def html_page(groups: Sequence[GroupSummary], png: bytes) -> str:
    """A self-contained HTML page: the figure (base64 PNG), the table, notes, claims and runs.

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
    items = "\n".join(
        f"<li>{esc(note)}</li>" for note in notes(groups) if not note.startswith("  ")
    )
    said = "\n".join(f"<li>{esc(line)}</li>" for line in claims(groups))
    claims_section = f"<h2>Claims</h2>\n<ul>\n{said}\n</ul>\n" if said else ""
    runs = "\n".join(
        f"<li>{esc(group.key)}, seed {run.seed} ({esc(run.status)}): "
        f"<code>{esc(str(run.path))}</code></li>"
        for group in groups
        for run in group.runs
    )
    left = "\n".join(
        f"<li><code>{esc(str(item.run.path))}</code> ({esc(group.key)}, seed "
        f"{item.run.seed}): {esc(item.why)}</li>"
        for group in groups
        for item in group.left_out
    )
    left_section = f"<h2>Left out of the statistics</h2>\n<ul>\n{left}\n</ul>\n" if left else ""
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
<img alt="coverage and intrinsic reward against environment steps, performance profile"
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
{claims_section}<h2>Runs</h2>
<ul>
{runs}
</ul>
{left_section}</body>
</html>
"""
