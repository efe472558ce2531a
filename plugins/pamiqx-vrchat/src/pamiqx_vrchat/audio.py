"""The microphone of ``vrchat``: an audio level kept as a metric, never shown to the agent."""

from __future__ import annotations

import logging
import threading
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

from pamiqx_vrchat.devices import teardown_quietly

__all__ = ["AudioMonitor", "AudioSource"]

logger = logging.getLogger(__name__)


class AudioSource(Protocol):
    """A microphone: pamiq-vrchat's ``AudioSensor`` or anything shaped like it."""

    def setup(self) -> None:
        """Start capturing."""

    def read(self) -> npt.NDArray[Any]:
        """Return a float ``(frames, channels)`` chunk; raise if none is available."""

    def teardown(self) -> None:
        """Release the device."""


class AudioMonitor:
    """Reads audio in a background thread and keeps its RMS level as a metric.

    The audio is not given to the agent (observations are frames only); the level
    shows whether the world was audible, e.g. to relate curiosity to sound.

    Args:
        source: A sensor, not yet set up.
    """

    def __init__(self, source: AudioSource) -> None:
        self._source = source
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._rms_sum = 0.0
        self._rms_count = 0
        self._chunks = 0
        self._errors = 0
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Set the sensor up and start reading (setup errors propagate)."""
        self._source.setup()
        self._thread = threading.Thread(target=self._loop, name="vrchat-audio", daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                chunk = np.asarray(self._source.read(), dtype=np.float64)
            except Exception as error:  # noqa: BLE001 - audio is a metric; it must not end the run
                with self._lock:
                    self._errors += 1
                logger.debug("audio read failed: %s: %s", type(error).__name__, error)
                self._stop.wait(0.1)  # the sensor already waited; do not spin on a dead device
                continue
            rms = float(np.sqrt(np.mean(np.square(chunk)))) if chunk.size else 0.0
            with self._lock:
                self._rms_sum += rms
                self._rms_count += 1
                self._chunks += 1

    def stop(self) -> None:
        """Stop reading and tear the sensor down."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5.0)
            self._thread = None
        teardown_quietly(self._source)

    def metrics(self) -> dict[str, float]:
        """Return the mean RMS since the last call and cumulative chunk and error counts."""
        with self._lock:
            out = {
                "vrchat/audio_chunks": float(self._chunks),
                "vrchat/audio_errors": float(self._errors),
            }
            if self._rms_count:
                out["vrchat/audio_rms"] = self._rms_sum / self._rms_count
            self._rms_sum, self._rms_count = 0.0, 0
        return out
