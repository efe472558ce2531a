"""The ``sim-maze`` environment plugin: the built-in ray-cast world as a pamiqx Environment."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal

import attrs

from pamiqx.api import (
    ActionSpec,
    BuildContext,
    Environment,
    EnvironmentPlugin,
    EnvStep,
    ObservationSpec,
)
from pamiqx.api.environment import locomotion_action_spec

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

    from pamiqx.envs.maze import MazeWorld


@attrs.frozen
class SimMazeOptions:
    """Options of ``sim-maze``.

    Attributes:
        size: Frame height and width in pixels.
        rooms: Rooms carved into the map.
        map_size: Map side in cells.
        map_seed: Seed of the layout; absent means the experiment's seed.
        action_mode: ``discrete`` (7 locomotion actions) or ``multi_discrete``
            (Vertical, Horizontal, LookHorizontal, Jump, Run as in VRChat's OSC).
        move_speed: Cells per step when walking.
        turn_speed_deg: Degrees per turning step.
        fov_deg: Horizontal field of view.
        episode_steps: Steps per episode; 0 means one endless episode, as in VRChat.
        control_hz: Agent steps per second when the run drives the maze in real time
            (``run.mode = "realtime"``); lock-step runs ignore it.
    """

    size: int = attrs.field(
        default=64, validator=[attrs.validators.ge(16), attrs.validators.le(512)]
    )
    rooms: int = attrs.field(default=6, validator=attrs.validators.ge(1))
    map_size: int = attrs.field(default=21, validator=attrs.validators.ge(7))
    map_seed: int | None = None
    action_mode: Literal["discrete", "multi_discrete"] = "discrete"
    move_speed: float = attrs.field(default=0.15, validator=attrs.validators.gt(0))
    turn_speed_deg: float = attrs.field(default=15.0, validator=attrs.validators.gt(0))
    fov_deg: float = attrs.field(
        default=66.0, validator=[attrs.validators.gt(10), attrs.validators.lt(170)]
    )
    episode_steps: int = attrs.field(default=0, validator=attrs.validators.ge(0))
    control_hz: float = attrs.field(
        default=10.0, validator=[attrs.validators.gt(0), attrs.validators.le(1000)]
    )


class SimMazeEnvironment(Environment):
    """A first-person maze of rooms and corridors; the agent never sees its position."""

    def __init__(self, world: MazeWorld, options: SimMazeOptions) -> None:
        """Wrap a built world."""
        self.world = world
        self.episode_steps = options.episode_steps
        self.control_interval = 1.0 / options.control_hz
        self._steps_in_episode = 0
        self._episode_start = True
        size = options.size
        self._observation_spec = ObservationSpec(shape=(size, size, 3), dtype="uint8", kind="image")
        self._action_spec = locomotion_action_spec(options.action_mode)

    @property
    def observation_spec(self) -> ObservationSpec:
        """Return the RGB frame spec."""
        return self._observation_spec

    @property
    def action_spec(self) -> ActionSpec:
        """Return the locomotion action space."""
        return self._action_spec

    def setup(self) -> None:
        """Place the agent at the start."""
        self.world.reset()
        self._episode_start = True

    def observe(self) -> EnvStep:
        """Return the current frame (no extrinsic reward in the maze)."""
        step = EnvStep(
            observation=self.world.observe(), reward=0.0, episode_start=self._episode_start
        )
        self._episode_start = False
        return step

    def affect(self, action: npt.NDArray[np.int64]) -> None:
        """Move the agent; start a new episode when ``episode_steps`` is reached."""
        if self._action_spec.kind == "discrete":
            self.world.step(int(action))
        else:
            self.world.step(action)
        self._steps_in_episode += 1
        if self.episode_steps and self._steps_in_episode >= self.episode_steps:
            self._steps_in_episode = 0
            self.world.reset()
            self._episode_start = True

    def evaluation_metrics(self) -> dict[str, float]:
        """Return coverage: the fraction of the map's floor cells visited."""
        return {"coverage": float(self.world.coverage)}

    def ground_truth(self) -> dict[str, float]:
        """Return the agent's true pose, for evaluation only (never part of an observation).

        Representation probes (:mod:`pamiqx.evaluation.probe`) regress it from latents.

        Returns:
            ``x`` and ``y`` in cells and ``heading`` in radians.
        """
        x, y = self.world.position
        return {"x": float(x), "y": float(y), "heading": float(self.world.heading)}

    def state_dict(self) -> dict[str, Any]:
        """Return the agent's pose, visited cells and episode counter."""
        return {"world": self.world.get_state(), "steps_in_episode": self._steps_in_episode}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state_dict`."""
        self.world.set_state(state["world"])
        self._steps_in_episode = int(state["steps_in_episode"])
        self._episode_start = False


class SimMazePlugin(EnvironmentPlugin):
    """Built-in first-person maze rendered by ray casting: no display, GPU or network needed."""

    name = "sim-maze"
    Options = SimMazeOptions

    def build(self, options: SimMazeOptions, context: BuildContext) -> SimMazeEnvironment:
        """Generate the maze from the map seed and wrap it."""
        from pamiqx.envs.maze import MazeWorld

        world = MazeWorld(
            seed=context.seed if options.map_seed is None else options.map_seed,
            height=options.size,
            width=options.size,
            rooms=options.rooms,
            map_size=options.map_size,
            action_mode=options.action_mode,
            move_speed=options.move_speed,
            turn_speed_deg=options.turn_speed_deg,
            fov_deg=options.fov_deg,
        )
        return SimMazeEnvironment(world, options)
