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
    :meth:`rewards`. *Online* mechanisms (``style = "online"``) also implement
    :meth:`agent_step`, which the host calls in the agent's step with each new
    observation; its rewards travel with the transitions and :meth:`rewards`
    returns ``batch.intrinsic``. Both train their own models in :meth:`update`.
    The host normalises, mixes, logs (what :meth:`update` returns, as
    ``curiosity/<name>``) and checkpoints; a mechanism never sees the policy's
    parameters.

    A mechanism's life in a run:

    * **Built** once by its plugin's ``build``. ``context.num_envs`` is ``E``, the
      number of worlds every call sees side by side (``run.num_envs``; 1 in
      real-time runs).
    * **Resumed**: :meth:`load_state_dict` runs once, before the first step.
    * **Acting** (online only): :meth:`agent_step` once per transition, while
      the rollout is collected (see there for the first step, episode starts and
      rollout ends).
    * **Training**: after each rollout of ``T`` steps, :meth:`rewards` and then
      :meth:`update` on the same :class:`Transitions`, so a transition is scored
      by a model that has not trained on it yet.
    * **Checkpointing**: :meth:`state_dict`, between steps and training phases.

    Threads. In lock-step runs (simulators) every call comes from one thread, one
    at a time. In real-time runs (pamiq-core's ``launch``), :meth:`agent_step`
    runs in the inference thread, :meth:`rewards` and :meth:`update` in the
    training thread, *at the same time*, and :meth:`state_dict` in the control
    thread while the other two are paused (a checkpoint never sees half a step
    or half an update). So state that :meth:`agent_step` and :meth:`update` both
    touch (the weights it scores with, running statistics, per-world state,
    counters) needs a lock of the mechanism's own. Hold it briefly, since the
    inference thread keeps the world's control rate: train the model outside the
    lock and copy its weights into an inference copy under it, as
    ``pamiqx_fd_curiosity.base.ForwardDynamicsCuriosity`` does.

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

        The host calls it when the agent acts on an observation: with ``o_{t+1}``
        and the action ``a_t`` that led to it, and the reward returned is stored
        for the transition ``(o_t, a_t, o_{t+1})``, row ``t`` of the next
        :class:`Transitions` (``batch.intrinsic``). Each transition is scored once:

        * **First step of a fresh run**: ``action`` is None and the value returned
          is discarded (no transition led to the first observation). A resumed run
          has no such step: the last action is restored from the checkpoint, and an
          observation scored before the checkpoint is not scored again.
        * **Episode start** (``episode_start[e]`` True): ``observation[e]`` is the
          first observation of a new episode and ``action[e]`` the action that
          ended the previous one; the reward goes to that last transition (its
          ``dones`` row is True). A mechanism predicting ``o_{t+1}`` from ``o_t``
          should not count the reset as a surprise (return 0 there, and reset
          that world's state).
        * **End of a rollout**: the rollout's last transition is scored while the
          rollout is handed over (with the observation the next step acts on), so
          it trains with its own batch; the next step does not score it again.
        * Returning **None** stores a reward of 0 for the transition.

        It runs under ``torch.inference_mode()``: ``observation`` and the tensors it
        makes are inference tensors, which autograd refuses. To learn inside it
        (test-time training), wrap the step in ``with torch.inference_mode(False),
        torch.enable_grad():`` and use ``observation.clone()``; otherwise train in
        :meth:`update` on the batch. In real-time runs it runs in the inference
        thread, concurrently with :meth:`update` (see the class docstring).

        Args:
            observation: ``(E, *obs_shape)`` the observations that just arrived, on
                the run's device.
            action: ``(E,)`` or ``(E, K)`` int64, the actions that led to them; None
                only on the first step of a fresh run.
            episode_start: ``(E,)`` bool, which observations start a new episode.

        Returns:
            ``(E,)`` finite rewards for the transitions into ``observation``, or
            None to store 0 (and on the first step, when nothing can be scored).
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
