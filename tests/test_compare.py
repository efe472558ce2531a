"""`pamiqx compare`: loading runs and their Aim metrics, statistics over seeds, outputs, errors.

The fixture writes run directories the way the runtime does (resolved
experiment file, events, a checkpoint) and real Aim runs holding series whose
statistics are computed by hand below.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from typer.testing import CliRunner

from pamiqx.cli import app
from pamiqx.compare import (
    COVERAGE,
    INTRINSIC,
    RATE,
    CompareError,
    GroupSummary,
    load_runs,
    summarize,
)
from pamiqx.compare.intervals import Estimate
from pamiqx.compare.report import claims, headers, markdown, table_rows
from pamiqx.compare.stats import AUC, FINAL
from tests.runtime_helpers import tiny_maze

pytestmark = [
    pytest.mark.filterwarnings("ignore:.*declarative_base:DeprecationWarning"),
    pytest.mark.filterwarnings("ignore:datetime.datetime.utcnow:DeprecationWarning"),
]

# Metric points per run: step -> {metric: value}. The expected numbers in the tests
# are worked out by hand from these.
Points = dict[int, dict[str, float]]


def _points(coverage: Mapping[int, float], intrinsic: float, rates: Mapping[int, float]) -> Points:
    points: Points = {}
    for step, value in coverage.items():
        points.setdefault(step, {}).update({COVERAGE: value, INTRINSIC: intrinsic})
    for step, value in rates.items():
        points.setdefault(step, {})[RATE] = value
    return points


RND = [
    _points({1000: 0.2, 2000: 0.4, 3000: 0.6, 4000: 0.8}, 1.0, {2000: 100.0, 4000: 300.0}),
    _points({1000: 0.1, 2000: 0.3, 3000: 0.5, 4000: 0.7}, 3.0, {2000: 200.0, 4000: 200.0}),
    # Runs further than the others: statistics stop at 4000.
    _points({1000: 0.3, 2000: 0.5, 3000: 0.6, 4000: 0.6, 5000: 0.9}, 2.0, {2000: 100.0}),
]
NONE = [
    _points({1000: 0.1, 2000: 0.2, 3000: 0.3, 4000: 0.4}, 0.0, {4000: 50.0}),
    # Logged at other steps: interpolated onto 1000, 2000, 2500, 3000, 4000.
    _points({1000: 0.0, 2500: 0.25, 3000: 0.4, 4000: 0.2}, 0.0, {4000: 150.0}),
]

EXPERIMENT = """
name = "{name}"
seed = {seed}

[run]
max_steps = 5000
device = "cpu"
log_dir = "{log_dir}"

[environment]
plugin = "sim-maze"
size = 32

[curiosity]
plugin = "{curiosity}"
"""


def _write_run(
    logs: Path, curiosity: str, seed: int, points: Points, style: str = "current"
) -> Path:
    """Write a run as the runtime does; return its directory.

    ``style``: ``current`` records the Aim repository and run in the start event;
    ``old`` names the run only in a checkpoint (runs from before the start event
    did); ``moved`` records a repository path that no longer exists; ``running``
    has no end event; ``untracked`` ran with tracking off.
    """
    from pamiqx.checkpoint import create_run_dir, log_event, save_checkpoint
    from pamiqx.experiment import load_experiment
    from pamiqx.tracking import AimTracker

    name = f"cmp-{curiosity}"
    source = logs.parent / f"{name}-{seed}.toml"
    source.write_text(EXPERIMENT.format(name=name, seed=seed, log_dir=logs, curiosity=curiosity))
    resolved = load_experiment(source, ["tracking.enabled=false"] if style == "untracked" else [])
    run_dir = create_run_dir(logs, name)
    (run_dir / "experiment.toml").write_text(resolved.to_toml())
    run_hash: str | None = None
    if style != "untracked":
        tracker = AimTracker(logs / "aim", experiment=name, hparams=resolved.to_dict())
        for step, metrics in sorted(points.items()):
            tracker.track(metrics, step)
        run_hash = tracker.run_hash
        tracker.close()
    start: dict[str, Any] = {"step": 0, "device": "cpu"}
    if style != "old":
        repo = "/nonexistent/moved/aim" if style == "moved" else str(logs / "aim")
        start.update(aim_repo=repo, aim_run_hash=run_hash)
    log_event(run_dir, "start", **start)
    last = max(points)
    meta = {"experiment": name, "aim_run_hash": run_hash, "reason": "final"}
    save_checkpoint(run_dir, last, {"step": last}, meta, keep=3)
    log_event(run_dir, "checkpoint", step=last, path="x", reason="final")
    if style != "running":
        log_event(run_dir, "end", step=last, status="finished")
    return run_dir


@pytest.fixture(scope="module")
def logs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A logs folder: aim repository, 3 rnd runs (and one not ended) and 2 baseline runs."""
    from aim.sdk.repo import Repo

    root = tmp_path_factory.mktemp("compare") / "logs"
    Repo.from_path(str(root / "aim"), init=True).close()
    _write_run(root, "rnd", 0, RND[0])
    _write_run(root, "rnd", 1, RND[1], style="old")
    _write_run(root, "rnd", 2, RND[2])
    # Left out of the statistics: it has no end event (still running, or killed).
    _write_run(root, "rnd", 3, RND[0], style="running")
    _write_run(root, "none", 0, NONE[0])
    _write_run(root, "none", 1, NONE[1], style="moved")
    return root


@pytest.fixture(scope="module")
def groups(logs: Path) -> list[GroupSummary]:
    return summarize(load_runs([logs]))


def _invoke(*args: str) -> tuple[int, str]:
    # Wide enough that no table cell is folded.
    result = CliRunner().invoke(app, list(args), env={"COLUMNS": "200"}, catch_exceptions=False)
    return result.exit_code, result.output


# --- loading --------------------------------------------------------------------------


def test_runs_found_below_a_folder_with_metrics_from_every_kind_of_record(logs: Path) -> None:
    runs = load_runs([logs])
    assert sorted((r.curiosity, r.seed) for r in runs) == [
        ("none", 0),
        ("none", 1),
        ("rnd", 0),
        ("rnd", 1),
        ("rnd", 2),
        ("rnd", 3),
    ]
    by_key = {(r.curiosity, r.seed): r for r in runs}
    # The run named only in its checkpoint, and the one whose repository moved, read fine.
    assert by_key["rnd", 1].series(COVERAGE) == ((1000, 0.1), (2000, 0.3), (3000, 0.5), (4000, 0.7))
    assert by_key["none", 1].series(COVERAGE)[1] == (2500, 0.25)
    assert by_key["rnd", 3].status == "running"
    assert by_key["rnd", 0].status == "finished"
    assert {r.environment for r in runs} == {"sim-maze"}
    # An experiment folder and a run directory given directly, each run once.
    one = by_key["rnd", 0].path
    found = load_runs([one, logs / "cmp-rnd"])
    assert [r.path for r in found][:1] == [one] and len(found) == 4


# --- statistics -----------------------------------------------------------------------


def test_groups_ranked_by_final_coverage(groups: list[GroupSummary]) -> None:
    assert [g.key for g in groups] == ["rnd", "none"]
    assert [g.seeds for g in groups] == [3, 2]
    [left] = groups[0].left_out
    assert (left.run.seed, left.why) == (3, "has not ended (still running, or killed)")


def _within(estimate: Estimate | None, point: float, low: float, high: float) -> None:
    """The estimate's point, and an interval around it inside the seeds' range."""
    assert estimate is not None
    assert estimate.point == pytest.approx(point)
    assert low - 1e-12 <= estimate.low <= estimate.point <= estimate.high <= high + 1e-12


def test_rnd_statistics_match_hand_computed_values(groups: list[GroupSummary]) -> None:
    rnd = groups[0]
    assert (rnd.curiosity, rnd.world) == ("rnd", "sim-maze")
    # Shortest seed ends at 4000; the third seed's 5000 is cut off and marked.
    assert (rnd.horizon, rnd.longest, rnd.truncated, rnd.start) == (4000, 5000, True, 1000)
    assert rnd.final_coverage == pytest.approx((0.8, 0.7, 0.6))
    # IQM of 3 seeds: a 25% trim cuts none of them, so it is their mean.
    _within(rnd.final_iqm, 0.7, 0.6, 0.8)
    # Trapezoids over 1000..4000 divided by 3000: (0.3 + 0.5 + 0.7) / 3 = 0.5,
    # (0.2 + 0.4 + 0.6) / 3 = 0.4, (0.4 + 0.55 + 0.6) / 3.
    assert rnd.auc == pytest.approx((0.5, 0.4, 1.55 / 3))
    _within(rnd.auc_iqm, (0.9 + 1.55 / 3) / 3, 0.4, 1.55 / 3)
    # First logged step with coverage >= 0.5: 3000, 3000 (0.5 counts), 2000.
    assert rnd.steps_to_threshold == (3000, 3000, 2000)
    assert rnd.steps_to_threshold_mean == pytest.approx(8000 / 3)
    assert rnd.reached == 3
    # Harmonic means 2/(1/100 + 1/300) = 150, 200, 100 -> mean 150.
    assert sorted(rnd.rates) == pytest.approx([100.0, 150.0, 200.0])
    assert rnd.rate_mean == pytest.approx(150.0)
    assert rnd.coverage is not None and rnd.intrinsic is not None
    assert rnd.coverage.steps.tolist() == [1000, 2000, 3000, 4000]
    assert rnd.coverage.iqm.tolist() == pytest.approx([0.2, 0.4, 17 / 30, 0.7])
    low, high = rnd.coverage.low, rnd.coverage.high
    assert (low >= np.array([0.1, 0.3, 0.5, 0.6]) - 1e-12).all()
    assert (high <= np.array([0.3, 0.5, 0.6, 0.8]) + 1e-12).all()
    assert (low <= rnd.coverage.iqm).all() and (rnd.coverage.iqm <= high).all()
    assert (high - low > 0).all()  # the seeds differ at every step
    assert rnd.intrinsic.iqm.tolist() == pytest.approx([2.0] * 4)


def test_rnd_beats_none_with_an_interval_above_one_half(groups: list[GroupSummary]) -> None:
    rnd, none = groups
    # Every rnd seed covers more than every none seed, in both scores, in every resample.
    for metric in (FINAL, AUC):
        item = rnd.improvement("none", metric)
        assert item is not None and item.step == 4000 and item.seeds == (3, 2)
        assert (item.estimate.point, item.estimate.low, item.estimate.high) == (1.0, 1.0, 1.0)
        assert item.verdict == "better"
    assert rnd.improvement("random") is None  # no random runs here
    assert none.improvements == ()  # none is compared with random only
    assert claims(groups) == [
        "rnd > none on sim-maze in final coverage: P(improvement) 1.00 [1.00, 1.00] (3 vs 2 seeds)",
        "rnd > none on sim-maze in coverage AUC: P(improvement) 1.00 [1.00, 1.00] (3 vs 2 seeds)",
    ]


def test_seeds_logged_at_other_steps_are_interpolated(groups: list[GroupSummary]) -> None:
    none = groups[1]
    assert none.coverage is not None
    assert none.coverage.steps.tolist() == [1000, 2000, 2500, 3000, 4000]
    # At 2000 the second seed is 2/3 of the way from 0.0 (1000) to 0.25 (2500).
    second_at_2000 = 0.25 * 1000 / 1500
    assert none.coverage.iqm.tolist() == pytest.approx(
        [0.05, (0.2 + second_at_2000) / 2, 0.25, 0.35, 0.3]
    )
    _within(none.final_iqm, 0.3, 0.2, 0.4)
    # (0.15 + 0.25 + 0.35) / 3 and (1500 * 0.125 + 500 * 0.325 + 1000 * 0.3) / 3000.
    assert none.auc == pytest.approx((0.25, 0.65 / 3))
    assert none.steps_to_threshold == (None, None)
    assert none.steps_to_threshold_mean is None
    assert none.rate_mean == pytest.approx(100.0)
    assert not none.truncated


def test_table_text(groups: list[GroupSummary]) -> None:
    rnd, none = groups
    assert rnd.final_iqm and rnd.auc_iqm and none.final_iqm and none.auc_iqm
    assert headers(groups) == [
        "curiosity",
        "seeds",
        "steps",
        "final coverage IQM [95% CI]",
        "coverage AUC IQM [95% CI]",
        "P(> none)",
        "steps to 50% coverage",
        "rate (steps/s)",
    ]
    final = f"0.700 [{rnd.final_iqm.low:.3f}, {rnd.final_iqm.high:.3f}]"
    auc = f"0.472 [{rnd.auc_iqm.low:.3f}, {rnd.auc_iqm.high:.3f}]"
    none_final = f"0.300 [{none.final_iqm.low:.3f}, {none.final_iqm.high:.3f}]"
    none_auc = f"0.233 [{none.auc_iqm.low:.3f}, {none.auc_iqm.high:.3f}]"
    assert table_rows(groups) == [
        ["rnd", "3", "4,000*", final, auc, "1.00 [1.00, 1.00]", "2,667 (3/3)", "150"],
        ["none", "2", "4,000", none_final, none_auc, "–", "– (0/2)", "100"],
    ]
    text = markdown(groups)
    row = f"| rnd | 3 | 4,000\\* | {final} | {auc} | 1.00 [1.00, 1.00] | 2,667 (3/3) | 150 |"
    assert row in text
    assert "steps to 50% coverage" in text
    assert "  - rnd > none on sim-maze in final coverage: P(improvement) 1.00" in text


def test_statistics_are_reproducible(logs: Path, groups: list[GroupSummary]) -> None:
    again = summarize(load_runs([logs]))
    assert [g.final_iqm for g in again] == [g.final_iqm for g in groups]
    assert [g.auc_iqm for g in again] == [g.auc_iqm for g in groups]


# --- outputs --------------------------------------------------------------------------


def test_table_printed_in_rank_order(logs: Path) -> None:
    code, out = _invoke("compare", str(logs))
    assert code == 0, out
    assert "0.700 [" in out and "2,667 (3/3)" in out and "1.00 [1.00, 1.00]" in out
    first_column = [line.split("│")[1].strip() for line in out.splitlines() if "│" in line]
    assert first_column == ["rnd", "none"]  # the rows, not the header (┃)
    assert "rnd > none on sim-maze in final coverage: P(improvement) 1.00 [1.00, 1.00]" in out
    assert "1 run(s) left out of the statistics" in out
    assert "(rnd, seed 3): has not ended (still running, or killed)" in out


def test_png_output(logs: Path, tmp_path: Path) -> None:
    target = tmp_path / "sub" / "report.png"
    code, out = _invoke(
        "compare", str(logs / "cmp-rnd"), str(logs / "cmp-none"), "--out", str(target)
    )
    assert code == 0, out
    assert target.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert f"wrote {target}" in out


def test_html_output_is_self_contained(logs: Path, tmp_path: Path) -> None:
    target = tmp_path / "report.html"
    code, out = _invoke("compare", str(logs), "-o", str(target))
    assert code == 0, out
    page = target.read_text()
    assert page.startswith("<!DOCTYPE html>")
    assert "<td>rnd</td><td>3</td><td>4,000*</td><td>0.700 [" in page
    assert "<h2>Claims</h2>" in page
    assert "<li>rnd &gt; none on sim-maze in coverage AUC: P(improvement) 1.00" in page
    assert "<td>none</td><td>2</td>" in page
    prefix = 'src="data:image/png;base64,'
    import base64

    encoded = page[page.index(prefix) + len(prefix) :].split('"', 1)[0]
    assert base64.b64decode(encoded)[:4] == b"\x89PNG"


def test_folder_output(logs: Path, tmp_path: Path) -> None:
    target = tmp_path / "report"
    code, out = _invoke("compare", str(logs), "--out", f"{target}/")
    assert code == 0, out
    for name in ("coverage.png", "intrinsic.png", "profile.png"):
        assert (target / name).read_bytes()[:4] == b"\x89PNG"
    summary = (target / "summary.md").read_text()
    assert "![coverage](coverage.png)" in summary
    assert "![performance profile](profile.png)" in summary
    assert "| none | 2 | 4,000 | 0.300 [" in summary and "| – | – (0/2) | 100 |" in summary


# --- mistakes -------------------------------------------------------------------------


def _broken_run(logs: Path, tmp_path: Path) -> Path:
    """A copy of a run whose start event names an Aim run the repository lacks."""
    run = tmp_path / "broken" / "cmp-rnd" / "20250101-000000"
    shutil.copytree(sorted((logs / "cmp-rnd").iterdir())[0], run)
    shutil.rmtree(run / "checkpoints")
    event = {"event": "start", "step": 0, "aim_repo": str(logs / "aim"), "aim_run_hash": "0" * 24}
    (run / "events.jsonl").write_text(json.dumps(event) + "\n")
    return run


MistakeSetup = Callable[[Path, Path], tuple[list[str], Path]]

MISTAKES: dict[str, MistakeSetup] = {
    "missing path": lambda logs, tmp: ([str(tmp / "nope")], tmp / "nope"),
    "folder without runs": lambda logs, tmp: ([str(tmp)], tmp),
    "run without metrics": lambda logs, tmp: ([str(run := _broken_run(logs, tmp))], run),
    "not an aim repo": lambda logs, tmp: ([str(logs), "--repo", str(tmp)], tmp),
    "unsupported suffix": lambda logs, tmp: ([str(logs), "--out", str(tmp / "r.jpg")], tmp),
}


@pytest.mark.parametrize("mistake", list(MISTAKES))
def test_mistakes_exit_2_naming_the_path(mistake: str, logs: Path, tmp_path: Path) -> None:
    args, path = MISTAKES[mistake](logs, tmp_path)
    code, out = _invoke("compare", *args)
    assert code == 2, out
    assert str(path) in out
    assert "Traceback" not in out


def test_run_without_metrics_found_in_a_folder_is_skipped(logs: Path, tmp_path: Path) -> None:
    broken = _broken_run(logs, tmp_path)
    shutil.copytree(
        sorted((logs / "cmp-none").iterdir())[0], broken.parent.parent / "cmp-none" / "a"
    )
    code, out = _invoke("compare", str(tmp_path / "broken"))
    assert code == 0, out
    assert "skipped" in out and str(broken) in out
    assert "none" in out


def test_untracked_run_is_a_clear_error(logs: Path, tmp_path: Path) -> None:
    run = _write_run(tmp_path / "logs", "none", 0, NONE[0], style="untracked")
    with pytest.raises(CompareError, match=r"tracking\.enabled = false"):
        load_runs([run])


def test_corrupt_aim_repo_is_a_clear_error(logs: Path, tmp_path: Path) -> None:
    repo = tmp_path / "aim"
    repo.mkdir()
    (repo / ".aim").write_text("not a folder")
    code, out = _invoke("compare", str(logs), "--repo", str(repo))
    assert code == 2, out
    assert f"Cannot read the Aim repository at {repo}" in out
    assert "Traceback" not in out


# --- the real runtime -----------------------------------------------------------------


def test_runs_of_the_real_runtime_compare(tmp_path: Path) -> None:
    """Two seeds trained by `pamiqx run` (128 steps each) give one row of real numbers."""
    logs = tmp_path / "logs"
    experiment = tmp_path / "tiny.toml"
    experiment.write_text(tiny_maze(logs, max_steps=128, tracking=True))
    for seed in (0, 1):
        code, out = _invoke("run", str(experiment), f"seed={seed}")
        assert code == 0, out
    [group] = summarize(load_runs([logs]))
    assert (group.key, group.seeds, group.horizon) == ("none", 2, 128)
    assert all(0 < value <= 1 for value in group.final_coverage)
    assert group.rate_mean is not None and group.rate_mean > 0
    assert group.intrinsic is not None and set(group.intrinsic.iqm.tolist()) == {0.0}
    code, out = _invoke("compare", str(logs), "--out", str(tmp_path / "out.html"))
    assert code == 0, out
    assert "<td>none</td><td>2</td><td>128</td>" in (tmp_path / "out.html").read_text()
