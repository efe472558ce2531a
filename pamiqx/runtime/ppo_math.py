"""Pure tensor functions for clipped PPO (Schulman et al., 2017): GAE, losses, metrics.

Nothing here owns a model or an optimizer, so every function can be tested on
hand-written numbers. Rollout tensors are time-major, shaped ``(T, E)`` for ``T``
steps of ``E`` parallel environments; minibatch tensors are flat, shaped ``(B,)``.
"""

from __future__ import annotations

from collections.abc import Mapping

import attrs
import torch


def compute_gae(
    rewards: torch.Tensor,
    values: torch.Tensor,
    dones: torch.Tensor,
    last_value: torch.Tensor,
    gamma: float,
    lam: float,
    episodic: bool = True,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Generalised advantage estimation (Schulman et al., 2016).

    ``delta_t = r_t + gamma * V_{t+1} * (1 - d_t) - V_t`` and
    ``A_t = delta_t + gamma * lam * (1 - d_t) * A_{t+1}``, where ``V_T`` is
    ``last_value``. Inputs are detached: advantages and returns are targets.

    Args:
        rewards: Rewards, shape ``(T, E)``.
        values: Value estimates of the observations at each step, shape ``(T, E)``.
        dones: 1 (or True) where the episode ended at step ``t``, so step ``t`` does
            not bootstrap from ``t + 1``; shape ``(T, E)``.
        last_value: Value of the observation after the last step, shape ``(E,)``.
        gamma: Discount factor.
        lam: GAE lambda.
        episodic: If False, ``dones`` is ignored and the stream is treated as never
            ending (the intrinsic stream in RND).

    Returns:
        ``(advantages, returns)``, both shaped like ``values``, with
        ``returns = advantages + values``.

    Raises:
        ValueError: If the shapes do not agree.
    """
    if rewards.shape != values.shape or dones.shape != values.shape:
        raise ValueError(
            f"rewards {tuple(rewards.shape)}, values {tuple(values.shape)} and "
            f"dones {tuple(dones.shape)} must have the same shape (T, E)"
        )
    if values.dim() == 0 or last_value.shape != values.shape[1:]:
        raise ValueError(
            f"last_value must have shape {tuple(values.shape[1:])}, got {tuple(last_value.shape)}"
        )
    with torch.no_grad():
        r = rewards.detach()
        v = values.detach()
        # Non-episodic streams bootstrap through episode ends (RND's intrinsic return).
        not_done = 1.0 - dones.detach().to(v.dtype) if episodic else torch.ones_like(v)
        advantages = torch.empty_like(v)
        next_value = last_value.detach().to(v.dtype)
        next_adv = torch.zeros_like(next_value)
        for t in range(v.shape[0] - 1, -1, -1):
            delta = r[t] + gamma * next_value * not_done[t] - v[t]
            next_adv = delta + (gamma * lam) * not_done[t] * next_adv
            advantages[t] = next_adv
            next_value = v[t]
        return advantages, advantages + v


def normalize_advantages(adv: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """Shift and scale advantages to mean 0 and std 1 over all elements.

    Args:
        adv: Advantages of any shape.
        eps: Added to the std to avoid dividing by zero.

    Returns:
        Normalised advantages; with a single element only the mean is removed
        (its std is undefined), and an empty tensor is returned unchanged.
    """
    if adv.numel() == 0:
        return adv
    if adv.numel() == 1:
        return adv - adv.mean()
    return (adv - adv.mean()) / (adv.std() + eps)


def _non_negative(_instance: object, attribute: attrs.Attribute[float], value: float) -> None:
    """Attrs validator: reject negative coefficients."""
    if value < 0:
        raise ValueError(f"{attribute.name} must be >= 0, got {value}")


def _positive(_instance: object, attribute: attrs.Attribute[float], value: float) -> None:
    """Attrs validator: reject zero or negative clip ranges."""
    if value <= 0:
        raise ValueError(f"{attribute.name} must be > 0, got {value}")


def _positive_or_none(
    instance: object, attribute: attrs.Attribute[float | None], value: float | None
) -> None:
    """Attrs validator: ``None`` or a positive number."""
    if value is not None and value <= 0:
        raise ValueError(f"{attribute.name} must be > 0 or unset, got {value}")


@attrs.frozen
class PPOLossConfig:
    """Coefficients of the clipped PPO objective.

    Attributes:
        clip_range: Policy ratio is clipped to ``[1 - clip_range, 1 + clip_range]``.
        value_clip_range: If set, new values are clipped to within this distance of
            the rollout values (PPO2 style); ``None`` gives an unclipped value loss.
        value_coef: Weight of the summed value losses.
        entropy_coef: Weight of the entropy bonus (subtracted from the loss).
    """

    clip_range: float = attrs.field(default=0.2, validator=_positive)
    value_clip_range: float | None = attrs.field(default=None, validator=_positive_or_none)
    value_coef: float = attrs.field(default=0.5, validator=_non_negative)
    entropy_coef: float = attrs.field(default=0.01, validator=_non_negative)


def _check_same_shape(reference: torch.Tensor, **tensors: torch.Tensor) -> None:
    """Raise if any tensor's shape differs from ``reference``'s.

    Silent broadcasting between e.g. ``(B, 1)`` and ``(B,)`` is a classic PPO bug.
    """
    for name, tensor in tensors.items():
        if tensor.shape != reference.shape:
            raise ValueError(
                f"{name} has shape {tuple(tensor.shape)}, expected {tuple(reference.shape)}"
            )


def ppo_loss(
    new_log_prob: torch.Tensor,
    old_log_prob: torch.Tensor,
    advantages: torch.Tensor,
    new_values: Mapping[str, torch.Tensor],
    old_values: Mapping[str, torch.Tensor],
    returns: Mapping[str, torch.Tensor],
    entropy: torch.Tensor,
    config: PPOLossConfig,
) -> tuple[torch.Tensor, dict[str, float]]:
    """Clipped PPO loss with one value head per reward stream.

    ``total = policy_loss + value_coef * sum(value_losses) - entropy_coef * mean(entropy)``.
    Old log-probs, advantages, old values and returns are treated as constants.

    Args:
        new_log_prob: Log-probabilities of the taken actions under the current policy, ``(B,)``.
        old_log_prob: Log-probabilities recorded during the rollout, ``(B,)``.
        advantages: Advantages (already mixed and normalised as wanted), ``(B,)``.
        new_values: Current value predictions per stream (e.g. ``"ext"``, ``"int"``).
        old_values: Value predictions recorded during the rollout, same streams.
        returns: Value targets, same streams.
        entropy: Policy entropy per sample (or per batch).
        config: Loss coefficients.

    Returns:
        ``(total_loss, metrics)`` where metrics are Python floats: ``loss/policy``,
        ``loss/value_<stream>``, ``loss/total``, ``entropy``, ``approx_kl`` and
        ``clip_fraction``.

    Raises:
        ValueError: If streams or shapes disagree.
    """
    _check_same_shape(new_log_prob, old_log_prob=old_log_prob, advantages=advantages)
    if not (set(new_values) == set(old_values) == set(returns)):
        raise ValueError(
            f"value streams differ: new {sorted(new_values)}, old {sorted(old_values)}, "
            f"returns {sorted(returns)}"
        )
    old_log_prob = old_log_prob.detach()
    advantages = advantages.detach()

    log_ratio = new_log_prob - old_log_prob
    ratio = log_ratio.exp()
    clip = config.clip_range
    surrogate = ratio * advantages
    clipped_surrogate = ratio.clamp(1.0 - clip, 1.0 + clip) * advantages
    # Pessimistic bound: the min removes any incentive to move the ratio outside the clip.
    policy_loss = -torch.min(surrogate, clipped_surrogate).mean()

    value_losses: dict[str, torch.Tensor] = {}
    for stream in sorted(new_values):
        new_v = new_values[stream]
        old_v = old_values[stream].detach()
        target = returns[stream].detach()
        _check_same_shape(new_v, **{f"old_values[{stream!r}]": old_v})
        _check_same_shape(new_v, **{f"returns[{stream!r}]": target})
        unclipped = (new_v - target).square()
        if config.value_clip_range is None:
            value_losses[stream] = 0.5 * unclipped.mean()
        else:
            vc = config.value_clip_range
            clipped_v = old_v + (new_v - old_v).clamp(-vc, vc)
            clipped = (clipped_v - target).square()
            value_losses[stream] = 0.5 * torch.max(unclipped, clipped).mean()

    entropy_mean = entropy.mean()
    total = policy_loss - config.entropy_coef * entropy_mean
    for value_loss in value_losses.values():
        total = total + config.value_coef * value_loss

    with torch.no_grad():
        metrics: dict[str, float] = {
            "loss/policy": policy_loss.item(),
            "loss/total": total.item(),
            "entropy": entropy_mean.item(),
            # Low-variance, always non-negative KL estimator (Schulman's "k3").
            "approx_kl": ((ratio - 1.0) - log_ratio).mean().item(),
            "clip_fraction": ((ratio - 1.0).abs() > clip).to(torch.float32).mean().item(),
        }
        for stream, value_loss in value_losses.items():
            metrics[f"loss/value_{stream}"] = value_loss.item()
    return total, metrics


def explained_variance(pred: torch.Tensor, target: torch.Tensor) -> float:
    """Fraction of the target's variance explained by the prediction.

    ``1 - Var(target - pred) / Var(target)``: 1 is perfect, 0 is no better than
    predicting the mean, negative is worse.

    Args:
        pred: Predicted values.
        target: Targets (e.g. returns), same number of elements.

    Returns:
        The explained variance, or ``nan`` when the target has zero variance or
        fewer than two elements.

    Raises:
        ValueError: If ``pred`` and ``target`` have different numbers of elements.
    """
    if pred.numel() != target.numel():
        raise ValueError(f"pred has {pred.numel()} elements, target has {target.numel()}")
    p = pred.detach().reshape(-1).to(torch.float64)
    y = target.detach().reshape(-1).to(torch.float64)
    if y.numel() < 2:
        return float("nan")
    var_y = y.var()
    if var_y.item() == 0.0:
        return float("nan")
    return float((1.0 - (y - p).var() / var_y).item())
