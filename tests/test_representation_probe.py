"""The linear pose probe of representations (pamiqx.evaluation.probe) and its verdict on jepa."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from pamiqx.evaluation.probe import compare_stages, probe_r2, r2_scores, random_walk


def test_r2_is_one_for_a_perfect_prediction_and_zero_for_the_mean() -> None:
    target = torch.randn(50, 4, dtype=torch.float64)
    assert torch.allclose(r2_scores(target, target), torch.ones(4, dtype=torch.float64))
    mean = target.mean(0).expand_as(target)
    assert torch.allclose(r2_scores(mean, target), torch.zeros(4, dtype=torch.float64))


def test_the_probe_reads_a_linear_code_and_not_noise() -> None:
    generator = torch.Generator().manual_seed(0)
    poses = torch.randn(600, 4, generator=generator, dtype=torch.float64)
    mixing = torch.randn(4, 32, generator=generator, dtype=torch.float64)
    latents = poses @ mixing + 0.05 * torch.randn(600, 32, generator=generator, dtype=torch.float64)
    readable = probe_r2(latents[:400], poses[:400], latents[400:], poses[400:])
    assert readable["mean"] > 0.95
    noise = torch.randn(600, 32, generator=generator, dtype=torch.float64)
    unreadable = probe_r2(noise[:400], poses[:400], noise[400:], poses[400:])
    assert unreadable["mean"] < 0.1


def test_a_walk_records_frames_with_their_true_pose() -> None:
    walk = random_walk(60, seed=3)
    assert walk.frames.shape == (60, 64, 64, 3) and walk.frames.dtype == np.uint8
    assert walk.poses.shape == (60, 4)
    np.testing.assert_allclose(walk.poses[:, 2] ** 2 + walk.poses[:, 3] ** 2, 1.0)
    assert np.ptp(walk.poses[:, 0]) + np.ptp(walk.poses[:, 1]) > 1.0  # it moves
    again = random_walk(60, seed=3)
    assert np.array_equal(walk.frames, again.frames)


def _verdict(seeds: list[int], frames: int) -> list[tuple[float, float, float]]:
    """Probe ``random``, untrained and trained ``jepa`` (small) on each seed; their mean R²."""
    results = compare_stages(seeds, frames)
    return [
        (random["mean"], untrained["mean"], trained["mean"])
        for random, untrained, trained in zip(
            results["random"], results["jepa-untrained"], results["jepa"], strict=True
        )
    ]


def test_trained_jepa_reads_the_pose_better_than_random_and_untrained_features() -> None:
    # The short version: one seed, half the README's budget (2,048 frames).
    ((random, untrained, trained),) = _verdict([2], 2048)
    assert trained > max(random, untrained), (random, untrained, trained)


@pytest.mark.slow
def test_trained_jepa_beats_random_and_untrained_features_on_three_seeds() -> None:
    # The README's measurement: 4,096 frames of training, seeds 0, 1 and 2.
    for seed, (random, untrained, trained) in enumerate(_verdict([0, 1, 2], 4096)):
        assert trained > max(random, untrained), (seed, random, untrained, trained)
