"""`pamiqx compare` on hand-made records: grouping, differing settings, event rates, outputs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from pamiqx.compare import COVERAGE, RunRecord, differing_settings, output_target, summarize
from pamiqx.compare.run_dirs import event_rate


def _record(curiosity: str, environment: str, seed: int, **settings: Any) -> RunRecord:
    return RunRecord(
        path=Path(f"/runs/{curiosity}-{environment}-{seed}"),
        name=curiosity,
        seed=seed,
        curiosity=curiosity,
        environment=environment,
        status="finished",
        metrics={COVERAGE: ((0, 0.0), (100, 0.5))},
        settings=settings,
    )


def test_mixed_environments_group_by_curiosity_and_world() -> None:
    runs = [
        _record("rnd", "sim-maze", 0),
        _record("rnd", "gymnasium", 0),
        _record("icm", "sim-maze", 0),
        _record("rnd", "sim-maze", 1),
    ]
    keys = sorted(g.key for g in summarize(runs))
    assert keys == ["icm @ sim-maze", "rnd @ gymnasium", "rnd @ sim-maze"]


def test_runs_differing_beyond_their_seed_are_spotted() -> None:
    same = [_record("rnd", "w", 0, **{"curiosity.lr": 1e-4}), _record("rnd", "w", 1)]
    same[1] = _record("rnd", "w", 1, **{"curiosity.lr": 1e-4})
    assert differing_settings(summarize(same)[0]) == []
    other = [*same, _record("rnd", "w", 2, **{"curiosity.lr": 1e-3})]
    assert differing_settings(summarize(other)[0]) == ["curiosity.lr"]


def test_rate_from_event_times_when_the_perf_metric_is_missing() -> None:
    events = [
        {"event": "start", "time": "2025-01-01T00:00:00", "step": 0},
        {"event": "end", "time": "2025-01-01T00:00:10", "step": 1000, "status": "interrupted"},
        {"event": "resume", "time": "2025-01-01T01:00:00", "step": 1000},
        {"event": "checkpoint", "time": "2025-01-01T01:00:30", "step": 4000},
    ]
    assert event_rate(events) == pytest.approx(4000 / 40)
    assert event_rate(events[:1]) is None


@pytest.mark.parametrize(
    ("out", "kind"),
    [("a.png", "figure"), ("a.PDF", "figure"), ("a.html", "html"), ("a", "dir"), ("a.v2/", "dir")],
)
def test_output_kinds(out: str, kind: str) -> None:
    assert output_target(out)[0] == kind
