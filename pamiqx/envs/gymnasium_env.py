"""The ``gymnasium`` environment plugin: any Gymnasium id as an episodic pamiqx Environment.

pamiq-core's own gym adapter targets pamiq-core's Environment; pamiqx worlds
also report rewards, episode starts and evaluation metrics, so this adapter
speaks pamiqx's :class:`~pamiqx.api.Environment` and the runtime bridges that
to pamiq-core once for every world.

Wrappers can report evaluation metrics and keep checkpoint state: any layer of
the wrapped environment (a wrapper listed in ``wrappers``, or the environment
itself) whose class defines ``evaluation_metrics() -> dict[str, float]`` adds
those metrics to the world's (an outer layer wins a name clash), and one that
defines ``state_dict()`` and ``load_state_dict(state)`` is saved in checkpoints
and restored on resume, after the first reset. Metrics such as coverage are
measured there, where the agent cannot observe them;
:class:`pamiqx.envs.minigrid_coverage.MiniGridCoverage` is an example.
"""

from __future__ import annotations

import re
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
from pamiqx.api.errors import PluginError
from pamiqx.envs.imports import MODULE_NAME, import_installed, without_local_paths
from pamiqx.suggest import did_you_mean

if TYPE_CHECKING:
    import gymnasium as gym
    import numpy as np
    import numpy.typing as npt


def _check_id(_: object, attribute: attrs.Attribute[str], value: str) -> None:
    # gymnasium.make("module:Id") imports `module` first; an id is data and imports nothing.
    module, colon, env_id = value.partition(":")
    if colon:
        raise ValueError(
            f"the id '{value}' names a module to import ('{module}'), and pamiqx imports "
            f'nothing because of an id: write import_modules = ["{module}"] and id = "{env_id}"'
        )
    if not value.strip():
        raise ValueError("expected a Gymnasium environment id such as 'CartPole-v1', got ''")


def _check_modules(_: object, attribute: attrs.Attribute[Any], value: tuple[str, ...]) -> None:
    for name in value:
        if not MODULE_NAME.fullmatch(name):
            raise ValueError(f"{name!r} is not a module name (e.g. 'minigrid')")


_WRAPPER_PATH = re.compile(rf"{MODULE_NAME.pattern}:[A-Za-z_][A-Za-z0-9_]*")


def _check_wrappers(_: object, attribute: attrs.Attribute[Any], value: tuple[str, ...]) -> None:
    for path in value:
        if not _WRAPPER_PATH.fullmatch(path):
            raise ValueError(
                f"{path!r} is not a wrapper path; write it as 'module:Class' "
                "(e.g. 'minigrid.wrappers:ImgObsWrapper')"
            )


@attrs.frozen
class GymnasiumOptions:
    """Options of ``gymnasium``.

    Attributes:
        id: The Gymnasium environment id, e.g. ``CartPole-v1`` or ``MiniGrid-FourRooms-v0``.
            Gymnasium's ``module:Id`` form is refused: an id never imports code.
        import_modules: Installed modules imported before the environment is made, for
            the ids they register (``["minigrid"]``). Never imported from the current
            directory.
        kwargs: Keyword options passed to ``gymnasium.make``.
        wrappers: ``gymnasium.Wrapper`` classes applied in order, as ``module:Class``
            paths of installed modules (e.g. ``minigrid.wrappers:ImgObsWrapper``).
    """

    id: str = attrs.field(validator=_check_id)
    import_modules: tuple[str, ...] = attrs.field(default=(), validator=_check_modules)
    kwargs: dict[str, Any] = attrs.field(factory=dict)
    wrappers: tuple[str, ...] = attrs.field(default=(), validator=_check_wrappers)


def _import_wrapper(path: str) -> Any:
    from gymnasium import Wrapper

    module_name, _, attr = path.partition(":")
    module = import_installed(module_name, f"gymnasium: wrapper '{path}'")
    wrapper = getattr(module, attr, None)
    if wrapper is None:
        raise PluginError(
            f"gymnasium: wrapper '{path}' cannot be imported (module '{module_name}' has no "
            f"'{attr}'); write it as 'module:Class'."
        )
    if not (isinstance(wrapper, type) and issubclass(wrapper, Wrapper)):
        raise PluginError(
            f"gymnasium: wrapper '{path}' is not a gymnasium.Wrapper class; list only wrapper "
            "classes in 'wrappers'."
        )
    return wrapper


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
        self._layers = _layers(env)
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
        """Return the wrappers' metrics, and the mean return and length of finished episodes.

        Episode return and length average the episodes finished since the last
        call (absent when none finished); the layers' own metrics (see the module
        docstring) follow, innermost first, so an outer wrapper wins a name clash.
        """
        metrics: dict[str, float] = {}
        if self._finished:
            returns, lengths = zip(*self._finished, strict=True)
            self._finished.clear()
            metrics["episode_return"] = sum(returns) / len(returns)
            metrics["episode_length"] = sum(lengths) / len(lengths)
        for layer in reversed(self._layers):
            report = getattr(type(layer), "evaluation_metrics", None)
            if callable(report):
                metrics.update({k: float(v) for k, v in report(layer).items()})
        return metrics

    def _stateful_layers(self) -> dict[str, Any]:
        # Keyed by position and class, so a checkpoint of another wrapper list fails to load.
        return {
            f"{i}:{type(layer).__qualname__}": layer
            for i, layer in enumerate(self._layers)
            if callable(getattr(type(layer), "state_dict", None))
            and callable(getattr(type(layer), "load_state_dict", None))
        }

    def state_dict(self) -> dict[str, Any]:
        """Return the state of the layers that keep one (e.g. visited cells), by layer."""
        layers = self._stateful_layers()
        return {"layers": {key: layer.state_dict() for key, layer in layers.items()}}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state_dict` into the layers (after :meth:`setup`)."""
        saved = state.get("layers", {})
        for key, layer in self._stateful_layers().items():
            layer.load_state_dict(saved[key])

    def teardown(self) -> None:
        """Close the Gymnasium environment."""
        self.env.close()


def _layers(env: gym.Env[Any, Any]) -> list[Any]:
    """Return the environment's layers, outermost wrapper first, the bare environment last."""
    from gymnasium import Wrapper

    layers: list[Any] = [env]
    while isinstance(layers[-1], Wrapper):
        layers.append(layers[-1].env)
    return layers


class GymnasiumPlugin(EnvironmentPlugin):
    """Any Gymnasium environment by id, episodic, with image or vector observations."""

    name = "gymnasium"
    Options = GymnasiumOptions

    def build(self, options: GymnasiumOptions, context: BuildContext) -> GymnasiumEnvironment:
        """Make the environment and apply the wrappers."""
        import gymnasium as gym

        for name in options.import_modules:
            import_installed(name, "gymnasium: import_modules")
        # Wrapper paths are checked before the (possibly slow) environment is made.
        wrappers = [_import_wrapper(path) for path in options.wrappers]
        try:
            # A registered entry point ("ale_py.env:AtariEnv") is imported by make().
            with without_local_paths():
                env = gym.make(options.id, **options.kwargs)
        except gym.error.Error as error:
            hint = did_you_mean(options.id, gym.registry.keys())
            if not hint:
                hint = (
                    " Ids registered by another package need it imported first: list it in "
                    'import_modules, e.g. import_modules = ["minigrid"] for '
                    "'MiniGrid-FourRooms-v0'."
                )
            reason = str(error).rstrip()
            reason += "" if reason.endswith((".", "?", "!")) else "."
            raise PluginError(f"gymnasium: cannot make '{options.id}': {reason}{hint}") from None
        except TypeError as error:
            raise PluginError(f"gymnasium: bad kwargs for '{options.id}': {error}.") from None
        for wrapper in wrappers:
            env = wrapper(env)
        return GymnasiumEnvironment(env, seed=context.seed + 1000 * context.env_index)
