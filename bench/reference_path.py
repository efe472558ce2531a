"""Steps/s of each reference-path mechanism at its ``-maze`` size, relative to ``none``.

Each ``experiments/reference/<mechanism>-maze.toml`` runs as it is (jepa small, the
2 x 128 QLSTM policy, replay-window PPO and, for the forward-dynamics mechanisms,
2 x 128 QLSTM forward models on their own replay windows) in the lock-step loop of a
run, in its own process, next to ``experiments/reference/none-maze.toml``: the same
path with no curiosity. The ratio is each mechanism's steps/s over that baseline's,
measured in the same bench run; the ``none`` baseline is measured before and after the
mechanisms and averaged, so that a drift of the machine shows as a spread.

``python -m bench reference_path``; one row alone:
``python -m bench.training_speed --file experiments/reference/meta-maze.toml``.
"""

from __future__ import annotations

from pathlib import Path

from bench.training_speed import run_json

ROOT = Path(__file__).resolve().parents[1]
REFERENCE = ROOT / "experiments" / "reference"
# Long enough for several training calls (one every 128 steps) after the warm-up.
WARMUP_STEPS, MEASURE_STEPS = 256, 1024
MECHANISMS = (
    "adversarial",
    "delta-minimize",
    "meta",
    "hierarchical",
    "unified",
    "ttt",
    "ttt-e2e",
)


def _steps_per_second(name: str) -> float:
    file = f"experiments/reference/{name}-maze.toml"
    args = [
        "-m",
        "bench.training_speed",
        "--file",
        file,
        "--warmup-steps",
        str(WARMUP_STEPS),
        "--measure-steps",
        str(MEASURE_STEPS),
    ]
    return run_json(args)["steps_per_second"]


def run() -> list[dict[str, object]]:
    """Measure ``none`` and every mechanism that has a ``-maze`` reference file, on the CPU."""
    present = [m for m in MECHANISMS if (REFERENCE / f"{m}-maze.toml").exists()]
    before = _steps_per_second("none")
    measured = {m: _steps_per_second(m) for m in present}
    after = _steps_per_second("none")
    baseline = (before + after) / 2
    rows: list[dict[str, object]] = [
        {
            "name": "reference path -maze, `none` (before / after the mechanisms), CPU",
            "value": baseline,
            "unit": "steps/s",
            "command": "python -m bench.training_speed --file experiments/reference/none-maze.toml",
            "device": "cpu",
            "before": before,
            "after": after,
        }
    ]
    for mechanism, speed in measured.items():
        file = f"experiments/reference/{mechanism}-maze.toml"
        rows.append(
            {
                "name": f"reference path -maze, `{mechanism}` / `none`, CPU",
                "value": speed / baseline,
                "unit": "x",
                "command": f"python -m bench.training_speed --file {file}",
                "device": "cpu",
                "steps_per_second": speed,
            }
        )
    return rows
