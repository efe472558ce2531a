"""What the acting process of a real-time run runs: the beat around encoding and acting.

Built before a fork (:func:`build_acting_side` in the training process) or in a
spawned acting process (:mod:`pamiqx.runtime.acting_spawn`); run by
:func:`~pamiqx.runtime.acting_process.acting_main`, which sends each step's
:class:`ActingRecord` to the training process.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any, Protocol

import attrs
import numpy as np
import numpy.typing as npt
import torch
from pamiq_core import Agent
from torch import nn

from pamiqx.api.environment import EnvStep
from pamiqx.runtime.agent import AgentStep, PolicyAgent
from pamiqx.runtime.realtime_world import Failure, RealtimeEnvironment, noop_action
from pamiqx.runtime.shared_weights import SharedWeights
from pamiqx.runtime.stage import Stage
from pamiqx.runtime.ticks import TickedInteraction, TickStats
from pamiqx.runtime.worlds import Worlds


@attrs.frozen
class ActingRecord:
    """One step as the acting process took it.

    Attributes:
        env_step: What the world returned (observation ``o_t``, the previous action's
            reward, whether ``o_t`` starts an episode).
        latents: ``(1, ...)`` the representation's latents of ``o_t``.
        step: The agent's step on ``o_t`` (its actions went to the world unless
            ``final``); ``online_reward`` is the owned policy's intrinsic reward or None.
        hidden_after: The policy's recurrent state after the step.
        weights_step: The trainer's optimizer steps of the weights that acted.
        lag: Optimizer steps those weights lagged the trainer when acting chose.
        inference_seconds: Wall-clock seconds from the observation to the chosen action.
        ticks: The beat's statistics of this step.
        final: The step after the last one: its action was not sent.
        evaluation: The world's evaluation metrics, when the trainer asked for them.
    """

    env_step: EnvStep
    latents: torch.Tensor
    step: AgentStep
    hidden_after: torch.Tensor
    weights_step: int
    lag: int
    inference_seconds: float
    ticks: TickStats
    final: bool
    evaluation: dict[str, float] | None = None


class NoScoring:
    """The curiosity seen by the acting copy: scoring happens in the training process."""

    style = "online"

    def agent_step(self, *args: Any) -> None:
        """Score nothing (a mechanism owning the policy scores inside it, here too)."""
        return None


class ActingAgent(Agent[EnvStep, npt.NDArray[np.int64]]):
    """Encodes and acts for one world; keeps the record of the step for the trainer."""

    def __init__(
        self,
        stage: Stage | None,
        agent: PolicyAgent,
        steps_left: int,
        noop: npt.NDArray[np.int64],
        weights: SharedWeights,
    ) -> None:
        """Create the acting side.

        Args:
            stage: The acting copy of the representation (None: raw observations).
            agent: The acting copy of the policy, with the run's recurrent state.
            steps_left: Actions still to send before the run's last step.
            noop: Sent (and held) once the run has taken its last step.
            weights: Where the trainer publishes (and notes its step).
        """
        super().__init__()
        self.stage = stage
        self.agent = agent
        self.steps_left = steps_left
        self.noop = noop
        self.weights = weights
        self.weights_step = weights.step
        self.record: ActingRecord | None = None

    @property
    def finished(self) -> bool:
        """Whether the last step's outcome was observed (no more actions go out)."""
        return self.record is not None and self.record.final

    def step(self, observation: EnvStep) -> npt.NDArray[np.int64]:
        """Encode, act, and keep the record; the action goes out at the tick."""
        started = time.perf_counter()
        raw = observation.observation[None]
        if self.stage is None:
            latents = torch.from_numpy(np.ascontiguousarray(raw))
        else:
            latents = self.stage.encode(raw, offer=False)
        starts = np.array([observation.episode_start])
        lag = self.weights.trainer_step - self.weights_step
        step = self.agent.act(latents, starts, score=True)
        final = self.steps_left <= 0
        self.record = ActingRecord(
            env_step=observation,
            latents=latents,
            step=step,
            hidden_after=self.agent.hidden.float().cpu(),
            weights_step=self.weights_step,
            lag=lag,
            inference_seconds=time.perf_counter() - started,
            ticks=TickStats(),
            final=final,
        )
        if final:
            return self.noop
        self.steps_left -= 1
        return np.asarray(step.actions[0].numpy(), dtype=np.int64)


@attrs.define
class ActingSide:
    """Everything the acting process runs (built before a fork, or by a spawned process).

    Attributes:
        worlds: The run's (single) world, set up.
        interaction: The beat around :attr:`agent` and the world.
        agent: Encodes and acts.
        modules: The acting copies that :attr:`weights` updates, by name.
        weights: Where the trainer publishes.
        time_scale: pamiq-core's time scale for the beat.
        cpu: The CPU the process is pinned to (None: not pinned).
        metrics_wanted: Set by the trainer: attach the world's evaluation metrics to
            the next record.
        seen_version: The shared weights' version :attr:`modules` hold.
        owns_world: The world was built in the acting process (spawned), which tears
            it down; a forked one leaves that to the training process.
    """

    worlds: Worlds
    interaction: TickedInteraction[EnvStep, npt.NDArray[np.int64]]
    agent: ActingAgent
    modules: Mapping[str, nn.Module]
    weights: SharedWeights
    time_scale: float
    cpu: int | None
    metrics_wanted: Any
    seen_version: int = 0
    owns_world: bool = False


class SideBuilder(Protocol):
    """What a spawned acting process is sent: it builds the side there."""

    def build(self) -> ActingSide:
        """Build the world, the networks and the beat in the acting process."""
        ...


@attrs.frozen
class BeatSettings:
    """How the acting process keeps the beat, and for how long.

    Attributes:
        steps_left: Actions to send before the run's last step.
        interval: Seconds between ticks (pamiq-core's clock).
        budget: Seconds before each tick at which its observation is taken.
        time_scale: pamiq-core's time scale.
        cpu: The CPU to pin the process to, or None.
        metrics_wanted: A multiprocessing event the trainer sets to ask for metrics.
    """

    steps_left: int
    interval: float
    budget: float
    time_scale: float
    cpu: int | None
    metrics_wanted: Any


def acting_modules(
    policy: torch.nn.Module, stage_modules: Mapping[str, torch.nn.Module]
) -> dict[str, torch.nn.Module]:
    """The modules the shared weights carry, by name (both sides lay them out so)."""
    return {"policy": policy, **{f"stage.{k}": m for k, m in stage_modules.items()}}


def build_acting_side(
    worlds: Worlds,
    stage: Stage | None,
    agent: PolicyAgent,
    modules: Mapping[str, nn.Module],
    weights: SharedWeights,
    beat: BeatSettings,
) -> ActingSide:
    """Assemble the acting side (before a fork, or in a spawned acting process).

    Args:
        worlds: The run's single world, set up.
        stage: The representation (the child's copy of it acts), or None.
        agent: The acting policy with the run's recurrent state.
        modules: The modules ``weights`` carries, as the acting process holds them.
        weights: The shared weights.
        beat: The beat, the steps left and the CPU.
    """
    noop = noop_action(worlds.envs[0].action_spec)
    acting = ActingAgent(stage, agent, beat.steps_left, noop, weights)
    # Errors of the world are raised in the acting process, not recorded for a thread.
    environment = RealtimeEnvironment(worlds, Failure())
    interaction = TickedInteraction(acting, environment, beat.interval, beat.budget)
    return ActingSide(
        worlds,
        interaction,
        acting,
        modules,
        weights,
        beat.time_scale,
        beat.cpu,
        beat.metrics_wanted,
        seen_version=weights.version,
    )
