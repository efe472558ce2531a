"""The camera of ``vrchat``: frames read with a timeout from a sensor that can be re-opened.

A hung camera must not hang a step: each read runs in its own daemon thread and
:class:`Camera` waits for it at most ``frame_timeout_s``. :func:`square_rgb` turns
whatever the camera sends into the square RGB frame the agent sees.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any, Protocol

import cv2
import numpy as np
import numpy.typing as npt
from pamiq_core import time as pamiq_time

from pamiqx_vrchat.devices import teardown_quietly

__all__ = ["Camera", "Frame", "FrameSensor", "square_rgb"]

Frame = npt.NDArray[np.uint8]


class FrameSensor(Protocol):
    """A camera: pamiq-vrchat's ``ImageSensor`` or anything shaped like it."""

    def setup(self) -> None:
        """Start capturing."""

    def read(self) -> npt.NDArray[Any] | None:
        """Return an RGB (or grayscale / RGBA) uint8 frame ``(H, W, C)``; None or raise if none."""

    def teardown(self) -> None:
        """Release the device."""


def square_rgb(frame: npt.NDArray[Any], size: int) -> Frame:
    """Centre-crop a frame to a square and resize it to ``(size, size, 3)`` RGB uint8.

    Args:
        frame: ``(H, W)``, ``(H, W, 1)``, ``(H, W, 3)`` RGB or ``(H, W, 4)`` RGBA, uint8.
        size: Side of the output in pixels.

    Returns:
        The resized frame (``cv2.INTER_AREA``).

    Raises:
        ValueError: If the frame has another shape or dtype, or is empty.
    """
    array = np.asarray(frame)
    if array.ndim == 2:
        array = array[:, :, None]
    if array.dtype != np.uint8 or array.ndim != 3 or array.shape[2] not in (1, 3, 4):
        raise ValueError(
            f"expected a uint8 frame (H, W, 1|3|4), got {array.dtype} {tuple(array.shape)}"
        )
    height, width = array.shape[:2]
    side = min(height, width)
    if side == 0:
        raise ValueError(f"empty frame {tuple(array.shape)}")
    top, left = (height - side) // 2, (width - side) // 2
    square = array[top : top + side, left : left + side]
    if square.shape[2] == 1:
        square = np.repeat(square, 3, axis=2)
    square = np.ascontiguousarray(square[:, :, :3])
    if side != size:
        square = cv2.resize(square, (size, size), interpolation=cv2.INTER_AREA)
    return np.ascontiguousarray(square, dtype=np.uint8)


class _PendingRead:
    """One ``sensor.read()`` in its own daemon thread, so that a hung camera cannot hang a step."""

    def __init__(self, sensor: FrameSensor) -> None:
        self.sensor = sensor
        self.done = threading.Event()
        self.frame: npt.NDArray[Any] | None = None
        self.error: BaseException | None = None
        self._lock = threading.Lock()
        self._close_when_done = False
        threading.Thread(target=self._run, name="vrchat-frame-read", daemon=True).start()

    def _run(self) -> None:
        try:
            self.frame = self.sensor.read()
        except Exception as error:  # noqa: BLE001 - any camera failure is an outage, not a crash
            self.error = error
        with self._lock:
            self.done.set()
            close = self._close_when_done
        if close:
            teardown_quietly(self.sensor)

    def close_sensor_when_done(self) -> None:
        """Tear the sensor down now, or as soon as the read in flight returns."""
        with self._lock:
            if not self.done.is_set():
                self._close_when_done = True
                return
        teardown_quietly(self.sensor)


class Camera:
    """Reads frames from a sensor made by a factory, with a timeout, and re-opens it.

    Args:
        factory: Returns a new, not yet set-up sensor.
        timeout_s: Seconds (on pamiq-core's clock) to wait for a frame.

    Attributes:
        problem: Why the last read or re-open failed.
    """

    MAX_HUNG_READS = 2
    """Re-opening is refused while this many abandoned reads still hang (bounds the leak)."""

    def __init__(self, factory: Callable[[], FrameSensor], timeout_s: float) -> None:
        self._factory = factory
        self._timeout_s = timeout_s
        self._sensor: FrameSensor | None = None
        self._pending: _PendingRead | None = None
        self._abandoned: list[_PendingRead] = []
        self.problem = ""

    @property
    def is_open(self) -> bool:
        """Return whether a sensor is open."""
        return self._sensor is not None

    def open(self) -> None:
        """Create and set up a sensor (errors propagate)."""
        sensor = self._factory()
        sensor.setup()
        self._sensor = sensor

    def close(self) -> None:
        """Tear the sensor down (a hung read closes it when it returns)."""
        sensor, pending = self._sensor, self._pending
        self._sensor = self._pending = None
        self.problem = "the camera is closed"
        if pending is not None:
            pending.close_sensor_when_done()
            self._abandoned.append(pending)
        elif sensor is not None:
            teardown_quietly(sensor)

    def reopen(self) -> bool:
        """Close the sensor and open a new one; return False (and set ``problem``) on failure."""
        self.close()
        self._abandoned = [read for read in self._abandoned if not read.done.is_set()]
        if len(self._abandoned) >= self.MAX_HUNG_READS:
            # Each hung read holds a thread and a device handle: wait for one to return.
            self.problem = f"{len(self._abandoned)} camera reads are still hanging"
            return False
        try:
            self.open()
        except Exception as error:  # noqa: BLE001 - retried after the next backoff
            self.problem = f"re-opening the camera failed ({type(error).__name__}: {error})"
            return False
        return True

    def read(self) -> npt.NDArray[Any] | None:
        """Return the next frame, or None (and set ``problem``) when there is none in time."""
        if self._sensor is None:
            return None  # ``problem`` says why (closed, or re-opening failed)
        if self._pending is None:
            self._pending = _PendingRead(self._sensor)
        # Event.wait takes wall seconds; pamiq-core's clock runs time_scale times faster.
        if not self._pending.done.wait(self._timeout_s / pamiq_time.get_time_scale()):
            self.problem = f"no frame within {self._timeout_s:g} s"
            return None  # the read stays in flight; the next call collects it
        done, self._pending = self._pending, None
        if done.error is not None:
            self.problem = f"the camera failed ({type(done.error).__name__}: {done.error})"
            return None
        if done.frame is None:
            self.problem = "the camera returned no frame"
            return None
        return done.frame
