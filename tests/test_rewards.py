from pathlib import Path

import numpy as np
import pytest
import torch

from pamiqx.api.statistics import ObservationNormalizer, RunningMeanStd
from pamiqx.learner.advantages import (
    IntrinsicRewardNormalizer,
    RewardForwardFilter,
    mix_advantages,
)


def _save_load(state: dict[str, torch.Tensor], tmp_path: Path) -> dict[str, torch.Tensor]:
    path = tmp_path / "state.pt"
    torch.save(state, path)
    loaded = torch.load(path, weights_only=True)
    assert isinstance(loaded, dict)
    return loaded


def test_running_mean_std_matches_numpy_over_batches() -> None:
    rng = np.random.default_rng(0)
    batches = [rng.normal(3.0, 2.0, size=(n, 2, 3)) for n in (1, 7, 50, 3)]
    rms = RunningMeanStd((2, 3))
    for b in batches:
        rms.update(torch.from_numpy(b).float())
    everything = np.concatenate([b.astype(np.float32).astype(np.float64) for b in batches])
    np.testing.assert_allclose(rms.mean.numpy(), everything.mean(axis=0), rtol=1e-10)
    np.testing.assert_allclose(rms.var.numpy(), everything.var(axis=0), rtol=1e-10)
    np.testing.assert_allclose(rms.std.numpy(), everything.std(axis=0), rtol=1e-10)
    assert rms.count == 61
    assert rms.mean.dtype == torch.float64


def test_running_mean_std_empty_batch_and_bad_shape() -> None:
    rms = RunningMeanStd(())
    rms.update(torch.zeros(0))
    assert rms.count == 0
    torch.testing.assert_close(rms.var, torch.tensor(1.0, dtype=torch.float64))
    with pytest.raises(ValueError, match="shape"):
        rms.update(torch.zeros(3, 2))


def test_running_mean_std_state_round_trip(tmp_path: Path) -> None:
    rms = RunningMeanStd((4,))
    rms.update(torch.randn(10, 4))
    other = RunningMeanStd((4,))
    other.load_state_dict(_save_load(rms.state_dict(), tmp_path))
    assert other.count == rms.count
    torch.testing.assert_close(other.mean, rms.mean)
    torch.testing.assert_close(other.var, rms.var)
    with pytest.raises(ValueError):
        RunningMeanStd((3,)).load_state_dict(rms.state_dict())
    with pytest.raises(ValueError, match="missing"):
        other.load_state_dict({"mean": rms.mean})


def test_forward_filter_keeps_state_across_calls() -> None:
    f = RewardForwardFilter(0.5)
    out1 = f(torch.tensor([[1.0, 0.0], [1.0, 2.0]]))
    torch.testing.assert_close(out1, torch.tensor([[1.0, 0.0], [1.5, 2.0]], dtype=torch.float64))
    out2 = f(torch.tensor([[0.0, 0.0]]))
    torch.testing.assert_close(out2, torch.tensor([[0.75, 1.0]], dtype=torch.float64))
    with pytest.raises(ValueError, match="environments"):
        f(torch.zeros(1, 3))
    with pytest.raises(ValueError, match=r"\(T, E\)"):
        f(torch.zeros(3))


def test_forward_filter_state_round_trip(tmp_path: Path) -> None:
    fresh = RewardForwardFilter(0.9)
    fresh.load_state_dict(_save_load(RewardForwardFilter(0.9).state_dict(), tmp_path))
    torch.testing.assert_close(fresh(torch.ones(1, 2)), torch.ones(1, 2, dtype=torch.float64))

    f = RewardForwardFilter(0.9)
    f(torch.rand(5, 2))
    g = RewardForwardFilter(0.9)
    g.load_state_dict(_save_load(f.state_dict(), tmp_path))
    x = torch.rand(4, 2)
    torch.testing.assert_close(f(x), g(x))


def _numpy_returns(rewards: np.ndarray, gamma: float) -> np.ndarray:
    out = np.empty_like(rewards)
    running = np.zeros(rewards.shape[1])
    for t in range(rewards.shape[0]):
        running = gamma * running + rewards[t]
        out[t] = running
    return out


def test_intrinsic_normalizer_divides_by_std_of_discounted_returns() -> None:
    rng = np.random.default_rng(1)
    gamma = 0.9
    rollouts = [rng.exponential(2.0, size=(20, 2)) for _ in range(3)]
    norm = IntrinsicRewardNormalizer(gamma=gamma)
    returns = _numpy_returns(np.concatenate(rollouts), gamma)
    seen = 0
    for r in rollouts:
        out = norm.normalize(torch.from_numpy(r))
        seen += len(r)
        expected = r / (returns[:seen].std() + norm.eps)
        np.testing.assert_allclose(out.numpy(), expected, rtol=1e-10)
    # Mean is never subtracted: positive rewards stay positive.
    assert (out > 0).all()


def test_intrinsic_normalizer_keeps_dtype_and_guards_tiny_count() -> None:
    norm = IntrinsicRewardNormalizer()
    single = torch.tensor([[3.0]], dtype=torch.float32)
    out = norm.normalize(single)
    assert out.dtype == torch.float32
    torch.testing.assert_close(out, single)  # one sample: no variance estimate yet
    zeros = norm.normalize(torch.zeros(5, 1))
    assert torch.isfinite(zeros).all()


def test_intrinsic_normalizer_state_round_trip(tmp_path: Path) -> None:
    a = IntrinsicRewardNormalizer(gamma=0.95)
    a.normalize(torch.rand(30, 1))
    b = IntrinsicRewardNormalizer(gamma=0.95)
    state = _save_load(a.state_dict(), tmp_path)
    assert all(isinstance(v, torch.Tensor) for v in state.values())
    b.load_state_dict(state)
    x = torch.rand(10, 1)
    assert torch.equal(a.normalize(x), b.normalize(x))
    with pytest.raises(ValueError, match="unexpected"):
        b.load_state_dict({**state, "bogus": torch.zeros(1)})


def test_observation_normalizer_whitens_and_clips() -> None:
    norm = ObservationNormalizer((3,), clip=2.0)
    data = torch.tensor([[0.0, 10.0, 5.0], [2.0, 10.0, -5.0]])
    norm.update(data)
    # mean = (1, 10, 0), std = (1, 0, 5)
    out = norm.normalize(torch.tensor([[3.0, 10.0, 100.0], [-9.0, 11.0, 5.0]], dtype=torch.float64))
    assert out.dtype == torch.float32
    expected = torch.tensor([[2.0, 0.0, 2.0], [-2.0, 2.0, 1.0]])
    torch.testing.assert_close(out, expected)
    assert out.abs().max().item() <= 2.0


def test_observation_normalizer_single_obs_update_and_round_trip(tmp_path: Path) -> None:
    norm = ObservationNormalizer((2, 2))
    norm.update(torch.rand(2, 2))
    norm.update(torch.rand(8, 2, 2))
    assert norm.rms.count == 9
    other = ObservationNormalizer((2, 2))
    other.load_state_dict(_save_load(norm.state_dict(), tmp_path))
    x = torch.rand(4, 2, 2) * 3
    assert torch.equal(norm.normalize(x), other.normalize(x))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_normalizers_on_cuda() -> None:
    obs = ObservationNormalizer((2,))
    obs.update(torch.randn(10, 2, device="cuda"))
    assert obs.normalize(torch.randn(3, 2, device="cuda")).device.type == "cuda"
    rew = IntrinsicRewardNormalizer()
    out = rew.normalize(torch.rand(8, 1, device="cuda"))
    assert out.device.type == "cuda"
    assert rew.rms.mean.device.type == "cpu"


def test_mix_advantages() -> None:
    ext = torch.tensor([1.0, 2.0])
    intr = torch.tensor([3.0, -1.0])
    torch.testing.assert_close(mix_advantages(ext, intr, 2.0, 1.0), torch.tensor([5.0, 3.0]))
