"""The world of a real-time run as pamiq-core sees it, and where its threads' errors go."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
import numpy.typing as npt
from pamiq_core import Environment as CoreEnvironment
from pamiq_core.thread.threads.control import ControlThread
from pamiq_core.thread.threads.inference import InferenceThread
from pamiq_core.thread.threads.training import TrainingThread
from pamiq_core.utils.reflection import get_class_module_path

from pamiqx.api.environment import EnvStep
from pamiqx.api.plugin import ActionSpec
from pamiqx.runtime.worlds import Worlds


class RealtimeEnvironment(CoreEnvironment[EnvStep, npt.NDArray[np.int64]]):
    """A pamiqx environment seen by pamiq-core (its hooks run in the inference thread)."""

    def __init__(self, worlds: Worlds, failure: Failure) -> None:
        """Wrap the (single) world of a run, already set up."""
        super().__init__()
        [self.env] = worlds.envs
        self.worlds = worlds
        self.failure = failure

    def observe(self) -> EnvStep:
        """Return the current observation, checked against the world's spec."""
        with self.failure.recorded():
            return self.worlds.observe_one(self.env)

    def affect(self, action: npt.NDArray[np.int64]) -> None:
        """Apply the action."""
        with self.failure.recorded():
            self.worlds.affect_one(self.env, action)

    def on_paused(self) -> None:
        """Release inputs while paused (for VRChat: the avatar stops)."""
        super().on_paused()
        self.env.on_paused()

    def on_resumed(self) -> None:
        """Resume after a pause."""
        super().on_resumed()
        self.env.on_resumed()


class Failure:
    """The first exception raised in a pamiq-core thread, re-raised by the caller."""

    def __init__(self) -> None:
        """Start with no failure."""
        self.error: BaseException | None = None
        # Every error recorded (the first is re-raised; later ones are its consequences).
        self._recorded: list[BaseException] = []

    def record(self, error: BaseException) -> None:
        """Keep the first error."""
        self._recorded.append(error)
        if self.error is None:
            self.error = error

    @contextmanager
    def recorded(self) -> Iterator[None]:
        """Record an exception raised in the block (then let it end the thread)."""
        try:
            yield
        except BaseException as error:
            self.record(error)
            raise

    def _is_recorded(self, error: BaseException | None) -> bool:
        return any(error is recorded for recorded in self._recorded)

    @contextmanager
    def quiet_threads(self) -> Iterator[None]:
        """Keep the threads' recorded errors from printing tracebacks.

        A recorded error ends its pamiq-core thread by propagating: pamiq-core logs
        it with its traceback and Python's thread hook prints it again, both before
        the run reports it in one paragraph. Errors nobody recorded still print.
        """
        previous = threading.excepthook

        def hook(args: threading.ExceptHookArgs) -> None:
            if not self._is_recorded(args.exc_value):
                previous(args)

        def unrecorded(record: logging.LogRecord) -> bool:
            return record.exc_info is None or not self._is_recorded(record.exc_info[1])

        loggers = [
            logging.getLogger(get_class_module_path(thread))
            for thread in (InferenceThread, TrainingThread, ControlThread)
        ]
        threading.excepthook = hook
        for logger in loggers:
            logger.addFilter(unrecorded)
        try:
            yield
        finally:
            threading.excepthook = previous
            for logger in loggers:
                logger.removeFilter(unrecorded)


def noop_action(spec: ActionSpec) -> npt.NDArray[np.int64]:
    """The action sent once a run has taken its last step (every sub-action 0)."""
    return np.zeros(() if spec.kind == "discrete" else (len(spec.nvec),), dtype=np.int64)
