"""The training process's side of a real-time run whose acting runs in its own process.

pamiq-core's inference thread keeps its place: :class:`RemoteInteraction` takes
each :class:`~pamiqx.runtime.acting_side.ActingRecord` the acting process
sends and hands it to the same :class:`~pamiqx.runtime.realtime.RealtimeAgent`
and :class:`~pamiqx.runtime.collector.Collector` a thread-mode run uses, through
two stand-ins for what moved away:

* :class:`RemoteAgent` answers the collector's ``act``/``bootstrap`` with the
  step the acting policy took (its log-probabilities are the ones PPO's ratios
  need) and scores it with the run's curiosity here, where that curiosity
  trains;
* :class:`RecordedStage` answers ``encode`` with the latents the acting process
  computed, and offers the raw observation to the representation's buffer here.

Pause and stop are exchanged with the acting process so that a checkpoint holds
every step the world took: the acting process stops stepping, sends the
world's state, and every record before it is stored first.
"""

from __future__ import annotations

import contextlib
import multiprocessing.context
import os
import pickle
import signal
import threading
import warnings
from typing import Any

import attrs
import numpy as np
import numpy.typing as npt
import torch
from pamiq_core.interaction import Environment as CoreEnvironment
from pamiq_core.interaction import Interaction

from pamiqx.api.curiosity import Curiosity
from pamiqx.api.environment import EnvStep
from pamiqx.api.errors import PamiqxError
from pamiqx.faults import UNNAMED_CURIOSITY, PluginIdentity, blame, check_rewards, summarise
from pamiqx.runtime.acting_process import acting_main, rebuild_error, receive
from pamiqx.runtime.acting_side import ActingRecord, ActingSide, SideBuilder
from pamiqx.runtime.agent import AgentStep, Bootstrap
from pamiqx.runtime.realtime_world import Failure
from pamiqx.runtime.stage import Stage
from pamiqx.runtime.ticks import TickStats
from pamiqx.runtime.worlds import Worlds

# Seconds the inference thread waits for a record before it checks for a pause or stop.
_POLL = 0.05


class ActingProcessDied(PamiqxError):
    """The acting process ended without being told to (killed, or out of memory)."""


class ActingProcess:
    """The training process's handle on the acting process (start, pipe, liveness)."""

    def __init__(
        self, source: ActingSide | SideBuilder, context: multiprocessing.context.BaseContext
    ) -> None:
        """Prepare the process; :meth:`start` starts it.

        Args:
            source: The side to run (forked), or what builds it (spawned).
            context: The ``fork`` or ``spawn`` multiprocessing context.
        """
        self._channel, self._child_end = context.Pipe(duplex=True)
        self.process = context.Process(  # type: ignore[attr-defined]
            target=acting_main,
            args=(source, self._child_end, os.getpid()),
            name="pamiqx-acting",
            daemon=True,
        )

    def start(self) -> None:
        """Start the acting process.

        Raises:
            PamiqxError: A spawned process could not be sent the experiment.
        """
        with warnings.catch_warnings():
            # Python warns about forking a process that runs threads: the child only
            # runs the acting loop and takes none of the locks the others hold.
            warnings.filterwarnings("ignore", message=".*fork\\(\\) may lead to deadlocks")
            try:
                self.process.start()
            except (pickle.PicklingError, AttributeError, TypeError) as error:
                raise PamiqxError(
                    "the spawned acting process (run.acting_start, 'spawn' on CUDA) is sent the "
                    f"experiment by pickle, and it could not be pickled: {summarise(error)}. "
                    "A plugin's classes and options must be importable from a module; "
                    "run.acting = 'thread' acts in this process instead."
                ) from error
        self._child_end.close()

    def send(self, command: str) -> None:
        """Send ``pause``, ``resume`` or ``stop``."""
        try:
            self._channel.send(command)
        except (BrokenPipeError, ConnectionResetError, OSError) as error:
            raise self.died() from error

    def receive(self, timeout: float) -> tuple[Any, ...] | None:
        """Return the next message, or None if none came within ``timeout`` seconds.

        Raises:
            ActingProcessDied: The process ended without saying why.
        """
        if self._channel.poll(timeout):
            try:
                message: tuple[Any, ...] = receive(self._channel)
            except (EOFError, ConnectionResetError, OSError) as error:
                raise self.died() from error
            return message
        if not self.process.is_alive():
            raise self.died()
        return None

    def died(self) -> ActingProcessDied:
        """Return the error that says how the acting process ended."""
        self.process.join(timeout=1.0)
        code = self.process.exitcode
        how = (
            "is still running but stopped answering"
            if code is None
            else f"was killed by {signal.Signals(-code).name}"
            if code < 0
            else f"exited with code {code}"
        )
        return ActingProcessDied(f"the acting process (pid {self.process.pid}) {how}.")

    def join(self) -> None:
        """Wait for the process to end (killing it after 10 s)."""
        self.process.join(timeout=10.0)
        if self.process.is_alive():
            self.process.kill()
            self.process.join()


class RemoteAgent:
    """The collector's agent for steps the acting process took.

    Attributes:
        current: The record being stored (set by :class:`RemoteInteraction`).
        hidden: The recurrent state after the last step stored.
        prev_actions: Its actions (the curiosity scores the transition they caused).
    """

    def __init__(
        self, curiosity: Curiosity, device: torch.device, who: PluginIdentity = UNNAMED_CURIOSITY
    ) -> None:
        """Score with ``curiosity`` on ``device``."""
        self.curiosity = curiosity
        self.device = device
        self.curiosity_who = who
        self.current: ActingRecord | None = None
        self.hidden = torch.zeros(0)
        self.prev_actions: torch.Tensor | None = None

    def _record(self) -> ActingRecord:
        assert self.current is not None, "a record must be set before the collector acts"
        return self.current

    def _score(self, latents: torch.Tensor, record: ActingRecord) -> torch.Tensor | None:
        # A mechanism that owns the policy scored inside it, in the acting process.
        if record.step.online_reward is not None:
            return record.step.online_reward
        starts = record.step.episode_starts.to(self.device)
        with blame(self.curiosity_who, "agent_step()"):
            reward = self.curiosity.agent_step(latents.to(self.device), self.prev_actions, starts)
        if reward is None:
            return None
        return check_rewards(self.curiosity_who, "agent_step()", reward, (1,)).cpu()

    def act(
        self, observations: torch.Tensor, episode_starts: npt.NDArray[np.bool_], score: bool = False
    ) -> AgentStep:
        """Return the current record's step, scored here when asked."""
        record = self._record()
        reward = self._score(observations, record) if score else None
        self.prev_actions = record.step.actions.to(self.device)
        self.hidden = record.hidden_after
        return attrs.evolve(record.step, online_reward=reward)

    def bootstrap(
        self, observations: torch.Tensor, episode_starts: npt.NDArray[np.bool_], score: bool = False
    ) -> Bootstrap:
        """Values of the current record's observation (the acting policy's), and its score."""
        record = self._record()
        values = {k: v.float() for k, v in record.step.values.items()}
        reward = self._score(observations, record) if score else None
        groups = record.step.groups
        # As PolicyAgent.bootstrap: the groups' outputs there, with nothing sampled.
        groups = attrs.evolve(groups, log_probs=torch.zeros_like(groups.log_probs))
        return Bootstrap(values, reward, groups)

    def state_dict(self) -> dict[str, Any]:
        """Return the recurrent state and the last actions (as :class:`PolicyAgent` does)."""
        return {
            "hidden": self.hidden.cpu(),
            "prev_actions": None if self.prev_actions is None else self.prev_actions.cpu(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state_dict`."""
        self.hidden = state["hidden"].cpu()
        prev = state["prev_actions"]
        self.prev_actions = None if prev is None else prev.to(self.device)


class RecordedStage:
    """The collector's representation for records: their latents, the buffer fed here."""

    def __init__(self, stage: Stage, agent: RemoteAgent) -> None:
        """Offer to ``stage``; take latents from ``agent``'s current record."""
        self.stage = stage
        self.agent = agent
        self.spec = stage.spec

    def encode(self, observations: npt.NDArray[Any], offer: bool = True) -> torch.Tensor:
        """Return the current record's latents; offer the observation to the buffer."""
        if offer:
            self.stage.offer(observations)
        return self.agent._record().latents


class _NoWorld(CoreEnvironment[EnvStep, npt.NDArray[np.int64]]):
    """pamiq-core's environment slot: the world lives in the acting process."""

    def observe(self) -> EnvStep:  # pragma: no cover - never called
        raise NotImplementedError

    def affect(self, action: npt.NDArray[np.int64]) -> None:  # pragma: no cover
        raise NotImplementedError


class RemoteInteraction(Interaction[EnvStep, npt.NDArray[np.int64]]):
    """pamiq-core's inference side of a run whose acting runs in its own process.

    Attributes:
        evaluation: The world's latest evaluation metrics.
        paused: Set once a pause has stored every step the world took.
    """

    def __init__(
        self,
        agent: Any,
        remote: RemoteAgent,
        process: ActingProcess,
        worlds: Worlds,
        failure: Failure,
    ) -> None:
        """Store records through ``agent`` (a :class:`RealtimeAgent`) and ``remote``.

        Args:
            agent: Completes and records each step (``store(EnvStep)``, ``latencies``).
            remote: The collector's agent, given each record.
            process: The acting process.
            worlds: The training process's copy of the world, which takes the acting
                process's world state at each pause and at the end (for checkpoints).
            failure: Where an error is recorded.
        """
        super().__init__(agent, _NoWorld())
        self.realtime_agent = agent
        self.remote = remote
        self.process = process
        self.worlds = worlds
        self.failure = failure
        self.evaluation: dict[str, float] = {}
        self.paused = threading.Event()
        self._stats = TickStats()
        self._stats_lock = threading.Lock()

    def step(self) -> None:
        """Store the next record, if one came."""
        with self.failure.recorded():
            message = self.process.receive(_POLL)
            if message is not None:
                self._handle(message)

    def _handle(self, message: tuple[Any, ...]) -> str:
        kind: str = message[0]
        if kind == "error":
            raise rebuild_error(message[1])
        if kind == "record":
            self._store(message[1])
        else:  # "paused" or "stopped": the world's state and metrics
            self.worlds.load_state_dict(message[1])
            self.evaluation = message[2]
        return kind

    def _store(self, record: ActingRecord) -> None:
        if record.evaluation is not None:
            self.evaluation = record.evaluation
        with self._stats_lock:
            self._stats.lateness += record.ticks.lateness
            self._stats.intervals += record.ticks.intervals
            self._stats.overruns += record.ticks.overruns
            self._stats.skipped_ticks += record.ticks.skipped_ticks
        self.remote.current = record
        self.realtime_agent.store(record.env_step)
        self.realtime_agent.latencies.append(record.inference_seconds)

    def _drain_until(self, kind: str) -> None:
        while True:
            message = self.process.receive(1.0)
            if message is not None and self._handle(message) == kind:
                return

    def on_paused(self) -> None:
        """Stop the acting process and store every step it took before the checkpoint."""
        super().on_paused()
        with self.failure.recorded():
            self.process.send("pause")
            self._drain_until("paused")
        self.paused.set()

    def on_resumed(self) -> None:
        """Let the acting process step again."""
        super().on_resumed()
        self.paused.clear()
        with self.failure.recorded():
            self.process.send("resume")

    def wait_paused(self) -> bool:
        """Wait until a pause stored every step; False if the run failed meanwhile."""
        while not self.paused.wait(_POLL):
            if self.failure.error is not None:
                return False
        return self.failure.error is None

    def teardown(self) -> None:
        """Stop the acting process, storing its last steps and the world's final state."""
        super().teardown()
        try:
            if self.process.process.is_alive():
                with contextlib.suppress(ActingProcessDied):
                    self.process.send("stop")
                if self.failure.error is None:
                    self._drain_until("stopped")
        except Exception as error:  # noqa: BLE001 - recorded; the run ends with it
            self.failure.record(error)
        finally:
            self.process.join()

    def take_stats(self) -> TickStats:
        """Return the beat's statistics since the last call (as the ticked interaction)."""
        with self._stats_lock:
            stats, self._stats = self._stats, TickStats()
        return stats
