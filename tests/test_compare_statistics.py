"""The comparison's statistics against known answers: IQM, bootstrap coverage, P(improvement).

Also the per-seed scores (normalised AUC), the comparisons with the baselines
`none` and `random` per world, the sentences that say what the intervals allow
one to claim, and the matrices behind the performance profile.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from pamiqx.compare import COVERAGE, RunRecord, summarize
from pamiqx.compare.curves import normalized_auc
from pamiqx.compare.intervals import (
    iqm,
    iqm_curve,
    iqm_interval,
    iqm_per_step,
    performance_profiles,
    probability_of_improvement,
    rliable_modules,
    run_score_profile,
)
from pamiqx.compare.profiles import profile_scores
from pamiqx.compare.stats import AUC, FINAL
from pamiqx.compare.tables import claims, headers, notes, table_rows

FOUR_ROOMS = "MiniGrid-FourRooms-v0"

# --- rliable's statistics -------------------------------------------------------------


def test_iqm_of_fixed_arrays_equals_hand_computed_values() -> None:
    # Eight scores: a quarter (two) cut at each end, the mean of 3, 4, 5, 6.
    assert iqm([100.0, 1, 7, 2, 6, 3, 5, 4]) == pytest.approx(4.5)
    # Three: int(0.75) = 0 cut, so the mean.
    assert iqm([0.8, 0.7, 0.6]) == pytest.approx(0.7)
    # A (runs, tasks) matrix is pooled: 12 scores 0..11, 3 cut at each end, mean of 3..8.
    assert iqm(np.arange(12.0).reshape(4, 3)[::-1]) == pytest.approx(5.5)
    # An outlier moves the mean, not the IQM.
    assert iqm([0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 50.0]) == pytest.approx(0.5)


def test_iqm_per_step_is_rliables_iqm_of_each_step() -> None:
    _, metrics = rliable_modules()
    scores = np.random.default_rng(3).random((7, 2, 5))
    expected = [metrics.aggregate_iqm(scores[..., step]) for step in range(5)]
    assert iqm_per_step(scores).tolist() == pytest.approx(expected)


def test_bootstrap_interval_covers_the_true_iqm_about_95_percent_of_repeats() -> None:
    # 200 independent samples of 20 runs from N(0.5, 0.1), whose IQM is 0.5 by symmetry:
    # the curve's pointwise intervals are 200 independent bootstrap intervals.
    samples = np.random.default_rng(0).normal(0.5, 0.1, size=(20, 200))
    point, low, high = iqm_curve(samples, reps=1000, seed=0)
    covered = float(((low <= 0.5) & (high >= 0.5)).mean())
    assert 0.9 <= covered <= 0.99, covered
    assert (low <= point).all() and (point <= high).all()
    # The intervals are not trivially wide: about 2 x 1.96 x 0.1 / sqrt(20) x 1.1.
    assert float(np.mean(high - low)) == pytest.approx(0.097, rel=0.25)


def test_iqm_interval_is_the_curves_interval_of_one_step() -> None:
    # Same resamples (same seed, same shape): one bootstrap, two entry points.
    scores = np.random.default_rng(1).random(9)
    estimate = iqm_interval(scores, reps=300, seed=5)
    point, low, high = iqm_curve(scores[:, None], reps=300, seed=5)
    assert (estimate.point, estimate.low, estimate.high) == pytest.approx(
        (float(point[0]), float(low[0]), float(high[0]))
    )
    assert estimate.point == pytest.approx(iqm(scores))


def test_probability_of_improvement_known_answers() -> None:
    high = [0.8, 0.85, 0.9, 0.95]
    low = [0.1, 0.2, 0.3]
    separated = probability_of_improvement(high, low, reps=500)
    assert (separated.point, separated.low, separated.high) == (1.0, 1.0, 1.0)
    reverse = probability_of_improvement(low, high, reps=500)
    assert (reverse.point, reverse.low, reverse.high) == (0.0, 0.0, 0.0)
    same = probability_of_improvement(high, high, reps=500)
    assert same.point == 0.5 and same.low < 0.5 < same.high
    # Hand count over the 3 x 3 pairs (ties count half): 0.5 beats 0.4 and ties 0.5 (1.5),
    # 0.6 beats all three (3), 0.4 ties 0.4 (0.5).
    mixed = probability_of_improvement([0.5, 0.6, 0.4], [0.4, 0.5, 0.55], reps=500)
    assert mixed.point == pytest.approx((1.5 + 3 + 0.5) / 9)
    assert mixed.low < mixed.point < mixed.high


def test_bootstrap_is_reproducible_and_leaves_numpys_generator_alone() -> None:
    np.random.seed(123)
    before = np.random.get_state()[1].copy()
    scores = [0.1, 0.4, 0.35, 0.8, 0.55]
    first = iqm_interval(scores, reps=200, seed=7)
    assert (np.random.get_state()[1] == before).all()
    assert iqm_interval(scores, reps=200, seed=7) == first
    assert iqm_interval(scores, reps=200, seed=8) != first


def test_performance_profile_is_the_fraction_of_runs_above_each_level() -> None:
    library, _ = rliable_modules()
    taus = np.array([0.0, 0.3, 0.5, 0.7, 1.0])
    scores = np.array([[0.2, 0.6], [0.4, 0.8]])  # 2 runs x 2 worlds
    assert run_score_profile(scores, taus).tolist() == pytest.approx(
        library.score_distributions(scores, taus).tolist()
    )
    profiles, bands = performance_profiles({"a": scores}, taus, reps=200)
    assert profiles["a"].tolist() == pytest.approx([1.0, 0.75, 0.5, 0.25, 0.0])
    assert bands["a"].shape == (2, 5)
    assert (bands["a"][0] <= profiles["a"]).all() and (profiles["a"] <= bands["a"][1]).all()


# --- scores and comparisons of runs ----------------------------------------------------


def test_normalized_auc_hand_computed() -> None:
    series = ((0, 0.0), (100, 1.0), (200, 1.0))
    assert normalized_auc(series, 0, 100) == pytest.approx(0.5)
    assert normalized_auc(series, 50, 100) == pytest.approx(0.75)  # ends interpolated
    assert normalized_auc(series, 0, 200) == pytest.approx(0.75)
    assert normalized_auc(series, 100, 100) == pytest.approx(1.0)  # one step: its value


def _run(
    curiosity: str, seed: int, final: float, world: str = "sim-maze", last: int = 1000
) -> RunRecord:
    """A finished run whose coverage rises linearly from 0 at step 100 to ``final``."""
    settings: dict[str, Any] = {}
    environment = world
    if world == FOUR_ROOMS:
        environment, settings = "gymnasium", {"environment.id": FOUR_ROOMS}
    return RunRecord(
        path=Path(f"/runs/{curiosity}-{world}-{seed}"),
        name=f"{curiosity}-{world}",
        seed=seed,
        curiosity=curiosity,
        environment=environment,
        status="finished",
        metrics={COVERAGE: ((100, 0.0), (last, final))},
        settings=settings,
    )


def test_worlds_baselines_and_what_may_be_claimed() -> None:
    runs = [
        # sim-maze: rnd clearly above both baselines; icm tangled with none.
        *[_run("rnd", s, f) for s, f in enumerate([0.8, 0.85, 0.9])],
        *[_run("icm", s, f) for s, f in enumerate([0.3, 0.6, 0.45])],
        *[_run("none", s, f) for s, f in enumerate([0.4, 0.5, 0.55])],
        *[_run("random", s, f) for s, f in enumerate([0.1, 0.15, 0.2])],
        # FourRooms: rnd below none; no random runs there.
        *[_run("rnd", s, f, FOUR_ROOMS) for s, f in enumerate([0.2, 0.25, 0.3])],
        *[_run("none", s, f, FOUR_ROOMS) for s, f in enumerate([0.5, 0.6, 0.7])],
    ]
    groups = summarize(runs, reps=300)
    by_key = {g.key: g for g in groups}
    # Each world's groups together, the best world first, ranked by IQM within it.
    assert [g.key for g in groups] == [
        "rnd @ sim-maze",
        "none @ sim-maze",
        "icm @ sim-maze",
        "random @ sim-maze",
        f"none @ {FOUR_ROOMS}",
        f"rnd @ {FOUR_ROOMS}",
    ]
    assert by_key[f"rnd @ {FOUR_ROOMS}"].world == FOUR_ROOMS
    rnd = by_key["rnd @ sim-maze"]
    assert rnd.final_iqm is not None and rnd.final_iqm.point == pytest.approx(0.85)
    # Linear from 0 at 100 to f at 1000: the mean over the span is f / 2.
    assert rnd.auc == pytest.approx((0.4, 0.425, 0.45))
    assert [(i.baseline, i.metric) for i in rnd.improvements] == [
        ("none", FINAL),
        ("none", AUC),
        ("random", FINAL),
        ("random", AUC),
    ]
    # none is compared with random, random with nothing; FourRooms has no random.
    assert [i.baseline for i in by_key["none @ sim-maze"].improvements] == ["random"] * 2
    assert by_key["random @ sim-maze"].improvements == ()
    assert [i.baseline for i in by_key[f"rnd @ {FOUR_ROOMS}"].improvements] == ["none"] * 2
    icm = by_key["icm @ sim-maze"].improvement("none")
    assert icm is not None and icm.verdict == "unresolved"
    # icm beats none in 4 of 9 pairs: 0.6 beats all three, 0.45 beats 0.4.
    assert icm.estimate.point == pytest.approx(4 / 9)

    said = claims(groups)
    assert (
        "rnd > none on sim-maze in final coverage: P(improvement) 1.00 [1.00, 1.00] "
        "(3 vs 3 seeds)" in said
    )
    assert f"rnd < none on {FOUR_ROOMS} in coverage AUC: P(improvement) 0.00 [0.00, 0.00] " in (
        " ".join(said) + " "
    )
    unresolved = [line for line in said if line.startswith("icm vs none on sim-maze in final")]
    assert len(unresolved) == 1 and "not resolved, P(improvement) 0.44 [" in unresolved[0]
    assert unresolved[0].endswith("includes 0.5 (3 vs 3 seeds)")
    # Resolved claims come first.
    assert said.index(unresolved[0]) > max(
        i for i, line in enumerate(said) if " > " in line or " < " in line
    )
    # No sentence claims a difference its printed interval does not support.
    assert len(said) == sum(len(g.improvements) for g in groups) == 12
    for line in said:
        found = re.search(r"P\(improvement\) ([\d.]+) \[([\d.]+), ([\d.]+)\]", line)
        assert found is not None, line
        low, high = float(found[2]), float(found[3])
        if "not resolved" in line:
            assert low <= 0.5 <= high, line
        elif " > " in line:
            assert low >= 0.5, line
        else:
            assert " < " in line and high <= 0.5, line

    titles = headers(groups)
    assert titles[5:7] == ["P(> none)", "P(> random)"]
    rows = {row[0]: row for row in table_rows(groups)}
    assert rows["rnd @ sim-maze"][5:7] == ["1.00 [1.00, 1.00]", "1.00 [1.00, 1.00]"]
    assert rows[f"rnd @ {FOUR_ROOMS}"][5:7] == ["0.00 [0.00, 0.00]", "–"]
    assert rows["random @ sim-maze"][5:7] == ["–", "–"]
    text = "\n".join(notes(groups))
    assert "Groups of 3 seed(s)" in text and "excludes 0.5" in text


def test_groups_are_compared_at_the_last_step_both_reached() -> None:
    runs = [
        *[_run("rnd", s, f, last=2000) for s, f in enumerate([0.6, 0.7, 0.8])],
        *[_run("none", s, f, last=1000) for s, f in enumerate([0.5, 0.6, 0.7])],
    ]
    rnd, none = summarize(runs, reps=200)
    assert (rnd.horizon, none.horizon) == (2000, 1000)
    item = rnd.improvement("none")
    assert item is not None and item.step == 1000
    # At step 1000 rnd's seeds are halfway up: (0.3, 0.35, 0.4) against (0.5, 0.6, 0.7).
    assert item.estimate.point == 0.0 and item.verdict == "worse"
    assert claims([rnd, none])[0].startswith("rnd < none on sim-maze in final coverage at 1,000")


def test_profile_scores_cover_every_world_of_each_mechanism() -> None:
    runs = [
        *[_run("rnd", s, 0.5 + s / 10) for s in range(3)],
        *[_run("rnd", s, 0.2 + s / 10, FOUR_ROOMS) for s in range(2)],
        *[_run("none", s, 0.4) for s in range(2)],
        *[_run("none", s, 0.1, FOUR_ROOMS) for s in range(2)],
        *[_run("icm", s, 0.3) for s in range(2)],  # not in FourRooms
    ]
    scores = profile_scores(summarize(runs, reps=100))
    assert scores.worlds == ("sim-maze", FOUR_ROOMS)
    assert scores.steps == (1000, 1000)
    assert set(scores.scores) == {"rnd", "none"}
    assert scores.left_out == ("icm",)
    assert scores.trimmed == ("rnd",)  # 3 seeds in the maze, 2 in FourRooms
    np.testing.assert_allclose(scores.scores["rnd"], [[0.5, 0.2], [0.6, 0.3]])


def test_without_baselines_the_notes_say_so() -> None:
    groups = summarize([_run("rnd", s, 0.5) for s in range(2)], reps=100)
    assert groups[0].improvements == ()
    assert "P(> none)" not in headers(groups)
    assert any("No baseline" in line for line in notes(groups))
