"""The acting process of a real-time run: the world's beat, encoding and the policy, alone.

In one interpreter the acting thread shares the CPU and the interpreter with
the training thread, so every heavy training step can delay an observation or
an action (``python -m bench.beat``: jitter p99 up to 15.7 ms at 10 Hz on the
quickstart, most steps overrunning on the reference path). Here the acting
side runs in a process of its own, forked when the run starts, with a CPU of
its own where there are at least two:

* it keeps the beat (:class:`~pamiqx.runtime.ticks.TickedInteraction`: observe a
  budget before each tick, infer, send the action at the tick, skip ticks on an
  overrun), encodes each observation with its copy of the representation and
  acts with its copy of the policy;
* after each step it sends an :class:`ActingRecord` (what it saw, the latents,
  the step as the acting policy took it) to the training process, which scores,
  stores and trains exactly as a thread-mode run does
  (:mod:`pamiqx.runtime.remote`), then takes newer weights if the trainer
  published some (:class:`~pamiqx.runtime.shared_weights.SharedWeights`);
* it obeys ``pause`` (send the worlds' states, wait), ``resume`` and ``stop``;
  its errors travel back named (a plugin's fault stays that plugin's fault). It
  ignores SIGINT and SIGTERM (the training process answers them and stops it)
  and ends by itself when the training process disappears (kill -9).
"""

from __future__ import annotations

import contextlib
import os
import pickle
import signal
import time
import traceback
from collections.abc import Mapping
from multiprocessing.connection import Connection
from typing import Any

import attrs
import numpy as np
import numpy.typing as npt
import torch
from pamiq_core import Agent
from pamiq_core import time as core_time
from torch import nn

from pamiqx.api.environment import EnvStep
from pamiqx.api.errors import PamiqxError
from pamiqx.faults import PluginFault, summarise
from pamiqx.runtime.agent import AgentStep, PolicyAgent
from pamiqx.runtime.realtime_world import Failure, RealtimeEnvironment, noop_action
from pamiqx.runtime.shared_weights import SharedWeights
from pamiqx.runtime.stage import Stage
from pamiqx.runtime.ticks import TickedInteraction, TickStats
from pamiqx.runtime.worlds import Worlds

# Seconds the acting process waits for a command while paused or finished, between
# checks that the training process is still there.
_IDLE_POLL = 0.2


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
    """Everything the acting process runs, built in the training process before the fork.

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
    """

    worlds: Worlds
    interaction: TickedInteraction[EnvStep, npt.NDArray[np.int64]]
    agent: ActingAgent
    modules: Mapping[str, nn.Module]
    weights: SharedWeights
    time_scale: float
    cpu: int | None
    metrics_wanted: Any


def describe_error(error: BaseException) -> tuple[str, ...]:
    """Turn an acting-side error into a picklable message (see :func:`rebuild_error`)."""
    if isinstance(error, PluginFault):
        return ("plugin", error.role, error.plugin, error.method, error.problem)
    if isinstance(error, PamiqxError):
        return ("pamiqx", str(error))
    return ("bug", summarise(error), traceback.format_exc())


def rebuild_error(message: tuple[str, ...]) -> BaseException:
    """Rebuild in the training process the error the acting process described."""
    kind, *rest = message
    if kind == "plugin":
        role, plugin, method, problem = rest
        return PluginFault(role, plugin, method, problem)
    if kind == "pamiqx":
        return PamiqxError(rest[0])
    return RuntimeError(f"the acting process failed: {rest[0]}\n{rest[1]}")


def acting_main(side: ActingSide, channel: Connection, parent: int) -> None:
    """The acting process: step on the beat and send records until told to stop.

    Args:
        side: What to run (inherited through the fork).
        channel: Records and replies go out, commands come in.
        parent: The training process's pid (its disappearance ends this process).
    """
    # The terminal's Ctrl-C reaches the whole process group: the training process
    # answers it (and stops this one), so a signal here must not cut a step short.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    if side.cpu is not None:
        os.sched_setaffinity(0, {side.cpu})
    torch.set_num_threads(1)
    core_time.set_time_scale(side.time_scale)
    code = 0
    try:
        _serve(side, channel, parent)
    except (BrokenPipeError, EOFError, ConnectionResetError):
        code = 1  # the training process is gone: nobody is left to tell
    except BaseException as error:  # noqa: BLE001 - every error must reach the trainer
        code = 1
        _send_quietly(channel, ("error", describe_error(error)))
        # Leaving with a command unread would reset the pipe before the trainer read
        # the error: stay until it says stop (or is gone).
        _wait_for_stop(channel, parent)
    finally:
        # Never run the training process's exit handlers or flush its buffers twice.
        os._exit(code)


def _serve(side: ActingSide, channel: Connection, parent: int) -> None:
    interaction, agent, weights = side.interaction, side.agent, side.weights
    interaction.setup()
    seen = weights.version
    weights.mark_taken(seen, agent.weights_step)
    while True:
        if os.getppid() != parent:
            return
        if channel.poll():
            command = channel.recv()
            if command == "stop":
                weights.set_stepping(False)
                send(channel, ("stopped", side.worlds.state_dict(), _evaluation(side)))
                return
            if command == "pause":
                if _pause(side, channel, parent):
                    return
                continue
        if agent.finished:
            weights.set_stepping(False)
            channel.poll(_IDLE_POLL)  # the last step is taken: wait for the trainer's stop
            continue
        # Newer weights are taken between steps (after a pause too), never inside an
        # inference budget: the step sleeps until its observation is due.
        pulled = weights.pull(side.modules, seen)
        if pulled is not None:
            seen, agent.weights_step = pulled
        weights.set_stepping(True)
        interaction.step()
        assert agent.record is not None
        record = attrs.evolve(agent.record, ticks=interaction.take_stats())
        if side.metrics_wanted.is_set():
            side.metrics_wanted.clear()
            record = attrs.evolve(record, evaluation=_evaluation(side))
        send(channel, ("record", record))


def _pause(side: ActingSide, channel: Connection, parent: int) -> bool:
    """Hold still until ``resume`` (False) or ``stop`` (True)."""
    side.weights.set_stepping(False)
    side.interaction.on_paused()
    core_time.pause()
    send(channel, ("paused", side.worlds.state_dict(), _evaluation(side)))
    while True:
        if os.getppid() != parent:
            return True
        if not channel.poll(_IDLE_POLL):
            continue
        command = channel.recv()
        if command == "stop":
            send(channel, ("stopped", side.worlds.state_dict(), _evaluation(side)))
            return True
        if command == "resume":
            core_time.resume()
            side.interaction.on_resumed()
            return False


def _evaluation(side: ActingSide) -> dict[str, float]:
    return side.worlds.evaluation_metrics()


def _wait_for_stop(channel: Connection, parent: int) -> None:
    with contextlib.suppress(EOFError, OSError):
        while os.getppid() == parent:
            if channel.poll(_IDLE_POLL) and channel.recv() == "stop":
                return


def _send_quietly(channel: Connection, message: object) -> None:
    with contextlib.suppress(BrokenPipeError, ConnectionResetError, OSError):
        send(channel, message)


def send(channel: Connection, message: object) -> None:
    """Send a message to the training process, tensors by value.

    ``Connection.send`` pickles with multiprocessing's pickler, for which torch
    registers a reduction that passes each tensor's memory as a file descriptor
    served by a thread of the sender: a record would then die with the acting
    process, and every step would cost a descriptor per tensor.
    """
    channel.send_bytes(pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL))


def receive(channel: Connection) -> Any:
    """Receive what :func:`send` sent."""
    return pickle.loads(channel.recv_bytes())


def build_acting_side(
    worlds: Worlds,
    stage: Stage | None,
    agent: PolicyAgent,
    modules: Mapping[str, nn.Module],
    weights: SharedWeights,
    *,
    steps_left: int,
    interval: float,
    budget: float,
    time_scale: float,
    cpu: int | None,
    metrics_wanted: Any,
) -> ActingSide:
    """Assemble the acting side (in the training process, before the fork).

    Args:
        worlds: The run's single world, set up.
        stage: The representation (the child's copy of it acts), or None.
        agent: The acting policy with the run's recurrent state.
        modules: The modules ``weights`` carries, as the child will hold them.
        weights: The shared weights.
        steps_left: Actions to send before the run's last step.
        interval: Seconds between ticks (pamiq-core's clock).
        budget: Seconds before each tick at which its observation is taken.
        time_scale: pamiq-core's time scale.
        cpu: The CPU to pin the process to, or None.
        metrics_wanted: A multiprocessing event the trainer sets to ask for metrics.
    """
    noop = noop_action(worlds.envs[0].action_spec)
    acting = ActingAgent(stage, agent, steps_left, noop, weights)
    # Errors of the world are raised in the acting process, not recorded for a thread.
    environment = RealtimeEnvironment(worlds, Failure())
    interaction = TickedInteraction(acting, environment, interval, budget)
    return ActingSide(
        worlds, interaction, acting, modules, weights, time_scale, cpu, metrics_wanted
    )


def split_cpus() -> tuple[int | None, set[int] | None]:
    """Return the CPU for the acting process and the rest for training (None: one CPU)."""
    cpus = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
    if len(cpus) < 2:
        return None, None
    return cpus[-1], set(cpus[:-1])
