"""Environments: what a world observes and how it is stepped, and the plugin that builds one.

It also holds the locomotion action layout that ``sim-maze`` and ``vrchat``
share, so that an agent trained in the simulated maze can be pointed at VRChat
unchanged.
"""

from __future__ import annotations

import abc
from typing import TYPE_CHECKING, Any, ClassVar

import attrs

from pamiqx.api.plugin import ActionSpec, BuildContext, ObservationSpec, Plugin, PluginKind

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt


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
    """An environment plugin builds an :class:`Environment` from its options.

    Attributes:
        realtime: True when the worlds it builds run in real time (their
            :attr:`Environment.realtime`); known before building, so a sweep can give
            such runs the machine's one ``realtime_world`` resource (one desktop,
            mouse and camera per machine).
    """

    kind: ClassVar[PluginKind] = "environment"
    realtime: ClassVar[bool] = False

    @abc.abstractmethod
    def build(self, options: Any, context: BuildContext) -> Environment:
        """Build the environment.

        Args:
            options: An instance of the plugin's ``Options`` class.
            context: Seed, device and run directory.

        Returns:
            The environment, not yet set up.
        """


DISCRETE_ACTIONS: tuple[str, ...] = (
    "noop",
    "forward",
    "backward",
    "strafe_left",
    "strafe_right",
    "turn_left",
    "turn_right",
)
"""Names of the discrete actions; the index in this tuple is the action value."""

MULTI_DISCRETE_NAMES: tuple[str, ...] = ("Vertical", "Horizontal", "LookHorizontal", "Jump", "Run")
"""The multi-discrete sub-actions, named after VRChat's OSC inputs."""

MULTI_DISCRETE_NVEC: tuple[int, ...] = (3, 3, 3, 2, 2)
"""Sizes of the multi-discrete sub-actions.

The first three take 0 (none), 1 (+1) or 2 (-1): Vertical +1 walks forward,
Horizontal +1 strafes right and LookHorizontal +1 turns right. Jump and Run are
buttons (1 pressed).
"""


def locomotion_action_spec(mode: str) -> ActionSpec:
    """Return the action spec of ``"discrete"`` or ``"multi_discrete"`` locomotion."""
    if mode == "discrete":
        return ActionSpec("discrete", (len(DISCRETE_ACTIONS),), DISCRETE_ACTIONS)
    return ActionSpec("multi_discrete", MULTI_DISCRETE_NVEC, MULTI_DISCRETE_NAMES)
