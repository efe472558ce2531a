"""The benchmarks' own logic: the training-speed loop with every curiosity, the table's numbers.

Speeds are never asserted (they belong to ``make bench``); these tests check that each
configuration the benchmark measures runs the steps it is asked to, with the rollout the
runtime builds, and that the printed table shows numbers a reader can compare.
"""

from __future__ import annotations

import pytest

from bench.__main__ import shown_value
from bench.reference_step import STEPS, step_latencies
from bench.training_speed import installed_curiosities, measure

# A small world and rollout: the benchmark's settings otherwise (4 worlds, lock-step).
SMALL = ["environment.size=32", "policy.rollout_steps=16", "policy.minibatch_size=32"]


@pytest.mark.parametrize("curiosity", installed_curiosities())
def test_every_curiosity_runs_in_the_benchmark_loop(curiosity: str) -> None:
    result = measure(curiosity, "cpu", SMALL, warmup_steps=64, measure_steps=64)
    # 4 worlds step together, so the measured window is exactly the 64 steps asked for.
    assert result["steps"] == 64
    assert result["steps_per_second"] > 0
    assert result["steps_per_cpu_second"] > 0


def test_an_experiment_file_runs_as_it_is_in_the_benchmark_loop() -> None:
    # The reference path's baseline, one world: its own settings, not the quickstart's.
    file = "experiments/reference/none-maze.toml"
    result = measure("", "cpu", ["environment.size=32"], 8, 16, file=file)
    assert result["steps"] == 16 and result["steps_per_second"] > 0


def test_the_beat_bench_measures_jitter_against_the_tick_grid() -> None:
    from bench.beat import summarise

    # 10 Hz: 30 actions on the grid, one 3 ms late, one a tick late (an overrun).
    acted = [0.1 * k for k in range(30)]
    acted[20] += 0.003
    acted[25:] = [t + 0.1 for t in acted[25:]]
    observed = [t - 0.015 for t in acted]
    result = summarise(observed, acted, 0.1)
    assert result["steps"] == 20 and result["overruns"] == 1
    assert result["jitter_ms_max"] == pytest.approx(3.0, abs=1e-6)
    assert result["jitter_ms_p50"] == pytest.approx(0.0, abs=1e-6)
    assert result["latency_ms_p50"] == pytest.approx(15.0, abs=1e-6)


def test_the_reference_step_bench_times_the_agent_side_of_each_step() -> None:
    times = step_latencies("experiments/reference/adversarial-maze.toml", [], "cpu")
    assert len(times) == STEPS and min(times) > 0


@pytest.mark.parametrize(
    ("value", "shown"),
    [(1030.4, "1,030"), (8510.2, "8,510"), (0.7093, "0.709"), (6.29, "6.29"), (12, "12")],
)
def test_table_shows_numbers_without_exponents(value: float, shown: str) -> None:
    assert shown_value(value) == shown


def test_soak_summary_tells_a_flat_memory_from_a_leak() -> None:
    from bench.soak import SAMPLE_EVERY, summary

    per_hour = 3600 / SAMPLE_EVERY
    warm_up = [400.0 + 10 * i for i in range(20)]  # growth while warming up is left out
    flat = summary("flat", warm_up + [600.0 + (i % 3) for i in range(80)])
    leak = summary("leak", warm_up + [600.0 + 2 * i for i in range(80)])
    assert abs(flat[2]["value"]) < 10  # type: ignore[arg-type]
    assert flat[3]["value"] < 1  # type: ignore[operator]
    assert leak[2]["value"] == pytest.approx(2 * per_hour, rel=1e-6)
    assert leak[3]["value"] > 5  # type: ignore[operator]
