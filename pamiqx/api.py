"""What a plugin implements: the plugin classes and the objects they exchange.

A plugin is a class with a ``name``, a ``kind`` and an ``Options`` attrs class.
It is returned by one of the registration hooks in
:mod:`pamiqx.plugins.hookspecs` and instantiated only when an experiment uses
it. Importing this module (and a plugin's registration module) must stay cheap:
torch and other heavy libraries are imported inside ``build`` methods, so that
``pamiqx list-plugins`` and ``pamiqx validate`` start fast and a missing
optional dependency breaks only the plugin that needs it.
"""

from __future__ import annotations

import abc
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Literal

import attrs

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt
    import torch

    from pamiqx.models.networks import PolicyNetwork

PluginKind = Literal["environment", "model", "curiosity"]
PLUGIN_KINDS: tuple[PluginKind, ...] = ("environment", "model", "curiosity")


@attrs.frozen
class NoOptions:
    """Options of a plugin that takes none."""


class Plugin:
    """Base of every plugin class.

    Attributes:
        kind: Which registry the plugin belongs to.
        name: The name experiment files use in ``plugin = "..."``.
        Options: attrs class validating the plugin's table in the experiment file.
    """

    kind: ClassVar[PluginKind]
    name: ClassVar[str]
    Options: ClassVar[type[Any]] = NoOptions

    @classmethod
    def summary(cls) -> str:
        """Return the first line of the plugin's docstring."""
        doc = (cls.__doc__ or "").strip()
        return doc.splitlines()[0] if doc else ""


@attrs.frozen
class ObservationSpec:
    """Shape and type of what an environment observes.

    Attributes:
        shape: ``(H, W, C)`` for images, ``(D,)`` for vectors.
        dtype: ``"uint8"`` for images, ``"float32"`` for vectors.
        kind: ``"image"`` or ``"vector"``.
    """

    shape: tuple[int, ...]
    dtype: Literal["uint8", "float32"]
    kind: Literal["image", "vector"]


@attrs.frozen
class ActionSpec:
    """The action space: one categorical (``discrete``) or several (``multi_discrete``).

    Attributes:
        kind: ``"discrete"`` (an int in ``[0, nvec[0])``) or ``"multi_discrete"``.
        nvec: Number of choices of each sub-action (one entry for ``discrete``).
        names: Optional names of the choices (discrete) or sub-actions (multi-discrete).
    """

    kind: Literal["discrete", "multi_discrete"]
    nvec: tuple[int, ...]
    names: tuple[str, ...] = ()


@attrs.frozen
class EnvStep:
    """What an environment reports on ``observe()``.

    Attributes:
        observation: The current observation (an image ``(H, W, C)`` uint8 or a vector).
        reward: Extrinsic reward for the last action (0 where the world has none).
        episode_start: True when this observation starts a new episode, which
            also means the previous action ended the last one (recurrent state and
            bootstrapping reset here). Non-episodic worlds never set it after the first step.
    """

    observation: npt.NDArray[Any]
    reward: float = 0.0
    episode_start: bool = False


@attrs.frozen
class BuildContext:
    """What the host knows when it builds a plugin.

    Attributes:
        experiment_name: The experiment's ``name``.
        seed: The experiment's seed; plugins derive their own generators from it.
        device: ``"cpu"`` or ``"cuda"`` (already resolved from ``"auto"``).
        run_dir: The run directory, or None when only validating.
        time_scale: pamiq-core time scale (>1 fast-forwards real-time worlds in tests).
        env_index: Which of the parallel copies of a lock-step world is being built.
    """

    experiment_name: str
    seed: int
    device: str = "cpu"
    run_dir: Path | None = None
    time_scale: float = 1.0
    env_index: int = 0


class Environment(abc.ABC):
    """A world the agent acts in, stepped as ``observe()`` then ``affect(action)``.

    Lock-step worlds (simulators) advance inside ``affect``; real-time worlds
    (VRChat) advance on their own and are paced by the host at
    ``control_interval`` seconds per step.

    Attributes:
        realtime: True for worlds that run in real time (paced, concurrent training).
        control_interval: Seconds per agent step for real-time worlds.
    """

    realtime: bool = False
    control_interval: float | None = None

    @property
    @abc.abstractmethod
    def observation_spec(self) -> ObservationSpec:
        """Return the observation shape and type."""

    @property
    @abc.abstractmethod
    def action_spec(self) -> ActionSpec:
        """Return the action space."""

    @abc.abstractmethod
    def observe(self) -> EnvStep:
        """Return the current observation and the reward of the last action."""

    @abc.abstractmethod
    def affect(self, action: npt.NDArray[np.int64]) -> None:
        """Apply an action (shape ``()`` for discrete, ``(len(nvec),)`` for multi-discrete)."""

    def setup(self) -> None:  # noqa: B027 - optional hook, empty by default
        """Acquire devices or connections before the first step."""

    def teardown(self) -> None:  # noqa: B027 - optional hook, empty by default
        """Release everything (for a real-time world: stop every input)."""

    def on_paused(self) -> None:  # noqa: B027 - optional hook, empty by default
        """Called when the run pauses (real-time worlds release their inputs)."""

    def on_resumed(self) -> None:  # noqa: B027 - optional hook, empty by default
        """Called when the run resumes after a pause."""

    def evaluation_metrics(self) -> dict[str, float]:
        """Return metrics the agent cannot see, such as map coverage."""
        return {}

    def state_dict(self) -> dict[str, Any]:
        """Return the world's state for a checkpoint (tensors, arrays and plain values)."""
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:  # noqa: B027 - optional
        """Restore the state returned by :meth:`state_dict`."""


class EnvironmentPlugin(Plugin, abc.ABC):
    """An environment plugin builds an :class:`Environment` from its options."""

    kind: ClassVar[PluginKind] = "environment"

    @abc.abstractmethod
    def build(self, options: Any, context: BuildContext) -> Environment:
        """Build the environment.

        Args:
            options: An instance of the plugin's ``Options`` class.
            context: Seed, device and run directory.

        Returns:
            The environment, not yet set up.
        """


class ModelPlugin(Plugin, abc.ABC):
    """A model plugin builds a torch module sized from the environment's specs."""

    kind: ClassVar[PluginKind] = "model"

    @abc.abstractmethod
    def build(
        self,
        options: Any,
        context: BuildContext,
        observation_spec: ObservationSpec,
        action_spec: ActionSpec,
        built: Mapping[str, torch.nn.Module],
    ) -> torch.nn.Module:
        """Build the module.

        Args:
            options: An instance of the plugin's ``Options`` class.
            context: Seed, device and run directory.
            observation_spec: What the environment observes.
            action_spec: The environment's action space.
            built: Modules of the roles built before this one, by role (the
                ``encoder`` is built first, then ``policy``, then the others).

        Returns:
            The module; the host moves it to ``context.device``.
        """


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


@attrs.frozen
class PolicyStep:
    """What a policy network returns for one step, or for a window of steps.

    The host's PPO learner drives any network that returns this (see
    :class:`pamiqx.models.networks.PolicyNetwork`): the built-in actor-critic,
    or a network an online curiosity mechanism owns (:meth:`Curiosity.policy_network`).

    Attributes:
        dist: Distribution over the world's actions, with ``sample()``, ``log_prob(actions)``
            and ``entropy()`` (e.g. :class:`pamiqx.models.networks.ActionDistribution`).
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
    """

    dist: Any
    values: dict[str, torch.Tensor]
    hidden: torch.Tensor
    internal: Any = None
    internal_mask: torch.Tensor | None = None
    intrinsic: torch.Tensor | None = None
    aux_loss: torch.Tensor | None = None
    metrics: dict[str, float] = attrs.field(factory=dict)

    def log_prob(self, actions: torch.Tensor, internal: torch.Tensor | None) -> torch.Tensor:
        """Return the joint ``(B,)`` log-probability of world and internal actions."""
        log_prob: torch.Tensor = self.dist.log_prob(actions)
        if self.internal is not None and internal is not None:
            extra = self.internal.log_prob(internal).sum(dim=-1)
            log_prob = log_prob + self._masked(extra)
        return log_prob

    def entropy(self) -> torch.Tensor:
        """Return the joint ``(B,)`` entropy of world and internal actions."""
        entropy: torch.Tensor = self.dist.entropy()
        if self.internal is not None:
            entropy = entropy + self._masked(self.internal.entropy().sum(dim=-1))
        return entropy

    def _masked(self, x: torch.Tensor) -> torch.Tensor:
        return x if self.internal_mask is None else x * self.internal_mask.to(x.dtype)


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
        :class:`pamiqx.models.networks.PolicyNetwork`. The host then drives it in the
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
