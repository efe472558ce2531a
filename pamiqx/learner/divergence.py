"""The learner's divergence checks: a nan or inf loss, gradient norm or weight stops the run.

A :class:`~pamiqx.faults.TrainingDiverged` names the phase and the settings to
lower; the weights are not updated with a non-finite gradient and no
checkpoint is written from non-finite weights.
"""

from __future__ import annotations

import math

import torch

from pamiqx.faults import TrainingDiverged
from pamiqx.learner.options import PPOOptions


def check_weights(policy: torch.nn.Module, phase: int, options: PPOOptions) -> None:
    """Stop a phase whose steps left nan or inf weights (once per phase: cheap).

    Raises:
        TrainingDiverged: Naming the first parameters that hold them.
    """
    with torch.no_grad():
        bad = [n for n, p in policy.named_parameters() if not bool(p.isfinite().all())]
    if bad:
        raise TrainingDiverged(
            f"the policy's weights became nan or inf in training phase {phase} "
            f"({', '.join(bad[:3])}{', ...' if len(bad) > 3 else ''}); no checkpoint is "
            f"written from them. Lower policy.lr (now {options.lr:g}) or "
            f"policy.max_grad_norm (now {options.max_grad_norm:g})."
        )


def check_finite(
    what: str, value: float, metrics: dict[str, float], phase: int, options: PPOOptions
) -> None:
    """Stop a gradient step whose loss or gradient norm is nan or inf.

    Raises:
        TrainingDiverged: Naming what diverged, the phase and the losses.
    """
    if math.isfinite(value):
        return
    parts = ", ".join(
        f"{k} {v:.4g}" for k, v in metrics.items() if k.startswith(("loss/", "entropy"))
    )
    raise TrainingDiverged(
        f"the PPO {what} became {value} in training phase {phase} ({parts}); "
        f"the weights were not updated with it and no checkpoint is written from it. "
        f"Lower policy.lr (now {options.lr:g}) or policy.max_grad_norm "
        f"(now {options.max_grad_norm:g}), or check the rewards."
    )
