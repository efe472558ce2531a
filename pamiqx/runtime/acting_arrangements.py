"""Where a real-time run acts: in pamiq-core's inference thread, or in a process of its own."""

from __future__ import annotations

import copy
import multiprocessing
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal, cast

import attrs
import torch

from pamiqx.api.curiosity import Curiosity
from pamiqx.experiment import ResolvedExperiment
from pamiqx.runtime.acting_side import (
    ActingSide,
    BeatSettings,
    NoScoring,
    acting_modules,
    build_acting_side,
)
from pamiqx.runtime.acting_spawn import ActingRecipe
from pamiqx.runtime.agent import PolicyAgent
from pamiqx.runtime.build import Components
from pamiqx.runtime.collector import Collector
from pamiqx.runtime.realtime_agent import RealtimeAgent
from pamiqx.runtime.realtime_trainer import CopyLink, SharedLink, WeightLink
from pamiqx.runtime.realtime_world import Failure, RealtimeEnvironment, noop_action
from pamiqx.runtime.remote import ActingProcess, RecordedStage, RemoteAgent, RemoteInteraction
from pamiqx.runtime.shared_weights import SharedWeights
from pamiqx.runtime.stage import Stage
from pamiqx.runtime.ticks import TickedInteraction


@attrs.frozen
class ProcessSettings:
    """How the acting process starts.

    Attributes:
        start_method: ``fork`` (inherits the built world and networks) or ``spawn``
            (builds its own from :attr:`resolved`: CUDA runs).
        time_scale: pamiq-core's time scale.
        cpu: The CPU the process is pinned to, or None.
        resolved: The experiment (what a spawned process builds).
        run_dir: The run directory.
    """

    start_method: Literal["fork", "spawn"]
    time_scale: float
    cpu: int | None
    resolved: ResolvedExperiment
    run_dir: Path | None


@attrs.frozen
class ActingInputs:
    """What either arrangement is built from.

    Attributes:
        components: The run's components (its collector is replaced by the storing one).
        start_step: Steps already done.
        max_steps: Steps to reach.
        on_step: Called after each step stored.
        failure: Where the threads' errors are recorded.
        interval: Seconds between ticks (pamiq-core's clock).
        budget: Seconds before each tick at which its observation is taken.
        checkpoint: Writes a checkpoint while the threads are paused.
    """

    components: Components
    start_step: int
    max_steps: int
    on_step: Callable[[int], None]
    failure: Failure
    interval: float
    budget: float
    checkpoint: Callable[[], object]


@attrs.define
class ActingArrangement:
    """Where acting runs, as the trainer and the control thread see it.

    Attributes:
        interaction: pamiq-core's inference side.
        link: How the trained weights reach acting.
        evaluation: The world's evaluation metrics.
        checkpoint: Writes a checkpoint while the threads are paused.
        agent: Stores the steps and counts them.
        staleness: Optimizer steps acting's weights lagged at the step just stored.
        start: Starts what must run before pamiq-core's threads.
    """

    interaction: Any
    link: WeightLink
    evaluation: Callable[[], dict[str, float]]
    checkpoint: Callable[[], object]
    agent: RealtimeAgent
    staleness: Callable[[], int]
    start: Callable[[], None] = lambda: None


def thread_side(run: ActingInputs) -> ActingArrangement:
    """Acting in pamiq-core's inference thread, with a copy of the policy synced under a lock."""
    components = run.components
    lock = threading.Lock()
    acting_policy = copy.deepcopy(components.policy).eval()
    acting = PolicyAgent(
        acting_policy,
        components.curiosity,
        1,
        components.device,
        components.collector.agent.precision,
    )
    agent = _storing_agent(run, acting, components.stage, lock)
    # A budget near the interval would leave no time between an action and the next
    # observation: the world would be observed before it could respond.
    interaction = TickedInteraction(
        agent, RealtimeEnvironment(components.worlds, run.failure), run.interval, run.budget
    )

    link = CopyLink(
        components.policy, acting_policy, lock, lambda: components.learner.gradient_steps
    )
    return ActingArrangement(
        interaction, link, components.worlds.evaluation_metrics, run.checkpoint, agent, link.lag
    )


def process_side(run: ActingInputs, settings: ProcessSettings) -> ActingArrangement:
    """Acting in its own process; records stored here, weights through shared memory."""
    c = run.components
    context = multiprocessing.get_context(settings.start_method)
    modules = acting_modules(c.policy, c.stage.modules())
    weights = SharedWeights(modules, context)
    weights.publish(modules, c.learner.gradient_steps)  # version 1: what acting starts with
    metrics_wanted = context.Event()
    beat = BeatSettings(
        steps_left=run.max_steps - run.start_step,
        interval=run.interval,
        budget=run.budget,
        time_scale=settings.time_scale,
        cpu=settings.cpu,
        metrics_wanted=metrics_wanted,
    )
    source: ActingSide | ActingRecipe
    if settings.start_method == "fork":
        acting_agent = PolicyAgent(
            c.policy, cast(Curiosity, NoScoring()), 1, c.device, c.collector.agent.precision
        )
        acting_agent.load_state_dict(c.collector.agent.state_dict())
        source = build_acting_side(c.worlds, c.stage, acting_agent, modules, weights, beat)
    else:
        source = ActingRecipe(
            settings.resolved,
            c.worlds.state_dict(),
            c.collector.agent.state_dict(),
            weights,
            seed=settings.resolved.experiment.seed + run.start_step,
            beat=beat,
            run_dir=settings.run_dir,
        )
    process = ActingProcess(source, context)
    remote = RemoteAgent(c.curiosity, c.device, c.who["curiosity"])
    # Duck-typed: the collector only calls the agent's act/bootstrap/state and encode.
    stage = cast(Stage, RecordedStage(c.stage, remote))
    agent = _storing_agent(run, cast(PolicyAgent, remote), stage, threading.Lock())
    interaction = RemoteInteraction(agent, remote, process, c.worlds, run.failure)

    def evaluation() -> dict[str, float]:
        metrics_wanted.set()  # fresh numbers with the next record, for the next phase
        return dict(interaction.evaluation)

    def paused_checkpoint() -> object:
        # The control thread saves once the inference thread stored every step the
        # world took before the pause; after a failure the last good checkpoint stays.
        return run.checkpoint() if interaction.wait_paused() else None

    def staleness() -> int:
        # Measured by acting itself, as it chose the action.
        return 0 if remote.current is None else remote.current.lag

    def start() -> None:
        if settings.start_method != "fork":
            # The spawned process builds and sets up its own world: this one lets go
            # of its devices first and stays for checkpoints (its state comes back).
            c.worlds.teardown()
        process.start()

    link = SharedLink(weights, modules, lambda: c.learner.gradient_steps, process.process.is_alive)
    return ActingArrangement(
        interaction, link, evaluation, paused_checkpoint, agent, staleness, start
    )


def _storing_agent(
    run: ActingInputs, acting: PolicyAgent, stage: Stage, lock: threading.Lock
) -> RealtimeAgent:
    """A collector around ``acting`` continuing the run's, and the agent storing through it."""
    components = run.components
    # Full rollouts go to the training thread on the CPU, one transfer per rollout.
    collector = Collector(acting, components.collector.make_rollout, torch.device("cpu"), stage)
    collector.load_state_dict(components.collector.state_dict())
    components.collector = collector
    noop = noop_action(components.envs[0].action_spec)
    return RealtimeAgent(
        collector, lock, run.start_step, run.max_steps, run.on_step, run.failure, noop
    )
