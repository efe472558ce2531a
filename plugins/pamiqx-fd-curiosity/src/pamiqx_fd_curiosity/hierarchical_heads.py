"""The heads of ``hierarchical``'s network: world action, values, goals, the groups' values.

A mixin of :class:`~pamiqx_fd_curiosity.hierarchical_network.HierarchicalNetwork`,
which builds the modules (their names and creation order are the network's,
so its checkpoints load and its seeded runs repeat); see
:mod:`pamiqx_fd_curiosity.hierarchical` for the design.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from pamiqx.api import ActionDistribution, ValueHeads
from pamiqx_fd_curiosity.hierarchical_layers import HeldGoals
from pamiqx_fd_curiosity.hierarchical_parts import state_goal_std
from pamiqx_fd_curiosity.owned import INTERNAL_LOG_STD_RANGE


class LayerHeads:
    """Applies the network's heads to the layers' policy features.

    Attributes:
        num_layers: ``L``.
        actor: Layer 0's head over the world's actions.
        values: Layer 0's value heads (``ext``, ``int``).
        goal_means: Each upper layer's goal mean head.
        goal_stds: Each upper layer's state-dependent std head (``goal_std = "state"``).
        goal_log_std: ``(L - 1, goal_dim)`` learned log-stds (``goal_std = "parameter"``).
        group_value_heads: Each upper layer's value head (``own-ppo``), or None.
    """

    num_layers: int
    actor: nn.Module
    values: ValueHeads
    goal_means: nn.ModuleList
    goal_stds: nn.ModuleList | None
    goal_log_std: nn.Parameter | None
    group_value_heads: nn.ModuleList | None

    def _goal(self, i: int, features: Tensor) -> tuple[Tensor, Tensor]:
        """Return layer ``i``'s Gaussian ``(B, goal_dim)`` mean and std."""
        mean: Tensor = self.goal_means[i - 1](features)
        if self.goal_stds is not None:
            return mean, state_goal_std(self.goal_stds[i - 1](features))
        assert self.goal_log_std is not None
        low, high = INTERNAL_LOG_STD_RANGE
        return mean, self.goal_log_std[i - 1].clamp(low, high).exp().expand_as(mean)

    def heads(
        self, features: list[Tensor], acting: list[Tensor], held: list[Tensor]
    ) -> tuple[ActionDistribution, dict[str, Tensor], HeldGoals]:
        """Apply the heads to per-layer ``(N, width_i)`` features, acting masks and held goals."""
        dist: ActionDistribution = self.actor(features[0])
        values: dict[str, Tensor] = self.values(features[0])
        means, stds, masks = [], [], []
        for i in range(1, self.num_layers):
            mean, std = self._goal(i, features[i])
            means.append(mean)
            stds.append(std)
            masks.append(acting[i].unsqueeze(-1).expand_as(mean))
        goals = HeldGoals(
            torch.cat(means, dim=-1),
            torch.cat(stds, dim=-1),
            torch.cat(masks, dim=-1),
            torch.cat(held, dim=-1),
        )
        return dist, values, goals

    def _group_outputs(
        self, features: list[Tensor], acting: list[Tensor]
    ) -> tuple[Tensor | None, Tensor | None]:
        """Return the upper layers' ``(N, L - 1)`` values and acting masks (``own-ppo``)."""
        if self.group_value_heads is None:
            return None, None
        values = torch.cat(
            [h(f) for h, f in zip(self.group_value_heads, features[1:], strict=True)], dim=-1
        )
        return values, torch.stack(acting[1:], dim=-1)
