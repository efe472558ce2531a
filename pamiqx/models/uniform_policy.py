"""The policy of the ``random`` baseline: uniform actions, zero values, nothing to train."""

from __future__ import annotations

import torch
from torch import Tensor

from pamiqx.api import ActionSpec
from pamiqx.api.policy import ActionDistribution, PolicyNetwork, PolicyStep

VALUE_STREAMS = ("ext", "int")


class UniformPolicy(PolicyNetwork):
    """Acts uniformly at random over the action space and never learns.

    Every sub-action of a multi-discrete space is drawn independently and
    uniformly; the value estimate of every stream is zero. The network has no
    parameters and no buffers, so the PPO learner has nothing to train (it skips
    its update for such a policy) and a checkpoint holds nothing of it.

    Attributes:
        nvec: Number of choices of each sub-action.
        multi: Whether actions are multi-discrete (``(B, K)``) rather than ``(B,)``.
    """

    def __init__(self, action_spec: ActionSpec) -> None:
        """Size the distribution from the world's action space.

        Args:
            action_spec: The environment's action space.

        Raises:
            ValueError: A discrete space with other than one size, or a size below 1.
        """
        super().__init__()
        if not action_spec.nvec or min(action_spec.nvec) < 1:
            raise ValueError(f"action sizes must be positive, got {action_spec.nvec}")
        if action_spec.kind == "discrete" and len(action_spec.nvec) != 1:
            raise ValueError(f"a discrete action has one size, got {action_spec.nvec}")
        self.nvec = tuple(action_spec.nvec)
        self.multi = action_spec.kind == "multi_discrete"

    @property
    def is_recurrent(self) -> bool:
        """Return False: the policy keeps no state."""
        return False

    @property
    def hidden_dim(self) -> int:
        """Return 0: the state is ``(B, 0)``."""
        return 0

    def forward(self, obs: Tensor, hidden: Tensor, reset: Tensor | None = None) -> PolicyStep:
        """Return the uniform distribution and zero values for ``(B, ...)`` observations."""
        return self._step(obs.shape[0], obs.device, hidden)

    def forward_sequence(
        self,
        obs: Tensor,
        hidden0: Tensor,
        resets: Tensor | None,
        actions: Tensor,
        internal: Tensor | None,
    ) -> PolicyStep:
        """Return the uniform distribution and zero values for ``T * B`` steps."""
        steps, batch = obs.shape[0], obs.shape[1]
        return self._step(steps * batch, obs.device, hidden0)

    def _step(self, rows: int, device: torch.device, hidden: Tensor) -> PolicyStep:
        logits = [torch.zeros(rows, n, device=device) for n in self.nvec]
        values = {name: torch.zeros(rows, device=device) for name in VALUE_STREAMS}
        return PolicyStep(dist=ActionDistribution(logits, self.multi), values=values, hidden=hidden)
