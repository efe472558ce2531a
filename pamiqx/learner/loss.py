"""The clipped PPO objective (Schulman et al., 2017) and the value fit's explained variance.

Pure tensor functions: nothing here owns a model or an optimizer, so each can be
tested on hand-written numbers. Minibatch tensors are flat, shaped ``(B,)``;
with ``policy.multi_discrete_ratio = "per-action"`` the log-probabilities are
``(B, K)``, one column per sub-action, and each has its own clipped ratio.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch

from pamiqx.learner.options import PPOOptions


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
    config: PPOOptions,
) -> tuple[torch.Tensor, dict[str, float]]:
    """Clipped PPO loss with one value head per reward stream.

    ``total = policy_loss + value_coef * sum(value_losses) - entropy_coef * mean(entropy)``.
    Old log-probs, advantages, old values and returns are treated as constants.
    With ``(B, K)`` log-probabilities (one column per sub-action) every column has
    its own ratio, clipped on its own with the step's advantage, and the policy
    loss is the mean over all ``B * K`` of them (the reference's per-action ratio).

    Args:
        new_log_prob: Log-probabilities of the taken actions under the current policy,
            ``(B,)``, or ``(B, K)`` per sub-action.
        old_log_prob: Log-probabilities recorded during the rollout, same shape.
        advantages: Advantages (already mixed and normalised as wanted), ``(B,)``.
        new_values: Current value predictions per stream (e.g. ``"ext"``, ``"int"``).
        old_values: Value predictions recorded during the rollout, same streams.
        returns: Value targets, same streams.
        entropy: Policy entropy per sample (or per batch).
        config: The learner's options (clip ranges, value and entropy coefficients).

    Returns:
        ``(total_loss, metrics)`` where metrics are Python floats: ``loss/policy``,
        ``loss/value_<stream>``, ``loss/total``, ``entropy``, ``approx_kl`` and
        ``clip_fraction``.

    Raises:
        ValueError: If streams or shapes disagree.
    """
    _check_same_shape(new_log_prob, old_log_prob=old_log_prob)
    if new_log_prob.dim() not in (1, 2):
        raise ValueError(
            f"log-probabilities must be (B,) or (B, K), got {tuple(new_log_prob.shape)}"
        )
    _check_same_shape(
        new_log_prob[..., 0] if new_log_prob.dim() == 2 else new_log_prob, advantages=advantages
    )
    if not (set(new_values) == set(old_values) == set(returns)):
        raise ValueError(
            f"value streams differ: new {sorted(new_values)}, old {sorted(old_values)}, "
            f"returns {sorted(returns)}"
        )
    old_log_prob = old_log_prob.detach()
    advantages = advantages.detach()
    if new_log_prob.dim() == 2:  # one ratio per sub-action, each weighted by the step's advantage
        advantages = advantages.unsqueeze(-1)

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
