"""Per-sub-action log-probabilities and entropies (``multi_discrete_ratio = "per-action"``)."""

from __future__ import annotations

import torch

from pamiqx.api.policy import PolicyStep


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


def sub_action_entropy(step: PolicyStep) -> torch.Tensor:
    """Return the ``(B,)`` mean of the sub-actions' entropies (the internal action's as one).

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
    if step.internal is not None:
        columns.append(_masked(step, step.internal.entropy().sum(dim=-1)))
    return torch.stack(columns, dim=-1).mean(dim=-1)


def _masked(step: PolicyStep, x: torch.Tensor) -> torch.Tensor:
    return x if step.internal_mask is None else x * step.internal_mask.to(x.dtype)
