"""Curiosity mechanisms: the batch of transitions they score and train on, and their plugin."""

from __future__ import annotations

import abc
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, ClassVar, Literal

import attrs

from pamiqx.api.plugin import ActionSpec, BuildContext, ObservationSpec, Plugin, PluginKind

if TYPE_CHECKING:
    import torch

    from pamiqx.api.policy import PolicyNetwork


@attrs.frozen
class Transitions:
    """A time-major batch of transitions from ``E`` worlds over ``T`` steps, on one device.

    Row ``t`` holds observation ``o_t``, the action ``a_t`` taken there and the
    observation ``o_{t+1}`` that followed.

    Attributes:
        observations: ``(T, E, *obs_shape)``, uint8 images or float vectors.
        next_observations: ``(T, E, *obs_shape)``; where ``dones`` is set, this is
            the first observation of the next episode, not a consequence of the action.
        actions: ``(T, E)`` (discrete) or ``(T, E, K)`` (multi-discrete), int64.
        dones: ``(T, E)`` bool, the action ended an episode.
        intrinsic: ``(T, E)`` rewards an online mechanism computed while acting, else None.
    """

    observations: torch.Tensor
    next_observations: torch.Tensor
    actions: torch.Tensor
    dones: torch.Tensor
    intrinsic: torch.Tensor | None = None

    @property
    def shape(self) -> tuple[int, int]:
        """Return ``(T, E)``."""
        return int(self.dones.shape[0]), int(self.dones.shape[1])

    def flattened(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """Return observations, next observations, actions and dones with ``(T, E)`` merged.

        Each gets one leading dimension of ``T * E`` rows (row ``t * E + e``), the
        layout per-transition networks want; reshape results back with ``.reshape(T, E)``.
        """
        rows = self.shape[0] * self.shape[1]
        return (
            self.observations.reshape(rows, *self.observations.shape[2:]),
            self.next_observations.reshape(rows, *self.next_observations.shape[2:]),
            self.actions.reshape(rows, *self.actions.shape[2:]),
            self.dones.reshape(rows),
        )


class Curiosity(abc.ABC):
    """An intrinsic-reward mechanism: the one interface for batch and online styles.

    *Batch* mechanisms (RND, ICM, disagreement) score a whole rollout in
    :meth:`rewards`. *Online* mechanisms also implement :meth:`agent_step`,
    which the host calls in the agent's step (the inference thread in
    real-time runs) with each new observation; its rewards travel with the
    transitions and :meth:`rewards` returns ``batch.intrinsic``. Both train their
    own models in :meth:`update`, called by the trainer after each rollout.
    The host normalises, mixes, logs and checkpoints; a mechanism never sees
    the policy's parameters.

    Attributes:
        style: ``"batch"`` or ``"online"``.
    """

    style: ClassVar[Literal["batch", "online"]] = "batch"

    @abc.abstractmethod
    def modules(self) -> dict[str, torch.nn.Module]:
        """Return the mechanism's modules by name (the host moves and saves them)."""

    @abc.abstractmethod
    def rewards(self, batch: Transitions) -> torch.Tensor:
        """Return the intrinsic reward of each transition, ``(T, E)`` float32, without gradients."""

    @abc.abstractmethod
    def update(self, batch: Transitions) -> dict[str, float]:
        """Train the mechanism's own models on a batch and return metrics (e.g. its loss)."""

    def agent_step(
        self, observation: torch.Tensor, action: torch.Tensor | None, episode_start: torch.Tensor
    ) -> torch.Tensor | None:
        """Score a new observation as it arrives (online mechanisms only).

        Args:
            observation: ``(E, *obs_shape)`` the observation that just arrived.
            action: ``(E, ...)`` the action that led to it (None on the first step).
            episode_start: ``(E,)`` bool, the observation starts a new episode.

        Returns:
            ``(E,)`` reward for the transition that produced ``observation``, or
            None when there is nothing to score yet (the first step).
        """
        return None

    def policy_network(self, built: Mapping[str, torch.nn.Module]) -> PolicyNetwork | None:
        """Return a policy network this mechanism owns, or None to use ``[models.policy]``.

        Mechanisms whose curiosity lives inside the acting network (one network that
        predicts, acts and evaluates) return it here: a
        :class:`pamiqx.api.PolicyNetwork`. The host then drives it in the
        agent's step, trains it with PPO plus the :attr:`PolicyStep.aux_loss` it
        returns, takes the intrinsic rewards from :attr:`PolicyStep.intrinsic`, and
        saves it as the policy (do not list it in :meth:`modules`).

        Args:
            built: The host's models by role (``encoder``, ``policy``, ...), e.g. to
                train the host's encoder end to end through this network.
        """
        return None

    def state_dict(self) -> dict[str, Any]:
        """Return everything needed to resume (modules, optimizers, running statistics)."""
        return {name: module.state_dict() for name, module in self.modules().items()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what :meth:`state_dict` returned."""
        for name, module in self.modules().items():
            module.load_state_dict(state[name])


class CuriosityPlugin(Plugin, abc.ABC):
    """A curiosity plugin builds a :class:`Curiosity` sized from the environment's specs."""

    kind: ClassVar[PluginKind] = "curiosity"

    @abc.abstractmethod
    def build(
        self,
        options: Any,
        context: BuildContext,
        observation_spec: ObservationSpec,
        action_spec: ActionSpec,
    ) -> Curiosity:
        """Build the mechanism with its modules and optimizers on ``context.device``."""
