"""The built-in policy network: encoder, optional GRU core, MLP torso, action and value heads."""

from __future__ import annotations

import math

from torch import Tensor, nn

from pamiqx.api.layers import orthogonal_init
from pamiqx.api.policy import (
    ActionDistribution,
    DiscreteHead,
    MultiDiscreteHead,
    PolicyNetwork,
    PolicyStep,
    ValueHeads,
)
from pamiqx.models.recurrent import RecurrentCore


class ActorCritic(PolicyNetwork):
    """Encoder → optional GRU core → MLP torso → action head and value heads.

    Non-recurrent models use a ``(B, 0)`` hidden state so that callers can thread a state
    through both kinds identically.

    Attributes:
        encoder: Observation encoder (exposes ``feature_dim``).
        core: The recurrent core, or ``None`` for a feed-forward model.
        torso: MLP applied to the (recurrent) features.
        policy: Action head.
        values: Value heads.
    """

    def __init__(
        self,
        encoder: nn.Module,
        action: tuple[str, tuple[int, ...]],
        recurrent_dim: int | None = None,
        hidden: tuple[int, ...] = (256,),
        value_streams: tuple[str, ...] = ("ext", "int"),
    ) -> None:
        """Build the model.

        Args:
            encoder: Module mapping observations to ``(B, feature_dim)`` features; must have
                an integer ``feature_dim`` attribute.
            action: ``("discrete", (n,))`` or ``("multi_discrete", nvec)``.
            recurrent_dim: Hidden size of the GRU core, or ``None`` for no core.
            hidden: Widths of the ReLU torso layers (may be empty).
            value_streams: Names of the value streams.

        Raises:
            ValueError: If the encoder lacks ``feature_dim`` or ``action`` is malformed.
        """
        super().__init__()
        feature_dim = getattr(encoder, "feature_dim", None)
        if not isinstance(feature_dim, int) or feature_dim < 1:
            raise ValueError("encoder must have a positive integer `feature_dim` attribute")
        self.encoder = encoder
        self.core = RecurrentCore(feature_dim, recurrent_dim) if recurrent_dim else None
        prev = recurrent_dim if recurrent_dim else feature_dim

        torso: list[nn.Module] = []
        for width in hidden:
            linear = nn.Linear(prev, width)
            orthogonal_init(linear, math.sqrt(2.0))
            torso += [linear, nn.ReLU()]
            prev = width
        self.torso = nn.Sequential(*torso)

        kind, sizes = action
        if kind == "discrete":
            if len(sizes) != 1:
                raise ValueError(f"discrete action needs exactly one size, got {sizes}")
            self.policy: nn.Module = DiscreteHead(prev, sizes[0])
        elif kind == "multi_discrete":
            self.policy = MultiDiscreteHead(prev, sizes)
        else:
            raise ValueError(f"unknown action kind {kind!r}; expected discrete|multi_discrete")
        self.values = ValueHeads(prev, value_streams)

    @property
    def is_recurrent(self) -> bool:
        """Whether the model carries a recurrent state."""
        return self.core is not None

    @property
    def hidden_dim(self) -> int:
        """Width of the hidden state (0 for a feed-forward model)."""
        return 0 if self.core is None else self.core.hidden_dim

    def _heads(self, features: Tensor) -> tuple[ActionDistribution, dict[str, Tensor]]:
        """Apply torso, action head and value heads to ``(N, D)`` features."""
        x: Tensor = self.torso(features)
        dist: ActionDistribution = self.policy(x)
        values: dict[str, Tensor] = self.values(x)
        return dist, values

    def forward(self, obs: Tensor, hidden: Tensor, reset: Tensor | None = None) -> PolicyStep:
        """Run one step for a batch (a reset zeroes the GRU state first).

        Returns:
            The action distribution, ``(B,)`` values per stream and the next state.
        """
        features: Tensor = self.encoder(obs)
        if self.core is not None:
            features, hidden = self.core(features, hidden, reset)
        dist, values = self._heads(features)
        return PolicyStep(dist, values, hidden)

    def forward_sequence(
        self,
        obs: Tensor,
        hidden0: Tensor,
        resets: Tensor | None = None,
        actions: Tensor | None = None,
        internal: Tensor | None = None,
    ) -> PolicyStep:
        """Run a window of consecutive steps, as repeated :meth:`forward` calls would.

        The encoder sees all ``T * B`` observations in one batch; only the core is
        stepped. Actions are not inputs of this network.

        Returns:
            ``dist`` and ``values`` over ``T * B`` rows, and the final state
            (``hidden0`` for a feed-forward model).
        """
        steps, batch = obs.shape[0], obs.shape[1]
        features: Tensor = self.encoder(obs.reshape(steps * batch, *obs.shape[2:]))
        hidden = hidden0
        if self.core is not None:
            seq = features.reshape(steps, batch, -1)
            outs, hidden = self.core.forward_sequence(seq, hidden0, resets)
            features = outs.reshape(steps * batch, -1)
        dist, values = self._heads(features)
        return PolicyStep(dist, values, hidden)
