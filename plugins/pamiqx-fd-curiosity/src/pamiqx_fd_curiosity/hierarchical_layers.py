"""Pieces of ``hierarchical``'s layers: held latent actions, a layer's cells, a step's results.

See :mod:`pamiqx_fd_curiosity.hierarchical` for how the layers work together.
"""

from __future__ import annotations

import attrs
import torch
from torch import Tensor, nn
from torch.distributions import Normal


class HeldGoals:
    """The upper layers' latent actions: Gaussian where a layer acts, held where it does not.

    Every method works on ``(B, Z)`` tensors, ``Z = (L - 1) * goal_dim``. Where a
    layer does not act, :meth:`sample` and :attr:`mean` return its held action and
    :meth:`log_prob` and :meth:`entropy` are 0, so PPO counts a latent action only
    at the step it was chosen.

    Attributes:
        normal: The layers' Gaussians (meaningful only where they act).
        acting: ``(B, Z)`` bool, the dimension's layer acts at this step.
        held: ``(B, Z)`` the actions held from the layers' previous acting steps.
    """

    def __init__(self, mean: Tensor, std: Tensor, acting: Tensor, held: Tensor) -> None:
        """Wrap the Gaussians' parameters with the acting mask and the held actions."""
        self.normal = Normal(mean, std)
        self.acting = acting
        self.held = held

    @property
    def mean(self) -> Tensor:
        """The Gaussians' means where acting, else the held actions."""
        mean: Tensor = self.normal.mean
        return torch.where(self.acting, mean, self.held)

    def sample(self) -> Tensor:
        """Draw new actions where acting; keep the held ones elsewhere."""
        drawn: Tensor = self.normal.sample()  # type: ignore[no-untyped-call]
        return torch.where(self.acting, drawn, self.held)

    def log_prob(self, actions: Tensor) -> Tensor:
        """Per-dimension log-probability of ``actions``, 0 where the layer holds."""
        log_prob: Tensor = self.normal.log_prob(actions)  # type: ignore[no-untyped-call]
        return torch.where(self.acting, log_prob, torch.zeros_like(log_prob))

    def entropy(self) -> Tensor:
        """Per-dimension entropy, 0 where the layer holds."""
        entropy: Tensor = self.normal.entropy()  # type: ignore[no-untyped-call]
        return torch.where(self.acting, entropy, torch.zeros_like(entropy))


class Layer(nn.Module):
    """One layer's forward dynamics and recurrent policy.

    Attributes:
        fd_cell: GRU over ``[x_i, previous action]``, the FD state.
        fd_head: Linear map from ``[FD state, action]`` to the prediction of the next ``x_i``.
        policy_cell: GRU over ``[x_i, goal]``, the policy state.
    """

    def __init__(self, obs_dim: int, action_dim: int, goal_dim: int, hidden_dim: int) -> None:
        """Create the cells and the prediction head.

        Args:
            obs_dim: Width of the layer's observation ``x_i``.
            action_dim: Width of the layer's action (one-hot world action or ``goal_dim``).
            goal_dim: Width of the goal from the layer above.
            hidden_dim: Width of both GRU states.
        """
        super().__init__()
        self.fd_cell = nn.GRUCell(obs_dim + action_dim, hidden_dim)
        self.fd_head = nn.Linear(hidden_dim + action_dim, obs_dim)
        self.policy_cell = nn.GRUCell(obs_dim + goal_dim, hidden_dim)


@attrs.frozen
class LayerStep:
    """What the forward part of one step computed, per layer (lists are bottom first).

    Attributes:
        state: ``(B, hidden_dim)`` state after the forward part (before ``fold_action``).
        features: ``(B, H)`` policy state of each layer after the step.
        observations: ``(B, d_i)`` each layer's observation ``x_i`` (detached).
        errors: ``(B,)`` each layer's ``mean((x_i - x̂_i)^2)`` against its pending
            prediction, for every row (differentiable in the prediction).
        acting: ``(B,)`` bool, the layer acts at this step.
        scored: ``(B,)`` bool, the layer acts and has a pending prediction.
        held: ``(B, goal_dim)`` each upper layer's latent action before this step.
        reward: ``(B,)`` layer 0's blended reward (detached).
    """

    state: Tensor
    features: list[Tensor]
    observations: list[Tensor]
    errors: list[Tensor]
    acting: list[Tensor]
    scored: list[Tensor]
    held: list[Tensor]
    reward: Tensor
