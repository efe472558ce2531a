"""What ``pamiqx tune`` writes: each variant's tuned experiment, an evaluation sweep, a report."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import attrs
import tomli_w

from pamiqx.sweep.spec import SweepFile
from pamiqx.sweep.values import unflatten

__all__ = ["Budget", "Tuned", "write_outputs"]


@attrs.frozen
class Budget:
    """What every variant was given: the same for all of them."""

    trials: int
    max_steps: int
    seeds: tuple[int, ...]
    grace_steps: int
    reduction_factor: int
    search: str
    metric: str

    def describe(self) -> str:
        """One sentence for the files' headers and the report."""
        return (
            f"{self.trials} trials per variant, each {self.max_steps:,} steps on each of the "
            f"tuning seeds {list(self.seeds)}; ASHA on '{self.metric}' (grace {self.grace_steps:,} "
            f"steps, reduction factor {self.reduction_factor}); {self.search} search"
        )


@attrs.frozen
class Tuned:
    """The outcome of one variant.

    Attributes:
        variant: Its name.
        experiment: Its experiment file.
        keys: The variant's own keys (dotted).
        space: The searched keys and their ranges, described.
        best: The best settings (None when no trial completed every seed).
        score: Their mean final metric over the tuning seeds.
        completed: Trials that ran every seed (the others were stopped early or failed).
    """

    variant: str
    experiment: Path
    keys: dict[str, Any]
    space: dict[str, str]
    best: dict[str, Any] | None
    score: float | None
    completed: int


def _relative(target: Path, folder: Path) -> str:
    return Path(os.path.relpath(target, folder)).as_posix()


def write_outputs(
    sweep: SweepFile,
    outcomes: Sequence[Tuned],
    budget: Budget,
    eval_seeds: Sequence[int],
    out: Path,
) -> list[Path]:
    """Write each tuned variant's experiment file, the evaluation sweep and the report.

    Returns:
        The files written (the evaluation sweep second to last, the report last).
    """
    out.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    variants: dict[str, str] = {}
    for outcome in outcomes:
        if outcome.best is None:
            continue
        name = f"{sweep.name}-{outcome.variant}"
        path = out / f"{name}.toml"
        header = [
            f"# Tuned by `pamiqx tune {sweep.path.name}`: {budget.describe()}.",
            f"# Best mean final {budget.metric} over the tuning seeds: {outcome.score:.4g} "
            f"({outcome.completed} of {budget.trials} trials ran every seed).",
            "# Searched: " + "; ".join(f"{k} in {d}" for k, d in outcome.space.items()) + ".",
        ]
        data: dict[str, Any] = {"extends": _relative(outcome.experiment, out), "name": name}
        data.update(unflatten({**outcome.keys, **outcome.best}))
        path.write_text("\n".join(header) + "\n" + tomli_w.dumps(data))
        written.append(path)
        variants[outcome.variant] = path.name
    sweep_path = out / f"{sweep.name}-eval.toml"
    evaluation: dict[str, Any] = {
        "name": f"{sweep.name}-eval",
        "description": f"the settings tuned by {sweep.path.name}, on fresh seeds",
        "set": unflatten(sweep.common),
        "variants": variants,
        "grid": {"seed": list(eval_seeds)},
        "resources": attrs.asdict(sweep.resources),
    }
    sweep_path.write_text(
        f"# Evaluates the tuned settings of {sweep.path.name} on seeds the tuning never saw.\n"
        + tomli_w.dumps(evaluation)
    )
    written.append(sweep_path)
    report = out / f"{sweep.name}-report.md"
    report.write_text(report_text(sweep, outcomes, budget, sweep_path))
    written.append(report)
    return written


def report_text(
    sweep: SweepFile, outcomes: Sequence[Tuned], budget: Budget, sweep_path: Path
) -> str:
    """Return the Markdown report: the budget, then each variant's space and best settings."""
    lines = [
        f"# pamiqx tune {sweep.path.name}",
        "",
        f"Budget, the same for every variant: {budget.describe()}.",
        "",
        "| variant | searched | best settings | mean final "
        + budget.metric
        + " | complete trials |",
        "|---|---|---|---|---|",
    ]
    for o in outcomes:
        searched = "; ".join(f"{k} in {d}" for k, d in o.space.items())
        best = "none (no trial ran every seed)" if o.best is None else _settings(o.best)
        score = "" if o.score is None else f"{o.score:.4g}"
        lines.append(
            f"| {o.variant} | {searched} | {best} | {score} | {o.completed}/{budget.trials} |"
        )
    lines += ["", f"Evaluate them on fresh seeds: `pamiqx sweep {sweep_path}`.", ""]
    return "\n".join(lines)


def _settings(best: Mapping[str, Any]) -> str:
    return ", ".join(
        f"{k} = {v:.4g}" if isinstance(v, float) else f"{k} = {v}" for k, v in best.items()
    )
