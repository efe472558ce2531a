"""The acting process of a real-time run: the world's beat, encoding and the policy, alone.

In one interpreter the acting thread shares the CPU and the interpreter with
the training thread, so every heavy training step can delay an observation or
an action (``python -m bench.beat``: jitter p99 up to 15.7 ms at 10 Hz on the
quickstart, most steps overrunning on the reference path). Here the acting
side (:mod:`pamiqx.runtime.acting_side`) runs in a process of its own, forked
when the run starts (spawned with CUDA: :mod:`pamiqx.runtime.acting_spawn`),
with a CPU of its own where there are at least two:

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
import traceback
from multiprocessing.connection import Connection
from typing import Any

import attrs
import torch
from pamiq_core import time as core_time

from pamiqx.api.errors import PamiqxError
from pamiqx.faults import PluginFault, summarise
from pamiqx.runtime.acting_side import ActingSide, SideBuilder

# Seconds the acting process waits for a command while paused or finished, between
# checks that the training process is still there.
_IDLE_POLL = 0.2


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


def acting_main(source: ActingSide | SideBuilder, channel: Connection, parent: int) -> None:
    """The acting process: step on the beat and send records until told to stop.

    Args:
        source: What to run (inherited through a fork), or what builds it (spawned).
        channel: Records and replies go out, commands come in.
        parent: The training process's pid (its disappearance ends this process).
    """
    # The terminal's Ctrl-C reaches the whole process group: the training process
    # answers it (and stops this one), so a signal here must not cut a step short.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    torch.set_num_threads(1)
    code = 0
    side: ActingSide | None = None
    try:
        side = source if isinstance(source, ActingSide) else source.build()
        if side.cpu is not None:
            os.sched_setaffinity(0, {side.cpu})
        core_time.set_time_scale(side.time_scale)
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
        if side is not None and side.owns_world:
            # Already failing or orphaned (a clean stop tore it down, named): release
            # the devices, nothing is left to report to.
            with contextlib.suppress(Exception):
                side.worlds.teardown()
        # Never run the training process's exit handlers or flush its buffers twice.
        os._exit(code)


def _serve(side: ActingSide, channel: Connection, parent: int) -> None:
    interaction, agent, weights = side.interaction, side.agent, side.weights
    interaction.setup()
    seen = side.seen_version
    weights.mark_taken(seen, agent.weights_step)
    while True:
        if os.getppid() != parent:
            return
        if channel.poll():
            command = channel.recv()
            if command == "stop":
                weights.set_stepping(False)
                _send_stopped(side, channel)
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
            _send_stopped(side, channel)
            return True
        if command == "resume":
            core_time.resume()
            side.interaction.on_resumed()
            return False


def _evaluation(side: ActingSide) -> dict[str, float]:
    return side.worlds.evaluation_metrics()


def _send_stopped(side: ActingSide, channel: Connection) -> None:
    """Send the world's final state; a world built here is torn down first (errors named)."""
    state, evaluation = side.worlds.state_dict(), _evaluation(side)
    if side.owns_world:
        side.worlds.teardown()
    send(channel, ("stopped", state, evaluation))


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


def split_cpus() -> tuple[int | None, set[int] | None]:
    """Return the CPU for the acting process and the rest for training (None: one CPU)."""
    cpus = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
    if len(cpus) < 2:
        return None, None
    return cpus[-1], set(cpus[:-1])
