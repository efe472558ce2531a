"""Pieces of ``hierarchical``'s layers: held latent actions, a layer's cores, a step's results.

See :mod:`pamiqx_fd_curiosity.hierarchical` for how the layers work together.
"""

from __future__ import annotations

from typing import Literal

import attrs
import torch
from torch import Tensor, nn
from torch.distributions import Normal

from pamiqx.api import CoreSizes, RecurrentStack, SwiGLU


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


CoreKind = Literal["gru", "qgru", "qlstm"]


@attrs.frozen
class CoreSpec:
    """What a layer's two cores are: their kind and sizes.

    Attributes:
        kind: ``gru`` (a GRU cell) or a ``qgru``/``qlstm`` :class:`RecurrentStack`.
        width: The cores' width (the GRU's state, the stack's width).
        depth: Blocks of a stack.
        ff_ratio: Feed-forward width of a stack's blocks, over ``width``.
    """

    kind: CoreKind
    width: int
    depth: int = 2
    ff_ratio: float = 4.0


class TokenLerp(nn.Module):
    """The reference's token mixing (models/components/stacked_features.py ``LerpStackedFeatures``).

    ``(B, N * D)`` flat tokens to ``(B, out)``: each token ``s`` through its own
    linear map, ``W_s x_s + b_s``, mixed with softmax weights that a linear map
    computes from all tokens together.

    Attributes:
        tokens: ``N``.
        token_dim: ``D``.
        weight: ``(N, D, out)`` the per-token maps.
        bias: ``(N, out)`` their biases.
        mix: ``N * D`` to the ``N`` mixing logits.
    """

    def __init__(self, tokens: int, token_dim: int, out_dim: int) -> None:
        """Build the maps (Xavier-uniform per token, zero biases, mixing logits near 0)."""
        super().__init__()
        self.tokens = tokens
        self.token_dim = token_dim
        self.weight = nn.Parameter(torch.empty(tokens, token_dim, out_dim))
        self.bias = nn.Parameter(torch.zeros(tokens, out_dim))
        self.mix = nn.Linear(tokens * token_dim, tokens)
        for s in range(tokens):
            nn.init.xavier_uniform_(self.weight.data[s])
        # Small logits: every token starts with about the same share.
        nn.init.normal_(self.mix.weight, std=0.02)
        nn.init.zeros_(self.mix.bias)

    def forward(self, flat: Tensor) -> Tensor:
        """Mix ``(B, N * D)`` flat tokens into ``(B, out)`` features."""
        tokens = flat.reshape(flat.shape[0], self.tokens, self.token_dim)
        mapped = torch.einsum("sio,bsi->bso", self.weight, tokens) + self.bias
        shares = torch.softmax(self.mix(flat), dim=-1)
        return torch.einsum("bs,bso->bo", shares, mapped)


def _stack(spec: CoreSpec, input_dim: int) -> RecurrentStack:
    assert spec.kind != "gru"
    sizes = CoreSizes(depth=spec.depth, width=spec.width, ff_ratio=spec.ff_ratio)
    return RecurrentStack(spec.kind, input_dim, sizes)


class Layer(nn.Module):
    """One layer's forward dynamics and recurrent policy.

    Each core is a GRU cell (``fd_cell``, ``policy_cell``) or a stack
    (``fd_stack``, ``policy_stack``), stepped one step at a time. A GRU's output is
    its state; a stack's output is its last block's (normed) output and its state
    the blocks' recurrent states. A stack's dropout is never applied
    (``regularize`` stays False): one forward pass acts and trains. The GRU
    layer's parameters keep the first implementation's names and creation order,
    so its checkpoints load and its seeded runs repeat.

    Attributes:
        width: Width of both cores' outputs.
        fd_mixer: The FD's :class:`TokenLerp` of token observations, or nothing.
        policy_mixer: The policy's, or nothing.
        fd_cell: The FD's GRU over ``[x_i, condition]`` (``gru``), else None.
        fd_stack: The FD's stack (``qgru``, ``qlstm``), else None.
        fd_trunk: Before the head: nothing (``linear``), or the reference's linear
            map to the core's width and SwiGLU feed-forward (``swiglu``).
        fd_head: Linear map to the prediction of the layer's next observation, from
            ``[FD output, action]`` (``fd_condition = "action"``) or the FD output alone
            (through ``fd_trunk``).
        policy_cell: The policy's GRU over ``[x_i, goal]`` (``gru``), else None.
        policy_stack: The policy's stack, else None.
    """

    def __init__(
        self,
        obs_dim: int,
        condition_dim: int,
        head_action_dim: int,
        goal_dim: int,
        spec: CoreSpec,
        predictor: Literal["linear", "swiglu"] = "linear",
        tokens: tuple[int, int] | None = None,
    ) -> None:
        """Create the cores and the prediction head.

        Args:
            obs_dim: Width of the layer's observation ``x_i``.
            condition_dim: Width of what the FD core takes besides ``x_i`` (the
                previous action, or the policy's latent).
            head_action_dim: Width of the action the head takes besides the FD output
                (0 for none).
            goal_dim: Width of the goal from the layer above.
            spec: The cores' kind and sizes.
            predictor: ``linear`` or ``swiglu`` (the feed-forward ``spec.ff_ratio`` wide).
            tokens: ``(N, D)``: the cores read the observation through their own
                :class:`TokenLerp` to the core's width; None: flat.
        """
        super().__init__()
        self.width = spec.width
        gru = spec.kind == "gru"
        self.fd_mixer: nn.Module = nn.Identity()
        self.policy_mixer: nn.Module = nn.Identity()
        if tokens is not None:
            self.fd_mixer = TokenLerp(*tokens, spec.width)
            self.policy_mixer = TokenLerp(*tokens, spec.width)
            obs_dim_in = spec.width
        else:
            obs_dim_in = obs_dim
        self.fd_cell = nn.GRUCell(obs_dim_in + condition_dim, spec.width) if gru else None
        self.fd_stack = None if gru else _stack(spec, obs_dim_in + condition_dim)
        head_input = spec.width + head_action_dim
        self.fd_trunk: nn.Module = nn.Identity()
        if predictor == "swiglu":
            hidden = max(1, round(spec.width * spec.ff_ratio))
            self.fd_trunk = nn.Sequential(
                nn.Linear(head_input, spec.width), SwiGLU(spec.width, hidden)
            )
            head_input = spec.width
        self.fd_head = nn.Linear(head_input, obs_dim)
        self.policy_cell = nn.GRUCell(obs_dim_in + goal_dim, spec.width) if gru else None
        self.policy_stack = None if gru else _stack(spec, obs_dim_in + goal_dim)

    @property
    def fd_output_is_state(self) -> bool:
        """Whether the FD's output is its state (a GRU), so it need not be stored apart."""
        return self.fd_cell is not None

    @property
    def fd_state_dim(self) -> int:
        """Width of the FD core's flat state."""
        return self.width if self.fd_stack is None else self.fd_stack.state_dim

    @property
    def policy_state_dim(self) -> int:
        """Width of the policy core's flat state."""
        return self.width if self.policy_stack is None else self.policy_stack.state_dim

    @staticmethod
    def _step(
        cell: nn.GRUCell | None, stack: RecurrentStack | None, x: Tensor, state: Tensor
    ) -> tuple[Tensor, Tensor]:
        if cell is not None:
            h: Tensor = cell(x, state)
            return h, h
        assert stack is not None
        return stack.step(x, state)

    def fd_step(self, x: Tensor, condition: Tensor, state: Tensor) -> tuple[Tensor, Tensor]:
        """Advance the FD core with ``[x, condition]``; returns its output and state."""
        inputs = torch.cat([self.fd_mixer(x), condition], dim=-1)
        return self._step(self.fd_cell, self.fd_stack, inputs, state)

    def predict(self, fd_output: Tensor, action: Tensor | None) -> Tensor:
        """Predict the layer's next observation from the FD output (and the action)."""
        features = fd_output if action is None else torch.cat([fd_output, action], dim=-1)
        prediction: Tensor = self.fd_head(self.fd_trunk(features))
        return prediction

    def policy_step(self, x: Tensor, goal: Tensor, state: Tensor) -> tuple[Tensor, Tensor]:
        """Advance the policy core with ``[x, goal]``; returns its output and state."""
        inputs = torch.cat([self.policy_mixer(x), goal], dim=-1)
        return self._step(self.policy_cell, self.policy_stack, inputs, state)


@attrs.frozen
class LayerStep:
    """What the forward part of one step computed, per layer (lists are bottom first).

    Attributes:
        state: ``(B, hidden_dim)`` state after the forward part (before ``fold_action``).
        features: ``(B, width_i)`` policy output of each layer at the step.
        observations: ``(B, d_i)`` each layer's observation ``x_i`` (detached).
        conditions: ``(B, c_i)`` what each layer's FD core took besides ``x_i``.
        errors: ``(B,)`` each layer's ``mean((x_i - x̂_i)^2)`` against its pending
            prediction, for every row (differentiable in the prediction).
        acting: ``(B,)`` bool, the layer acts at this step.
        scored: ``(B,)`` bool, the layer acts and has a pending prediction.
        held: ``(B, goal_dim)`` each upper layer's latent action before this step.
        reward: ``(B,)`` layer 0's blended reward (detached).
        rewards: ``(B,)`` each layer's blended reward ``r_i`` at this step (detached;
            ``rewards[0]`` is ``reward``).
    """

    state: Tensor
    features: list[Tensor]
    observations: list[Tensor]
    conditions: list[Tensor]
    errors: list[Tensor]
    acting: list[Tensor]
    scored: list[Tensor]
    held: list[Tensor]
    reward: Tensor
    rewards: list[Tensor]
