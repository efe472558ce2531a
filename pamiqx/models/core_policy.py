"""A policy network around a reference core: encoder → core stack → action and value heads."""

from __future__ import annotations

from torch import Tensor, nn

from pamiqx.api.cores import RecurrentStack
from pamiqx.api.policy import (
    ActionDistribution,
    DiscreteHead,
    MultiDiscreteHead,
    PolicyNetwork,
    PolicyStep,
    ValueHeads,
)


class CorePolicy(PolicyNetwork):
    """Encoder → ``qlstm``/``qgru``/``ttt`` stack → action head and value heads.

    The stack's dropout is never applied here (neither acting nor in PPO's
    ``forward_sequence``), so PPO's ratios compare the network that acted.

    Attributes:
        encoder: Observation encoder (exposes ``feature_dim``).
        core: The recurrent stack.
        policy: Action head.
        values: Value heads.
    """

    def __init__(
        self,
        encoder: nn.Module,
        core: RecurrentStack,
        action: tuple[str, tuple[int, ...]],
        value_streams: tuple[str, ...] = ("ext", "int"),
    ) -> None:
        """Build the network.

        Args:
            encoder: Module mapping observations to ``(B, feature_dim)`` features.
            core: A stack whose ``input_dim`` is the encoder's ``feature_dim``.
            action: ``("discrete", (n,))`` or ``("multi_discrete", nvec)``.
            value_streams: Names of the value streams.

        Raises:
            ValueError: If the encoder and the core do not fit or ``action`` is malformed.
        """
        super().__init__()
        feature_dim = getattr(encoder, "feature_dim", None)
        if feature_dim != core.input_dim:
            raise ValueError(
                f"the encoder's feature_dim ({feature_dim}) must be the core's input_dim "
                f"({core.input_dim})"
            )
        self.encoder = encoder
        self.core = core
        kind, sizes = action
        if kind == "discrete":
            if len(sizes) != 1:
                raise ValueError(f"discrete action needs exactly one size, got {sizes}")
            self.policy: nn.Module = DiscreteHead(core.width, sizes[0])
        elif kind == "multi_discrete":
            self.policy = MultiDiscreteHead(core.width, sizes)
        else:
            raise ValueError(f"unknown action kind {kind!r}; expected discrete|multi_discrete")
        self.values = ValueHeads(core.width, value_streams)

    @property
    def is_recurrent(self) -> bool:
        """Always: the core carries a state."""
        return True

    @property
    def hidden_dim(self) -> int:
        """Width of the core's flat state."""
        return self.core.state_dim

    def _heads(self, features: Tensor, hidden: Tensor) -> PolicyStep:
        dist: ActionDistribution = self.policy(features)
        values: dict[str, Tensor] = self.values(features)
        return PolicyStep(dist, values, hidden)

    def forward(self, obs: Tensor, hidden: Tensor, reset: Tensor | None = None) -> PolicyStep:
        """Run one step (the core's recurrence); a reset drops the carried state first."""
        features, hidden = self.core.step(self.encoder(obs), hidden, reset)
        return self._heads(features, hidden)

    def forward_sequence(
        self,
        obs: Tensor,
        hidden0: Tensor,
        resets: Tensor | None = None,
        actions: Tensor | None = None,
        internal: Tensor | None = None,
    ) -> PolicyStep:
        """Run a window with the core's parallel scan, as repeated :meth:`forward` calls would.

        Returns:
            ``dist`` and ``values`` over ``T * B`` rows (time-major) and the final state.
        """
        steps, batch = obs.shape[0], obs.shape[1]
        features: Tensor = self.encoder(obs.reshape(steps * batch, *obs.shape[2:]))
        outs, hidden = self.core.forward_window(features.reshape(steps, batch, -1), hidden0, resets)
        return self._heads(outs.reshape(steps * batch, -1), hidden)
