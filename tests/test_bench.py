"""The training-speed benchmark drives the runtime's own loop with every installed curiosity.

Speeds are never asserted (they belong to ``make bench``); these tests check that each
configuration the benchmark measures runs at all, with the rollout the runtime builds.
"""

from __future__ import annotations

import pytest

from bench.training_speed import installed_curiosities, measure

# A small world and rollout: the benchmark's settings otherwise (4 worlds, lock-step).
SMALL = ["environment.size=32", "policy.rollout_steps=16", "policy.minibatch_size=32"]


@pytest.mark.parametrize("curiosity", installed_curiosities())
def test_every_curiosity_runs_in_the_benchmark_loop(curiosity: str) -> None:
    result = measure(curiosity, "cpu", SMALL, warmup_steps=64, measure_steps=64)
    assert result["steps_per_second"] > 0
    assert result["steps_per_cpu_second"] > 0
