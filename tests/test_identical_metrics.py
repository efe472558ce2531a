"""Restructuring must not change results: lock-step CPU runs give the metrics recorded before it.

The files in ``tests/data`` were recorded with the same command this test runs:
the quickstart for 2,048 steps (RND, a batch mechanism), and three online
mechanisms of pamiqx-fd-curiosity for 768 steps (adversarial with the host's
policy, unified and hierarchical owning theirs). Timing metrics (``perf/*``) are
left out.

The quickstart's file was recorded on main before the 0.2 restructuring (issue 11)
and still matches. The three online mechanisms' files were re-recorded when the
forward-dynamics mechanisms stopped building their own frozen random encoder and
started predicting the latents of the host's representation stage: their
experiment files now set ``[representation] plugin = "random"`` (the same kind of
frozen random features, now drawn from the stage's own seeded generator and seen by
the policy too, through ``[models.encoder] plugin = "mlp-encoder"``), which changes
every number by design.

To re-record after a change that is *meant* to change results, run
``python -m tests.test_identical_metrics [FILE ...]`` (the data files to rewrite,
e.g. ``adversarial-768-metrics.json``; all of them when none is named) and say why
in the commit and here.
"""

from __future__ import annotations

import json
import sys
import types
from pathlib import Path
from typing import cast

import pytest
from rich.console import Console

import pamiqx
from pamiqx.experiment import load_experiment
from pamiqx.plugins.manager import load_plugins
from pamiqx.runtime.session import run_experiment

REPO = Path(__file__).resolve().parent.parent
DATA = Path(__file__).resolve().parent / "data"
CASES = {
    "quickstart-2048-metrics.json": ("quickstart.toml", 2048),
    "adversarial-768-metrics.json": ("adversarial-maze.toml", 768),
    "unified-768-metrics.json": ("unified-maze.toml", 768),
    "hierarchical-768-metrics.json": ("hierarchical-maze.toml", 768),
}


def record_metrics(experiment: str, steps: int, log_dir: Path) -> list[dict[str, object]]:
    """Run an experiment file lock-step on the CPU and return every metrics batch it emits."""
    recorded: list[dict[str, object]] = []
    observer = types.ModuleType("metrics_observer")

    def pamiqx_metrics_emitted(step: int, metrics: dict[str, float]) -> None:
        kept = {k: v for k, v in metrics.items() if not k.startswith("perf/")}
        recorded.append({"step": step, "metrics": kept})

    observer.pamiqx_metrics_emitted = pamiqx.hookimpl(pamiqx_metrics_emitted)  # type: ignore[attr-defined]
    manager = load_plugins()
    manager.register_module(observer, "metrics-observer", "0", "observer")
    overrides = [
        f"run.max_steps={steps}",
        "run.log_every=1",
        "run.device=cpu",
        "run.mode=lockstep",
        "run.checkpoint_every=0",
        "tracking.enabled=false",
        f'run.log_dir="{log_dir}"',
    ]
    resolved = load_experiment(REPO / "experiments" / experiment, overrides, manager)
    with open("/dev/null", "w") as sink:
        assert run_experiment(resolved, manager, console=Console(file=sink)) == 0
    return recorded


@pytest.mark.parametrize(
    "fixture",
    # The quickstart runs in `make test`; the three online mechanisms (a minute) in `make test-all`.
    [f if f.startswith("quickstart") else pytest.param(f, marks=pytest.mark.slow) for f in CASES],
)
def test_lockstep_metrics_match_the_recording_made_before_the_restructuring(
    fixture: str, tmp_path: Path
) -> None:
    expected = json.loads((DATA / fixture).read_text())
    experiment, steps = CASES[fixture]
    actual = record_metrics(experiment, steps, tmp_path)
    assert [r["step"] for r in actual] == [r["step"] for r in expected]
    for got, want in zip(actual, expected, strict=True):
        metrics = cast(dict[str, float], got["metrics"])
        assert set(metrics) == set(want["metrics"]), got["step"]
        # Float rounding only: any change of computation order or random draws moves
        # these numbers by far more than 1e-6.
        assert metrics == pytest.approx(want["metrics"], rel=1e-6, abs=1e-9), got["step"]


if __name__ == "__main__":  # re-record (see the module docstring)
    import tempfile

    chosen = sys.argv[1:] or list(CASES)
    unknown = sorted(set(chosen) - set(CASES))
    if unknown:
        sys.exit(f"unknown data files {unknown}; choose from {sorted(CASES)}")
    for name in chosen:
        file, count = CASES[name]
        with tempfile.TemporaryDirectory() as tmp:
            data = record_metrics(file, count, Path(tmp))
        (DATA / name).write_text(json.dumps(data, indent=1) + "\n")
        print(f"wrote {DATA / name}", file=sys.stderr)
