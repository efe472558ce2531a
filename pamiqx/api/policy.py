"""What the host's PPO learner drives: a policy network, the step it returns, its heads.

The built-in actor-critic is a :class:`PolicyNetwork`; an online curiosity
mechanism may own another (:meth:`pamiqx.api.Curiosity.policy_network`) and
build it from the same heads.
"""

from __future__ import annotations

import abc
from typing import Any

import attrs
import torch
from torch import Tensor, nn
from torch.distributions import Categorical

from pamiqx.api.layers import orthogonal_init


@attrs.frozen
class PolicyStep:
    """What a policy network returns for one step, or for a window of steps.

    The host's PPO learner drives any network that returns this (see
    :class:`pamiqx.api.PolicyNetwork`): the built-in actor-critic,
    or a network an online curiosity mechanism owns (:meth:`Curiosity.policy_network`).

    Attributes:
        dist: Distribution over the world's actions, with ``sample()``, ``log_prob(actions)``
            and ``entropy()`` (e.g. :class:`pamiqx.api.ActionDistribution`).
        values: ``(B,)`` value estimate per reward stream (``ext``, ``int``).
        hidden: Recurrent state after the step (after the window for sequences).
        internal: Diagonal Gaussian (``torch.distributions.Normal`` over ``(B, Z)``) of
            an *internal action* the network emits besides the world's action and feeds
            back to itself; None when it has none. It is sampled, stored and trained by
            PPO like the world's action.
        internal_mask: ``(B,)`` 1 where the internal action is chosen at this step, 0
            where the network holds an earlier one (its log-probability does not count);
            None means chosen at every step.
        intrinsic: ``(B,)`` intrinsic reward of the transition that produced the
            observation, scored inside the network (online mechanisms that own the
            policy); None when the network scores nothing.
        aux_loss: Scalar loss added to PPO's loss (``forward_sequence`` only), e.g. a
            forward-dynamics prediction loss of a network that also predicts.
        metrics: Extra numbers to log (``forward_sequence`` only).
        group_rewards: ``(B, G)`` reward each extra policy group scored at this step
            (:attr:`PolicyNetwork.internal_groups`; ``forward`` only): the reward of
            the group's period that ends at this step, read only where the group
            acts. The host credits it to the group's previous acting step, as it
            credits :attr:`intrinsic` to the previous step's action. None when the
            network declares no groups.
        group_values: ``(B, G)`` each extra group's value estimate at this step (a
            value head on the group's own features; read where the group acts).
        group_acting: ``(B, G)`` bool, the group chooses its columns of the internal
            action at this step (elsewhere it holds them; they count nowhere).
    """

    dist: Any
    values: dict[str, torch.Tensor]
    hidden: torch.Tensor
    internal: Any = None
    internal_mask: torch.Tensor | None = None
    intrinsic: torch.Tensor | None = None
    aux_loss: torch.Tensor | None = None
    metrics: dict[str, float] = attrs.field(factory=dict)
    group_rewards: torch.Tensor | None = None
    group_values: torch.Tensor | None = None
    group_acting: torch.Tensor | None = None

    def log_prob(self, actions: torch.Tensor, internal: torch.Tensor | None) -> torch.Tensor:
        """Return the joint ``(B,)`` log-probability of world and internal actions.

        The host passes ``internal=None`` for a network with
        :attr:`PolicyNetwork.internal_groups`: its internal columns then belong to
        the groups (:meth:`group_log_probs`), not to the world's action.
        """
        log_prob: torch.Tensor = self.dist.log_prob(actions)
        if self.internal is not None and internal is not None:
            extra = self.internal.log_prob(internal).sum(dim=-1)
            log_prob = log_prob + self._masked(extra)
        return log_prob

    def entropy(self, internal: bool = True) -> torch.Tensor:
        """Return the joint ``(B,)`` entropy of world and internal actions.

        Args:
            internal: Count the internal action (False for a network with groups).
        """
        entropy: torch.Tensor = self.dist.entropy()
        if self.internal is not None and internal:
            entropy = entropy + self._masked(self.internal.entropy().sum(dim=-1))
        return entropy

    def group_log_probs(self, internal: torch.Tensor, widths: tuple[int, ...]) -> torch.Tensor:
        """Return ``(B, G)``: each group's log-probability of its columns of ``internal``.

        Args:
            internal: ``(B, Z)`` internal actions taken.
            widths: The groups' column widths (:attr:`PolicyNetwork.internal_groups`).

        Returns:
            Per group the sum over its columns, 0 where the group does not act.
        """
        per_column: torch.Tensor = self.internal.log_prob(internal)
        return self._per_group(per_column, widths)

    def group_entropy(self, widths: tuple[int, ...]) -> torch.Tensor:
        """Return ``(B, G)``: each group's entropy over its columns, 0 where it does not act."""
        per_column: torch.Tensor = self.internal.entropy()
        return self._per_group(per_column, widths)

    def _per_group(self, per_column: torch.Tensor, widths: tuple[int, ...]) -> torch.Tensor:
        sums = torch.stack(
            [part.sum(dim=-1) for part in torch.split(per_column, list(widths), dim=-1)], dim=-1
        )
        if self.internal_mask is not None:
            sums = sums * self.internal_mask.to(sums.dtype).unsqueeze(-1)
        if self.group_acting is not None:
            sums = sums * self.group_acting.to(sums.dtype)
        return sums

    def _masked(self, x: torch.Tensor) -> torch.Tensor:
        return x if self.internal_mask is None else x * self.internal_mask.to(x.dtype)


class ActionDistribution:
    """Product of independent categoricals over one or more sub-actions.

    For a plain discrete action space (``multi=False``) actions are ``(B,)``; for a
    multi-discrete one they are ``(B, K)`` with one column per sub-action.

    Attributes:
        categoricals: One :class:`~torch.distributions.Categorical` per sub-action.
        multi: Whether actions carry a trailing sub-action dimension.
    """

    def __init__(self, logits: list[Tensor], multi: bool) -> None:
        """Wrap per-sub-action logits.

        Args:
            logits: One ``(B, n_k)`` logits tensor per sub-action.
            multi: Whether this is a multi-discrete distribution.

        Raises:
            ValueError: If a discrete distribution gets more than one logits tensor.
        """
        if not logits or (not multi and len(logits) != 1):
            raise ValueError("discrete needs exactly one logits tensor, multi-discrete >= 1")
        self.categoricals = [Categorical(logits=lg) for lg in logits]
        self.multi = multi

    def _pack(self, parts: list[Tensor]) -> Tensor:
        """Combine per-sub-action ``(B,)`` actions into the action-space layout."""
        return torch.stack(parts, dim=-1) if self.multi else parts[0]

    def _unpack(self, actions: Tensor) -> list[Tensor]:
        """Split actions in the action-space layout into per-sub-action ``(B,)`` tensors."""
        if not self.multi:
            return [actions]
        return list(actions.unbind(dim=-1))

    def sample(self) -> Tensor:
        """Draw an action per batch element.

        Returns:
            ``(B,)`` long for discrete, ``(B, K)`` long for multi-discrete.
        """
        # torch.distributions is unannotated, hence the ignores on its methods.
        return self._pack([c.sample() for c in self.categoricals])  # type: ignore[no-untyped-call]

    def mode(self) -> Tensor:
        """Return the most likely action per batch element (same layout as :meth:`sample`)."""
        return self._pack([c.logits.argmax(dim=-1) for c in self.categoricals])

    def log_prob(self, actions: Tensor) -> Tensor:
        """Return the log-probability of ``actions``, summed over sub-actions.

        Args:
            actions: Actions in the layout returned by :meth:`sample`.

        Returns:
            ``(B,)`` log-probabilities.
        """
        parts = self._unpack(actions.long())
        return torch.stack(
            [
                c.log_prob(a)  # type: ignore[no-untyped-call]
                for c, a in zip(self.categoricals, parts, strict=True)
            ]
        ).sum(dim=0)

    def entropy(self) -> Tensor:
        """Return the entropy, summed over sub-actions (they are independent).

        Returns:
            ``(B,)`` entropies.
        """
        entropies = [c.entropy() for c in self.categoricals]  # type: ignore[no-untyped-call]
        return torch.stack(entropies).sum(dim=0)


class DiscreteHead(nn.Module):
    """Policy head for a single categorical action.

    Attributes:
        n: Number of actions.
    """

    def __init__(self, input_dim: int, n: int) -> None:
        """Build the head.

        Args:
            input_dim: Size of the input features.
            n: Number of actions.

        Raises:
            ValueError: If ``n`` is not positive.
        """
        super().__init__()
        if n < 1:
            raise ValueError(f"n must be positive, got {n}")
        self.n = n
        self.linear = nn.Linear(input_dim, n)
        # A tiny gain keeps the initial policy near uniform, i.e. maximally exploratory.
        orthogonal_init(self.linear, 0.01)

    def forward(self, features: Tensor) -> ActionDistribution:
        """Return the action distribution for ``(B, input_dim)`` features."""
        logits: Tensor = self.linear(features)
        return ActionDistribution([logits], multi=False)


class MultiDiscreteHead(nn.Module):
    """Policy head for independent categorical sub-actions.

    Attributes:
        nvec: Number of choices of each sub-action.
    """

    def __init__(self, input_dim: int, nvec: tuple[int, ...]) -> None:
        """Build the head.

        Args:
            input_dim: Size of the input features.
            nvec: Number of choices of each sub-action.

        Raises:
            ValueError: If ``nvec`` is empty or holds a non-positive entry.
        """
        super().__init__()
        if not nvec or min(nvec) < 1:
            raise ValueError(f"nvec must be a non-empty tuple of positives, got {nvec}")
        self.nvec = tuple(nvec)
        self.linear = nn.Linear(input_dim, sum(self.nvec))
        orthogonal_init(self.linear, 0.01)

    def forward(self, features: Tensor) -> ActionDistribution:
        """Return the action distribution for ``(B, input_dim)`` features."""
        logits: Tensor = self.linear(features)
        return ActionDistribution(list(torch.split(logits, list(self.nvec), dim=-1)), multi=True)


class ValueHeads(nn.Module):
    """Separate linear value heads, one per reward stream (e.g. extrinsic and intrinsic).

    Attributes:
        streams: Names of the value streams.
    """

    def __init__(self, input_dim: int, streams: tuple[str, ...] = ("ext", "int")) -> None:
        """Build the heads.

        Args:
            input_dim: Size of the input features.
            streams: Names of the value streams; must be non-empty and unique.

        Raises:
            ValueError: If ``streams`` is empty or has duplicates.
        """
        super().__init__()
        if not streams or len(set(streams)) != len(streams):
            raise ValueError(f"streams must be non-empty and unique, got {streams}")
        self.streams = tuple(streams)
        self.heads = nn.ModuleDict({name: nn.Linear(input_dim, 1) for name in self.streams})
        for head in self.heads.values():
            orthogonal_init(head, 1.0)

    def forward(self, features: Tensor) -> dict[str, Tensor]:
        """Return a ``(B,)`` value estimate per stream for ``(B, input_dim)`` features."""
        return {name: self.heads[name](features).squeeze(-1) for name in self.streams}


class PolicyNetwork(nn.Module, abc.ABC):
    """What the host's agent and PPO learner drive.

    The built-in :class:`ActorCritic` is one; an online curiosity mechanism may
    own another (:meth:`pamiqx.api.Curiosity.policy_network`).

    The state stored with each step is the hidden state *before* that step, so a
    training window replays exactly from it: ``forward`` for step ``t``, then
    ``fold_action`` with the actions sampled there, then ``forward`` for ``t + 1``.
    ``forward_sequence`` must compute what that chain of calls computes.

    *Policy groups.* Group 0 is the world's action: PPO trains it on the ``ext``
    and ``int`` streams. A network may split its internal action into further
    groups (:attr:`internal_groups`), each its own policy with its own reward,
    value and acting steps (:attr:`PolicyStep.group_rewards`, ``group_values``,
    ``group_acting``): the host runs GAE per group over the steps where it acts
    and adds a clipped PPO term, an entropy term and a value loss per group (the
    hierarchical mechanism's one PPO per layer). Those columns then leave group
    0's joint log-probability.

    Attributes:
        internal_action_dim: Width ``Z`` of the internal action (0 for none).
        internal_groups: Widths of the consecutive column slices of the internal
            action that are trained as groups 1, 2, ... (summing to
            ``internal_action_dim``); empty: the internal action counts in group
            0's joint probability ratio.
    """

    internal_action_dim: int = 0
    internal_groups: tuple[int, ...] = ()

    @property
    @abc.abstractmethod
    def is_recurrent(self) -> bool:
        """Whether the network carries a recurrent state (PPO then trains on windows)."""

    @property
    @abc.abstractmethod
    def hidden_dim(self) -> int:
        """Width of the flat ``(B, hidden_dim)`` state (0 when there is none)."""

    def initial_state(self, batch: int, device: torch.device | str | None = None) -> Tensor:
        """Return the state at the start of a run, ``(batch, hidden_dim)`` (zeros by default)."""
        return torch.zeros(batch, self.hidden_dim, device=device)

    @abc.abstractmethod
    def forward(self, obs: Tensor, hidden: Tensor, reset: Tensor | None = None) -> PolicyStep:
        """Run one step for ``(B, ...)`` observations from the state before it.

        Args:
            obs: ``(B, ...)`` observations.
            hidden: ``(B, hidden_dim)`` state before the step.
            reset: Optional ``(B,)`` episode-start mask; those states start afresh.
        """

    def fold_action(self, hidden: Tensor, actions: Tensor, internal: Tensor | None) -> Tensor:
        """Return the state after the actions sampled at this step are known.

        Networks that feed their last actions back to themselves store them in the
        state here; the default keeps the state unchanged.
        """
        return hidden

    @abc.abstractmethod
    def forward_sequence(
        self,
        obs: Tensor,
        hidden0: Tensor,
        resets: Tensor | None,
        actions: Tensor,
        internal: Tensor | None,
    ) -> PolicyStep:
        """Run a window of consecutive steps as ``forward`` and ``fold_action`` would.

        Args:
            obs: ``(T, B, ...)`` observations.
            hidden0: ``(B, hidden_dim)`` state before the first step.
            resets: Optional ``(T, B)`` episode-start mask.
            actions: ``(T, B, ...)`` world actions taken at each step.
            internal: ``(T, B, Z)`` internal actions taken, or None.

        Returns:
            A step whose ``dist``, ``values``, ``internal`` and ``internal_mask`` (and,
            with :attr:`internal_groups`, ``group_values`` and ``group_acting``) cover
            ``T * B`` rows in time-major order (row ``t * B + b``).
        """
