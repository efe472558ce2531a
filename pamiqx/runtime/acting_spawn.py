"""The acting process started by ``spawn``: it builds its own world and networks.

A forked acting process inherits the world, the representation and the policy
already built; a CUDA context does not survive a fork, so a CUDA run (or
``run.acting_start = "spawn"``) starts a fresh interpreter instead. What it is
sent is an :class:`ActingRecipe`: the resolved experiment (plugins travel by
reference, as importable classes, with their validated options), the states
that are not weights (the world's, the agent's recurrent state and last
actions) and the shared weights. The child then

* builds and sets up its own world (the training process tore its copy down
  first, so a device is never held twice; it keeps the object for checkpoints);
* builds the representation, models, curiosity and policy with
  :func:`~pamiqx.runtime.build.build_networks` on the run's device, exactly as
  the training process did, and overwrites their weights with the published
  ones (the policy's and the representation's modules; ``encode`` depends on
  nothing else);
* serves as a forked one does (:func:`~pamiqx.runtime.acting_process.acting_main`)
  and tears its world down when it ends.
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any, cast

import attrs
import torch

from pamiqx.api.curiosity import Curiosity
from pamiqx.api.environment import Environment
from pamiqx.experiment import ResolvedExperiment
from pamiqx.runtime.acting_side import (
    ActingSide,
    BeatSettings,
    NoScoring,
    acting_modules,
    build_acting_side,
)
from pamiqx.runtime.agent import PolicyAgent
from pamiqx.runtime.build import build_environments, build_networks
from pamiqx.runtime.shared_weights import SharedWeights
from pamiqx.runtime.startup import set_up
from pamiqx.runtime.worlds import Worlds


@attrs.frozen
class ActingRecipe:
    """What a spawned acting process needs to build its side (pickled to it).

    Attributes:
        resolved: The validated experiment.
        world_state: The world's checkpoint state (``Worlds.state_dict``).
        agent_state: The acting agent's recurrent state and last actions.
        weights: The shared weights (version 1 holds the training process's).
        seed: Seeds the acting process's sampling (the run's seed and start step).
        beat: The beat, the steps left and the CPU.
        run_dir: The run directory (the plugins' build context).
    """

    resolved: ResolvedExperiment
    world_state: list[dict[str, Any]]
    agent_state: dict[str, Any]
    weights: SharedWeights
    seed: int
    beat: BeatSettings
    run_dir: Path | None

    def build(self) -> ActingSide:
        """Build the acting side in the spawned process (its errors name the plugin)."""
        [env] = build_environments(self.resolved, torch.device("cpu"), self.run_dir)
        set_up(env, self.resolved)
        try:
            return self._build_around(env)
        except BaseException:
            # The side that would tear it down does not exist: let go of the devices.
            with contextlib.suppress(Exception):
                env.teardown()
            raise

    def _build_around(self, env: Environment) -> ActingSide:
        nets = build_networks(self.resolved, [env], self.run_dir)
        worlds = Worlds([env], nets.who["environment"])
        worlds.load_state_dict(self.world_state)
        modules = acting_modules(nets.policy, nets.stage.modules())
        torch.manual_seed(self.seed)
        agent = PolicyAgent(
            nets.policy,
            cast(Curiosity, NoScoring()),
            1,
            nets.device,
            self.resolved.experiment.run.precision,
            nets.who,
        )
        agent.load_state_dict(self.agent_state)
        side = build_acting_side(worlds, nets.stage, agent, modules, self.weights, self.beat)
        # The networks were built from the seed: the published weights replace them.
        pulled = self.weights.pull(modules, 0)
        if pulled is not None:
            side.seen_version, side.agent.weights_step = pulled
        side.owns_world = True
        return side
