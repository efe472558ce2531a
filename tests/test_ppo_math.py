import math

import pytest
import torch

from pamiqx.learner.advantages import compute_gae, normalize_advantages
from pamiqx.learner.loss import explained_variance, ppo_loss
from pamiqx.learner.options import PPOOptions


def col(*xs: float) -> torch.Tensor:
    """A (T, 1) float64 column."""
    return torch.tensor(xs, dtype=torch.float64).unsqueeze(1)


# Shared hand example: T=3, E=1, gamma=0.9, lam=0.8 (so gamma*lam = 0.72).
REWARDS = col(1.0, 2.0, 3.0)
VALUES = col(0.5, 1.0, 1.5)
LAST = torch.tensor([2.0], dtype=torch.float64)


def test_gae_hand_computed_no_dones() -> None:
    # delta_2 = 3 + 0.9*2.0 - 1.5 = 3.3        A_2 = 3.3
    # delta_1 = 2 + 0.9*1.5 - 1.0 = 2.35       A_1 = 2.35 + 0.72*3.3   = 4.726
    # delta_0 = 1 + 0.9*1.0 - 0.5 = 1.4        A_0 = 1.4  + 0.72*4.726 = 4.80272
    adv, ret = compute_gae(REWARDS, VALUES, col(0, 0, 0), LAST, gamma=0.9, lam=0.8)
    torch.testing.assert_close(adv, col(4.80272, 4.726, 3.3))
    torch.testing.assert_close(ret, col(5.30272, 5.726, 4.8))


def test_gae_episodic_resets_at_done() -> None:
    # Episode ends at t=1: no bootstrap from V_2 and no carry of A_2.
    # A_2 = 3.3;  A_1 = delta_1 = 2 - 1.0 = 1.0;  A_0 = 1.4 + 0.72*1.0 = 2.12
    dones = col(0, 1, 0)
    adv, ret = compute_gae(REWARDS, VALUES, dones, LAST, gamma=0.9, lam=0.8)
    torch.testing.assert_close(adv, col(2.12, 1.0, 3.3))
    torch.testing.assert_close(ret, col(2.62, 2.0, 4.8))


def test_gae_done_at_last_step_ignores_last_value() -> None:
    # A_2 = 3 - 1.5 = 1.5;  A_1 = 2.35 + 0.72*1.5 = 3.43;  A_0 = 1.4 + 0.72*3.43 = 3.8696
    adv, _ = compute_gae(REWARDS, VALUES, col(0, 0, 1), LAST, gamma=0.9, lam=0.8)
    torch.testing.assert_close(adv, col(3.8696, 3.43, 1.5))


def test_gae_non_episodic_ignores_dones() -> None:
    dones = col(1, 1, 1)
    adv, ret = compute_gae(REWARDS, VALUES, dones, LAST, gamma=0.9, lam=0.8, episodic=False)
    torch.testing.assert_close(adv, col(4.80272, 4.726, 3.3))
    torch.testing.assert_close(ret, col(5.30272, 5.726, 4.8))


@pytest.mark.parametrize("last", [0.0, 1.5])
def test_gae_lam1_gamma1_is_reward_to_go_minus_value(last: float) -> None:
    g = torch.Generator().manual_seed(0)
    t_len, n_envs = 6, 4
    rewards = torch.randn(t_len, n_envs, generator=g)
    values = torch.randn(t_len, n_envs, generator=g)
    last_value = torch.full((n_envs,), last)
    adv, ret = compute_gae(
        rewards, values, torch.zeros(t_len, n_envs), last_value, gamma=1.0, lam=1.0
    )
    to_go = rewards.flip(0).cumsum(0).flip(0) + last
    torch.testing.assert_close(adv, to_go - values)
    torch.testing.assert_close(ret, to_go)


def test_gae_vectorised_over_envs_and_bool_dones() -> None:
    g = torch.Generator().manual_seed(1)
    rewards = torch.randn(5, 3, generator=g)
    values = torch.randn(5, 3, generator=g)
    dones = torch.rand(5, 3, generator=g) > 0.6
    last = torch.randn(3, generator=g)
    adv, _ = compute_gae(rewards, values, dones, last, gamma=0.95, lam=0.9)
    for e in range(3):
        adv_e, _ = compute_gae(
            rewards[:, e : e + 1],
            values[:, e : e + 1],
            dones[:, e : e + 1],
            last[e : e + 1],
            gamma=0.95,
            lam=0.9,
        )
        torch.testing.assert_close(adv[:, e : e + 1], adv_e)


def test_gae_is_detached() -> None:
    values = VALUES.clone().requires_grad_(True)
    adv, ret = compute_gae(REWARDS, values, col(0, 0, 0), LAST, gamma=0.9, lam=0.8)
    assert not adv.requires_grad
    assert not ret.requires_grad


def test_gae_rejects_bad_shapes() -> None:
    with pytest.raises(ValueError, match="same shape"):
        compute_gae(REWARDS, VALUES[:2], col(0, 0, 0), LAST, gamma=0.9, lam=0.8)
    with pytest.raises(ValueError, match="last_value"):
        compute_gae(REWARDS, VALUES, col(0, 0, 0), torch.zeros(2), gamma=0.9, lam=0.8)


def test_normalize_advantages() -> None:
    adv = torch.tensor([[1.0, 2.0], [3.0, 10.0]])
    out = normalize_advantages(adv)
    assert out.shape == adv.shape
    assert abs(out.mean().item()) < 1e-6
    assert abs(out.std().item() - 1.0) < 1e-5
    torch.testing.assert_close(normalize_advantages(torch.tensor([3.0])), torch.tensor([0.0]))
    constant = normalize_advantages(torch.full((4,), 2.0))
    assert torch.isfinite(constant).all()


def _loss(
    new_lp: torch.Tensor,
    adv: torch.Tensor,
    config: PPOOptions,
    *,
    new_v: torch.Tensor | None = None,
    old_v: torch.Tensor | None = None,
    ret: torch.Tensor | None = None,
    entropy: torch.Tensor | None = None,
) -> tuple[torch.Tensor, dict[str, float]]:
    zeros = torch.zeros_like(adv)
    return ppo_loss(
        new_lp,
        torch.zeros_like(adv),
        adv,
        {"ext": zeros if new_v is None else new_v},
        {"ext": zeros if old_v is None else old_v},
        {"ext": zeros if ret is None else ret},
        zeros if entropy is None else entropy,
        config,
    )


def test_ppo_loss_ratio_one_is_minus_mean_advantage() -> None:
    adv = torch.tensor([1.0, -2.0, 4.0, 0.5])
    loss, metrics = _loss(torch.zeros(4), adv, PPOOptions(entropy_coef=0.0))
    assert loss.item() == pytest.approx(-adv.mean().item())
    assert metrics["loss/policy"] == pytest.approx(-0.875)
    assert metrics["loss/value_ext"] == 0.0
    assert metrics["approx_kl"] == pytest.approx(0.0)
    assert metrics["clip_fraction"] == 0.0
    assert set(metrics) == {
        "loss/policy",
        "loss/total",
        "loss/value_ext",
        "entropy",
        "approx_kl",
        "clip_fraction",
    }
    assert all(isinstance(v, float) for v in metrics.values())


def test_ppo_loss_clipped_ratio_has_zero_gradient_for_positive_advantage() -> None:
    new_lp = torch.full((3,), math.log(2.0), requires_grad=True)
    adv = torch.tensor([1.0, 2.0, 0.5])
    loss, metrics = _loss(new_lp, adv, PPOOptions(clip_range=0.2))
    loss.backward()
    assert new_lp.grad is not None
    assert torch.all(new_lp.grad == 0.0)
    # Clipped objective: -(1.2 * adv).mean()
    assert metrics["loss/policy"] == pytest.approx(-1.2 * adv.mean().item())
    assert metrics["clip_fraction"] == 1.0
    assert metrics["approx_kl"] == pytest.approx(1.0 - math.log(2.0))


def test_ppo_loss_unclipped_side_keeps_gradient_for_negative_advantage() -> None:
    # Ratio 2 with a negative advantage: the min picks the unclipped (worse) term.
    new_lp = torch.full((2,), math.log(2.0), requires_grad=True)
    adv = torch.tensor([-1.0, -1.0])
    loss, _ = _loss(new_lp, adv, PPOOptions(clip_range=0.2))
    loss.backward()
    assert new_lp.grad is not None
    # d/dlp of -(ratio * adv).mean() = -ratio * adv / B = 2 * 1 / 2 = 1
    torch.testing.assert_close(new_lp.grad, torch.ones(2))


def test_value_loss_unclipped_and_clipped() -> None:
    adv = torch.zeros(2)
    new_v = torch.tensor([1.0, 0.1], requires_grad=True)
    old_v = torch.zeros(2)
    ret = torch.tensor([1.0, 0.1])
    cfg = PPOOptions(value_coef=1.0, entropy_coef=0.0)
    loss, metrics = _loss(torch.zeros(2), adv, cfg, new_v=new_v, old_v=old_v, ret=ret)
    assert metrics["loss/value_ext"] == 0.0  # prediction already equals the target

    cfg = PPOOptions(value_coef=1.0, entropy_coef=0.0, value_clip_range=0.2)
    loss, metrics = _loss(torch.zeros(2), adv, cfg, new_v=new_v, old_v=old_v, ret=ret)
    # Sample 0: clipped value 0.2 -> (0.8)^2 = 0.64 dominates; sample 1 within range -> 0.
    assert metrics["loss/value_ext"] == pytest.approx(0.5 * 0.64 / 2)
    assert loss.item() == pytest.approx(0.16)
    loss.backward()
    assert new_v.grad is not None
    # The clipped branch does not depend on new_v outside the range, so no gradient.
    assert new_v.grad[0].item() == 0.0


def test_value_loss_sums_streams_with_coef() -> None:
    adv = torch.zeros(2)
    streams = {"ext": torch.tensor([1.0, 1.0]), "int": torch.tensor([2.0, 2.0])}
    zeros = {k: torch.zeros(2) for k in streams}
    loss, metrics = ppo_loss(
        torch.zeros(2),
        torch.zeros(2),
        adv,
        streams,
        zeros,
        zeros,
        torch.zeros(2),
        PPOOptions(value_coef=0.5),
    )
    assert metrics["loss/value_ext"] == pytest.approx(0.5)
    assert metrics["loss/value_int"] == pytest.approx(2.0)
    assert loss.item() == pytest.approx(0.5 * (0.5 + 2.0))


def test_more_entropy_lowers_loss() -> None:
    adv = torch.tensor([1.0, -1.0])
    cfg = PPOOptions(entropy_coef=0.1)
    low, _ = _loss(torch.zeros(2), adv, cfg, entropy=torch.full((2,), 0.5))
    high, m_high = _loss(torch.zeros(2), adv, cfg, entropy=torch.full((2,), 1.5))
    assert high.item() < low.item()
    assert low.item() - high.item() == pytest.approx(0.1)
    assert m_high["entropy"] == pytest.approx(1.5)


def test_ppo_loss_rejects_mismatches() -> None:
    z = torch.zeros(3)
    cfg = PPOOptions()
    with pytest.raises(ValueError, match="streams"):
        ppo_loss(z, z, z, {"ext": z}, {"int": z}, {"ext": z}, z, cfg)
    with pytest.raises(ValueError, match="shape"):
        ppo_loss(z, z, z, {"ext": z.unsqueeze(1)}, {"ext": z}, {"ext": z}, z, cfg)
    with pytest.raises(ValueError, match="advantages"):
        ppo_loss(z, z, torch.zeros(4), {"ext": z}, {"ext": z}, {"ext": z}, z, cfg)


def test_config_validation() -> None:
    defaults = PPOOptions()
    assert (defaults.clip_range, defaults.value_clip_range) == (0.2, None)
    assert (defaults.value_coef, defaults.entropy_coef) == (0.5, 0.01)
    with pytest.raises(ValueError):
        PPOOptions(clip_range=0.0)
    with pytest.raises(ValueError):
        PPOOptions(value_clip_range=-1.0)
    with pytest.raises(ValueError):
        PPOOptions(entropy_coef=-0.1)


def test_explained_variance() -> None:
    target = torch.tensor([1.0, 2.0, 3.0, 4.0])
    assert explained_variance(target, target) == pytest.approx(1.0)
    assert explained_variance(torch.full((4,), 2.5), target) == pytest.approx(0.0)
    assert explained_variance(-target, target) < 0.0
    assert math.isnan(explained_variance(target, torch.ones(4)))
