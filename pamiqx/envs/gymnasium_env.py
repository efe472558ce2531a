"""The ``gymnasium`` environment plugin: any Gymnasium id as an episodic pamiqx Environment.

pamiq-core's own gym adapter targets pamiq-core's Environment; pamiqx worlds
also report rewards, episode starts and evaluation metrics, so this adapter
speaks pamiqx's :class:`~pamiqx.api.Environment` and the runtime bridges that
to pamiq-core once for every world.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

import attrs

from pamiqx.api import (
    ActionSpec,
    BuildContext,
    Environment,
    EnvironmentPlugin,
    EnvStep,
    ObservationSpec,
)
from pamiqx.errors import PluginError
from pamiqx.suggest import did_you_mean

if TYPE_CHECKING:
    import gymnasium as gym
    import numpy as np
    import numpy.typing as npt


@attrs.frozen
class GymnasiumOptions:
    """Options of ``gymnasium``.

    Attributes:
        id: The Gymnasium environment id, e.g. ``CartPole-v1``.
        kwargs: Keyword options passed to ``gymnasium.make``.
        wrappers: Wrapper classes applied in order, as ``module:Class`` paths
            (e.g. ``minigrid.wrappers:ImgObsWrapper``).
    """

    id: str
    kwargs: dict[str, Any] = attrs.field(factory=dict)
    wrappers: tuple[str, ...] = ()


def _import_wrapper(path: str) -> Any:
    module_name, _, attr = path.partition(":")
    try:
        return getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as error:
        raise PluginError(
            f"gymnasium: wrapper '{path}' cannot be imported ({error}); write it as 'module:Class'."
        ) from None


def observation_spec_of(space: gym.Space[Any]) -> ObservationSpec:
    """Translate a Gymnasium observation space into an :class:`ObservationSpec`.

    Raises:
        PluginError: The space is neither an RGB image, a vector nor discrete.
    """
    from gymnasium import spaces

    if isinstance(space, spaces.Box):
        if len(space.shape) == 3 and space.shape[-1] in (1, 3) and space.dtype.name == "uint8":
            return ObservationSpec(tuple(int(s) for s in space.shape), "uint8", "image")
        if len(space.shape) == 1:
            return ObservationSpec((int(space.shape[0]),), "float32", "vector")
    if isinstance(space, spaces.Discrete):
        return ObservationSpec((int(space.n),), "float32", "vector")
    raise PluginError(
        f"gymnasium: observation space {space} is not supported: use an (H, W, 1|3) uint8 image, "
        "a 1-D Box or a Discrete space (add a wrapper such as "
        "'gymnasium.wrappers:FlattenObservation' or 'minigrid.wrappers:ImgObsWrapper')."
    )


def action_spec_of(space: gym.Space[Any]) -> ActionSpec:
    """Translate a Gymnasium action space into an :class:`ActionSpec`.

    Raises:
        PluginError: The space is not Discrete or MultiDiscrete.
    """
    from gymnasium import spaces

    if isinstance(space, spaces.Discrete):
        return ActionSpec("discrete", (int(space.n),))
    if isinstance(space, spaces.MultiDiscrete) and space.nvec.ndim == 1:
        return ActionSpec("multi_discrete", tuple(int(n) for n in space.nvec))
    raise PluginError(
        f"gymnasium: action space {space} is not supported; pamiqx policies act in Discrete "
        "and MultiDiscrete spaces."
    )


class GymnasiumEnvironment(Environment):
    """An episodic Gymnasium world, reset automatically when an episode ends."""

    def __init__(self, env: gym.Env[Any, Any], seed: int) -> None:
        """Wrap a made Gymnasium environment."""
        self.env = env
        self.seed = seed
        self._observation_spec = observation_spec_of(env.observation_space)
        self._action_spec = action_spec_of(env.action_space)
        self._discrete_obs = type(env.observation_space).__name__ == "Discrete"
        self._pending: EnvStep | None = None
        self._episode_return = 0.0
        self._episode_length = 0
        self._finished: list[tuple[float, int]] = []

    @property
    def observation_spec(self) -> ObservationSpec:
        """Return the observation spec."""
        return self._observation_spec

    @property
    def action_spec(self) -> ActionSpec:
        """Return the action spec."""
        return self._action_spec

    def _convert(self, observation: Any) -> npt.NDArray[Any]:
        import numpy as np

        if self._discrete_obs:
            one_hot = np.zeros(self._observation_spec.shape, dtype=np.float32)
            one_hot[int(observation)] = 1.0
            return one_hot
        return np.asarray(observation, dtype=self._observation_spec.dtype)

    def setup(self) -> None:
        """Reset with the experiment's seed."""
        observation, _ = self.env.reset(seed=self.seed)
        self._pending = EnvStep(self._convert(observation), 0.0, episode_start=True)

    def observe(self) -> EnvStep:
        """Return the observation after the last action and its reward."""
        if self._pending is None:
            self.setup()
        assert self._pending is not None
        return self._pending

    def affect(self, action: npt.NDArray[np.int64]) -> None:
        """Step the world; reset it when the episode ends."""
        gym_action = int(action) if self._action_spec.kind == "discrete" else action
        observation, reward, terminated, truncated, _ = self.env.step(gym_action)
        self._episode_return += float(reward)
        self._episode_length += 1
        start = bool(terminated or truncated)
        if start:
            self._finished.append((self._episode_return, self._episode_length))
            self._episode_return, self._episode_length = 0.0, 0
            observation, _ = self.env.reset()
        self._pending = EnvStep(self._convert(observation), float(reward), episode_start=start)

    def evaluation_metrics(self) -> dict[str, float]:
        """Return the mean return and length of the episodes finished since the last call."""
        if not self._finished:
            return {}
        returns, lengths = zip(*self._finished, strict=True)
        self._finished.clear()
        return {
            "episode_return": sum(returns) / len(returns),
            "episode_length": sum(lengths) / len(lengths),
        }

    def teardown(self) -> None:
        """Close the Gymnasium environment."""
        self.env.close()


class GymnasiumPlugin(EnvironmentPlugin):
    """Any Gymnasium environment by id, episodic, with image or vector observations."""

    name = "gymnasium"
    Options = GymnasiumOptions

    def build(self, options: GymnasiumOptions, context: BuildContext) -> GymnasiumEnvironment:
        """Make the environment and apply the wrappers."""
        import gymnasium as gym

        try:
            env = gym.make(options.id, **options.kwargs)
        except gym.error.Error as error:
            hint = did_you_mean(options.id, gym.registry.keys())
            raise PluginError(f"gymnasium: cannot make '{options.id}': {error}.{hint}") from None
        except TypeError as error:
            raise PluginError(f"gymnasium: bad kwargs for '{options.id}': {error}.") from None
        for path in options.wrappers:
            env = _import_wrapper(path)(env)
        return GymnasiumEnvironment(env, seed=context.seed + 1000 * context.env_index)
