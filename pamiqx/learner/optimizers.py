"""The policy's optimizer: Adam or SGD-Nesterov from ``[policy]``, or none for a frozen policy."""

from __future__ import annotations

from typing import Any

import torch

from pamiqx.learner.options import PPOOptions


def make_optimizer(parameters: Any, options: PPOOptions) -> torch.optim.Optimizer:
    """Return Adam, or SGD with Nesterov momentum 0.9 (the reference experiments' choice)."""
    lr, weight_decay = options.lr, options.weight_decay
    if options.optimizer in ("sgd-nesterov", "sgd"):
        return torch.optim.SGD(
            parameters, lr=lr, momentum=0.9, nesterov=True, weight_decay=weight_decay
        )
    return torch.optim.Adam(parameters, lr=lr, weight_decay=weight_decay, eps=1e-5)


class FrozenPolicyOptimizer:
    """Stands in for the optimizer of a policy without trainable parameters.

    It holds no parameter groups and no state, so nothing is optimised and a
    checkpoint keeps the optimizer's layout (an empty per-parameter state).

    Attributes:
        param_groups: Always empty.
    """

    def __init__(self) -> None:
        """Hold nothing."""
        self.param_groups: list[dict[str, Any]] = []

    def state_dict(self) -> dict[str, Any]:
        """Return an empty optimizer state."""
        return {"state": {}, "param_groups": []}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Accept an empty optimizer state.

        Raises:
            ValueError: The state holds parameters (it was saved for a trainable policy).
        """
        if state.get("state") or state.get("param_groups"):
            raise ValueError("the saved optimizer has parameters; this policy has none")
