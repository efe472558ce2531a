"""How ``hierarchical``'s network is put together: its layers, its flat state, its goals' std.

:func:`build_layers` builds each layer's forward dynamics and policy; the flat
recurrent state the host stores with every step is laid out by
:func:`state_layout` (the parts are described in :mod:`pamiqx_fd_curiosity.hierarchical`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Literal

import attrs
import torch.nn.functional as F
from torch import Tensor, nn

from pamiqx.api import orthogonal_init
from pamiqx_fd_curiosity.hierarchical_layers import CoreSpec, Layer
from pamiqx_fd_curiosity.owned import INTERNAL_LOG_STD_RANGE, StateLayout

# Smallest std of a state-dependent goal Gaussian (the reference's ``std_min``).
GOAL_STD_MIN = 1e-6


def build_layers(
    widths: Sequence[int],
    obs_dims: Sequence[int],
    core: CoreSpec,
    action_width: int,
    goal_dim: int,
    fd_condition: Literal["action", "policy"],
    fd_predictor: Literal["linear", "swiglu"],
    tokens: tuple[int, int] | None,
) -> list[Layer]:
    """Build each layer's forward dynamics and policy, bottom first.

    Args:
        widths: Each layer's core width.
        obs_dims: Each layer's observation width.
        core: The cores' kind and sizes (its width is replaced by each layer's).
        action_width: Width of the world's one-hot action (layer 0's action).
        goal_dim: Width of an upper layer's latent action (the others' action).
        fd_condition: ``action`` (the FD takes the layer's action) or ``policy``
            (its policy's latent of the step).
        fd_predictor: ``linear`` or ``swiglu`` prediction head.
        tokens: ``(N, D)`` of a token latent layer 0 mixes, or None.
    """
    by_policy = fd_condition == "policy"
    layers = []
    for i, width in enumerate(widths):
        action = action_width if i == 0 else goal_dim
        layers.append(
            Layer(
                obs_dims[i],
                width if by_policy else action,
                0 if by_policy else action,
                # The top layer's goal input is zeros: the shape of the first
                # implementation, whose seeded runs repeat (the reference has none).
                goal_dim,
                attrs.evolve(core, width=width),
                fd_predictor,
                tokens if i == 0 else None,
            )
        )
    return layers


def stores_fd_output(layer: Layer, fd_condition: Literal["action", "policy"]) -> bool:
    """Whether the state keeps the layer's FD output besides its FD state.

    The head reads the FD output in ``fold_action`` when the forward model is
    conditioned on the action; a GRU's output is its state, a stack's is not.
    """
    return fd_condition == "action" and not layer.fd_output_is_state


def state_layout(
    layers: Sequence[Layer],
    obs_dims: Sequence[int],
    action_width: int,
    goal_dim: int,
    fd_condition: Literal["action", "policy"],
    hold_upper_reward: bool,
) -> StateLayout:
    """Lay out the flat state of every world.

    The step counter, the last world action, then per layer its FD state (and
    output), pending prediction, validity, policy state, and for upper layers the
    held goal (and the held reward).
    """
    widths = {"step": 1, "action": action_width}
    for i, layer in enumerate(layers):
        widths[f"fd{i}"] = layer.fd_state_dim
        if stores_fd_output(layer, fd_condition):
            widths[f"fdout{i}"] = layer.width
        widths.update({f"pred{i}": obs_dims[i], f"valid{i}": 1})
        widths[f"pi{i}"] = layer.policy_state_dim
        if i > 0:
            widths[f"goal{i}"] = goal_dim
            if hold_upper_reward:
                widths[f"reward{i}"] = 1
    return StateLayout(widths)


def state_goal_std(raw: Tensor) -> Tensor:
    """The reference's ``FCNormalHead`` std, ``softplus(raw) + 1e-6``, capped.

    Capped as the learned-parameter std is: nothing else stops PPO's entropy
    bonus from widening a Gaussian only the network reads.
    """
    high = INTERNAL_LOG_STD_RANGE[1]
    return (F.softplus(raw) + GOAL_STD_MIN).clamp(max=math.exp(high))


def group_value_heads(widths: Sequence[int]) -> nn.ModuleList:
    """One linear value head per upper layer, on its own policy features (``own-ppo``)."""
    heads = nn.ModuleList(nn.Linear(width, 1) for width in widths)
    for head in heads:
        orthogonal_init(head, 1.0)
    return heads
