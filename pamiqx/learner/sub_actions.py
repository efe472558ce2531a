"""Per-sub-action log-probabilities and entropies (``multi_discrete_ratio = "per-action"``)."""

from __future__ import annotations

import torch

from pamiqx.api.policy import PolicyNetwork, PolicyStep
from pamiqx.learner.batch import RolloutBatch


def sub_action_log_probs(
    step: PolicyStep, actions: torch.Tensor, internal: torch.Tensor | None
) -> torch.Tensor:
    """Return ``(B, K)`` log-probabilities per sub-action of the taken actions.

    One column per categorical of the world's action and, for a network with an
    internal action, one more for it (summed over its dimensions, masked where it
    was held). The columns sum to :meth:`PolicyStep.log_prob`.

    Raises:
        TypeError: The distribution does not expose its categoricals
            (``policy.multi_discrete_ratio = "per-action"`` needs them).
    """
    categoricals = getattr(step.dist, "categoricals", None)
    if categoricals is None:
        raise TypeError(
            "policy.multi_discrete_ratio = 'per-action' needs a distribution with "
            "per-sub-action categoricals (pamiqx.api.ActionDistribution); this policy's "
            f"is a {type(step.dist).__name__}"
        )
    parts = [actions] if actions.dim() == 1 else list(actions.unbind(dim=-1))
    columns = [c.log_prob(a.long()) for c, a in zip(categoricals, parts, strict=True)]
    if step.internal is not None and internal is not None:
        columns.append(_masked(step, step.internal.log_prob(internal).sum(dim=-1)))
    return torch.stack(columns, dim=-1)


def sub_action_entropy(step: PolicyStep, internal: bool = True) -> torch.Tensor:
    """Return the ``(B,)`` mean of the sub-actions' entropies (the internal action's as one).

    Args:
        step: The network's output.
        internal: Count the internal action (False when it belongs to policy groups).

    Raises:
        TypeError: The distribution does not expose its categoricals.
    """
    categoricals = getattr(step.dist, "categoricals", None)
    if categoricals is None:
        raise TypeError(
            "policy.multi_discrete_ratio = 'per-action' needs a distribution with "
            "per-sub-action categoricals (pamiqx.api.ActionDistribution)"
        )
    columns = [c.entropy() for c in categoricals]
    if step.internal is not None and internal:
        columns.append(_masked(step, step.internal.entropy().sum(dim=-1)))
    return torch.stack(columns, dim=-1).mean(dim=-1)


def _masked(step: PolicyStep, x: torch.Tensor) -> torch.Tensor:
    return x if step.internal_mask is None else x * step.internal_mask.to(x.dtype)


def acting_sub_log_probs(
    policy: PolicyNetwork, batch: RolloutBatch, grouped: bool = False
) -> torch.Tensor:
    """Return ``(T, E, K)`` per-sub-action log-probabilities of a rollout's actions.

    The rollout stores only the joint log-probability of each step, so the
    split into sub-actions is recomputed here, before any gradient step on
    these steps: one window per world from its stored first recurrent state.
    In lock-step runs the weights are those the actions were sampled with, so
    the split is exact; the columns are then shifted equally so that they sum
    to the stored joint log-probability (exact under any weights). The caller
    sets the precision and names the plugin in faults.

    Args:
        policy: The network.
        batch: The new steps.
        grouped: The internal action belongs to policy groups (no column here).
    """
    has_internal = batch.internal.shape[-1] > 0
    internal = batch.internal if has_internal else None
    with torch.no_grad():
        out = policy.forward_sequence(
            batch.observations,
            batch.hidden[0],
            batch.episode_starts.float(),
            batch.actions,
            internal,
        )
        own = None if internal is None or grouped else internal.flatten(0, 1)
        sub = sub_action_log_probs(out, batch.actions.flatten(0, 1), own).float()
    steps, envs = batch.log_probs.shape
    sub = sub.reshape(steps, envs, -1)
    shift = (batch.log_probs.float() - sub.sum(dim=-1)) / sub.shape[-1]
    return sub + shift.unsqueeze(-1)
