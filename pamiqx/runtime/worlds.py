"""The worlds of a run, taken together: checked observations, actions, evaluation metrics, state.

Every call into the environment plugin is made here (lock-step runs) or
through :class:`Worlds.observe_one` / :class:`Worlds.affect_one` (the
real-time inference thread), so a world that raises or breaks its declared
spec stops the run with a :class:`~pamiqx.faults.PluginFault`.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

from pamiqx.api.environment import Environment, EnvStep
from pamiqx.faults import PluginIdentity, blame, check_observation


class Worlds:
    """``E`` copies of one environment plugin's world, stepped together."""

    def __init__(self, envs: list[Environment], who: PluginIdentity) -> None:
        """Wrap built (and set-up) worlds of the plugin ``who``."""
        self.envs = envs
        self.who = who
        self.spec = envs[0].observation_spec
        # Indices of the worlds already torn down.
        self._released: set[int] = set()

    def observe_one(self, env: Environment) -> EnvStep:
        """Observe one world and check what it returned against its spec."""
        with blame(self.who, "observe()"):
            step = env.observe()
        if not isinstance(step, EnvStep):
            raise self.who.fault("observe()", f"returned a {type(step).__name__}, not an EnvStep")
        check_observation(self.who, self.spec, step.observation, step.reward)
        return step

    def affect_one(self, env: Environment, action: npt.NDArray[np.int64]) -> None:
        """Apply an action to one world."""
        with blame(self.who, "affect()"):
            env.affect(action)

    def observe(self) -> tuple[npt.NDArray[Any], npt.NDArray[np.float32], npt.NDArray[np.bool_]]:
        """Observe every world: stacked observations, rewards and episode-start flags."""
        steps = [self.observe_one(env) for env in self.envs]
        observations = np.stack([s.observation for s in steps])
        rewards = np.array([s.reward for s in steps], dtype=np.float32)
        starts = np.array([s.episode_start for s in steps], dtype=np.bool_)
        return observations, rewards, starts

    def affect(self, actions: npt.NDArray[np.int64]) -> None:
        """Apply one action to each world."""
        for env, action in zip(self.envs, actions, strict=True):
            self.affect_one(env, action)

    def evaluation_metrics(self) -> dict[str, float]:
        """Average each world's evaluation metrics (e.g. ``coverage``) over the worlds."""
        collected: dict[str, list[float]] = {}
        for env in self.envs:
            with blame(self.who, "evaluation_metrics()"):
                metrics = env.evaluation_metrics()
            for key, value in metrics.items():
                collected.setdefault(key, []).append(value)
        return {k: float(np.mean(v)) for k, v in collected.items()}

    def state_dict(self) -> list[dict[str, Any]]:
        """Return every world's checkpoint state."""
        states = []
        for env in self.envs:
            with blame(self.who, "state_dict()"):
                states.append(env.state_dict())
        return states

    def load_state_dict(self, states: list[dict[str, Any]]) -> None:
        """Restore :meth:`state_dict` (one state per world)."""
        for env, state in zip(self.envs, states, strict=True):
            with blame(self.who, "load_state_dict()"):
                env.load_state_dict(state)

    def teardown(self) -> None:
        """Tear the worlds down once (a second call does nothing).

        Their objects still answer ``state_dict`` and ``load_state_dict``: a real-time
        run whose spawned acting process builds its own world tears this one down
        before it starts, so a device (a camera) is never held twice, and keeps it
        for checkpoints.
        """
        for index, env in enumerate(self.envs):
            if index not in self._released:
                self._released.add(index)
                with blame(self.who, "teardown()"):
                    env.teardown()
