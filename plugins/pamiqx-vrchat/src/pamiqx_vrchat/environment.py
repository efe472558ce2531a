"""VRChat as a real-time pamiqx environment.

The host's real-time mode calls :meth:`VRChatEnvironment.observe` and
:meth:`VRChatEnvironment.affect` every ``control_interval`` seconds in pamiq-core's
inference thread. Devices come from factories (zero-argument callables), so tests can
pass fakes, a file-backed video or the real ``OscActuator``.

Camera outages never end the run. When frames stop coming (the sensor raises, returns
None or does not answer within ``frame_timeout_s``), every input is released, actions
are ignored, and each ``observe()`` waits one exponential-backoff interval (up to
``max_backoff_s``), re-opens the camera and tries again; meanwhile it returns the last
good frame, so that pamiq-core can still pause for checkpoints and shut down. The first
frame after an outage starts a new episode, since the world moved on unseen. Outages
are counted in :meth:`VRChatEnvironment.evaluation_metrics`.

The camera and the microphone are in :mod:`pamiqx_vrchat.camera` and
:mod:`pamiqx_vrchat.audio`.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np
import numpy.typing as npt
from pamiq_core import time as pamiq_time

from pamiqx.api import (
    ActionSpec,
    Environment,
    EnvironmentUnavailableError,
    EnvStep,
    ObservationSpec,
    locomotion_action_spec,
)
from pamiqx_vrchat.actions import decode, mouse_action, osc_action
from pamiqx_vrchat.audio import AudioMonitor
from pamiqx_vrchat.camera import Camera, Frame, square_rgb

if TYPE_CHECKING:
    from pamiqx_vrchat.audio import AudioSource
    from pamiqx_vrchat.camera import FrameSensor
    from pamiqx_vrchat.plugin import VRChatOptions

__all__ = ["Actuator", "VRChatEnvironment"]

logger = logging.getLogger(__name__)


class Actuator(Protocol):
    """An input device: pamiq-vrchat's ``OscActuator`` / ``MouseActuator`` or a fake."""

    def setup(self) -> None:
        """Prepare the device (pamiq-vrchat's OSC actuator resets every input here)."""

    def operate(self, action: Any) -> None:
        """Apply an action dict."""

    def on_paused(self) -> None:
        """Release every input."""

    def teardown(self) -> None:
        """Release every input and the device."""


FIRST_FRAME_WAIT_S = 5.0
"""How long setup waits for the camera's first frame (or ``frame_timeout_s`` if longer)."""

_COUNTERS = ("frames", "outages", "outage_seconds", "camera_reopens", "bad_frames", "send_errors")


class VRChatEnvironment(Environment):
    """VRChat in real time: RGB frames from a camera, the avatar moved through OSC.

    Args:
        options: The plugin's options.
        sensor_factory: Returns a new camera sensor (called again to re-open it).
        actuator_factory: Returns a new OSC actuator; one is made after every release,
            so smoothing restarts from rest and nothing stale is cached.
        audio_factory: Returns an audio sensor, or None for no audio.
        mouse_factory: Returns a mouse actuator that turns the avatar instead of
            OSC ``LookHorizontal``, or None.
    """

    realtime = True

    def __init__(
        self,
        options: VRChatOptions,
        sensor_factory: Callable[[], FrameSensor],
        actuator_factory: Callable[[], Actuator],
        audio_factory: Callable[[], AudioSource] | None = None,
        mouse_factory: Callable[[], Actuator] | None = None,
    ) -> None:
        self.options = options
        self._interval = 1.0 / options.control_hz
        self.control_interval = self._interval
        self._size = options.size
        self._actuator_factory = actuator_factory
        self._audio_factory = audio_factory
        self._mouse_factory = mouse_factory
        self._camera = Camera(sensor_factory, options.frame_timeout_s)
        self._actuator: Actuator | None = None
        self._mouse: Actuator | None = None
        self._audio: AudioMonitor | None = None
        self._observation_spec = ObservationSpec(
            shape=(options.size, options.size, 3), dtype="uint8", kind="image"
        )
        # The layout sim-maze uses too, so that maze-trained agents run here unchanged.
        self._action_spec = locomotion_action_spec(options.action_mode)
        self._last_frame: Frame = np.zeros((options.size, options.size, 3), dtype=np.uint8)
        self._episode_start = True
        self._outage_since: float | None = None
        self._backoff = self._interval
        # Counters are written in the inference thread and read by the trainer's thread.
        self._lock = threading.Lock()
        self._stats: dict[str, float] = dict.fromkeys(_COUNTERS, 0.0)

    @property
    def observation_spec(self) -> ObservationSpec:
        """Return the ``(size, size, 3)`` uint8 RGB frame spec."""
        return self._observation_spec

    @property
    def action_spec(self) -> ActionSpec:
        """Return the locomotion action space (the same layouts as ``sim-maze``)."""
        return self._action_spec

    @property
    def in_outage(self) -> bool:
        """Return whether frames are currently missing (acting is paused)."""
        return self._outage_since is not None

    def setup(self) -> None:
        """Open the camera (and check it sends a frame), the OSC actuator, mouse and audio.

        Raises:
            EnvironmentUnavailableError: If a device cannot be opened; what was opened
                is closed again.
        """
        try:
            self._setup_devices()
        except BaseException:
            self.teardown()
            raise

    def _setup_devices(self) -> None:
        try:
            self._camera.open()
        except EnvironmentUnavailableError:
            raise
        except Exception as error:
            raise EnvironmentUnavailableError(
                f"The 'vrchat' environment cannot open its camera ({type(error).__name__}: "
                f"{error}). Start OBS Studio, capture the VRChat window and click 'Start "
                "Virtual Camera'; check that no other program holds the camera, or set "
                "environment.camera to another camera name or index."
            ) from error
        # A capture device can take a moment to deliver its first frame: wait a while.
        deadline = pamiq_time.perf_counter() + max(FIRST_FRAME_WAIT_S, self.options.frame_timeout_s)
        while (raw := self._camera.read()) is None:
            if pamiq_time.perf_counter() >= deadline:
                raise EnvironmentUnavailableError(
                    f"The 'vrchat' environment opened its camera but got no frame "
                    f"({self._camera.problem}). Start the virtual camera in OBS (and make sure "
                    "OBS shows the VRChat window), or raise environment.frame_timeout_s if the "
                    "camera is slow to start."
                )
            pamiq_time.sleep(0.05)
        try:
            self._last_frame = square_rgb(raw, self._size)
        except ValueError as error:
            raise EnvironmentUnavailableError(
                f"The 'vrchat' environment's camera sends unusable frames ({error}). Use a "
                "colour camera such as the OBS virtual camera."
            ) from error
        try:
            self._actuator = self._open_actuator()
        except (OSError, ValueError, OverflowError, AttributeError) as error:
            # AttributeError: python-osc's client when no UDP socket could be created.
            raise EnvironmentUnavailableError(
                f"The 'vrchat' environment cannot send OSC to {self.options.osc_host}:"
                f"{self.options.osc_port} ({type(error).__name__}: {error}). Check osc_host "
                "and osc_port (VRChat listens on UDP 9000 on the machine it runs on)."
            ) from error
        if self._mouse_factory is not None:
            try:
                mouse = self._mouse_factory()
                mouse.setup()
            except Exception as error:
                raise EnvironmentUnavailableError(
                    f"The 'vrchat' environment cannot create its virtual mouse "
                    f"({type(error).__name__}: {error}). inputtino needs write access to "
                    "/dev/uinput (add a udev rule or your user to the 'input' group and log "
                    "in again), or set environment.mouse = false."
                ) from error
            self._mouse = mouse
        if self._audio_factory is not None:
            try:
                monitor = AudioMonitor(self._audio_factory())
                monitor.start()
            except Exception as error:
                raise EnvironmentUnavailableError(
                    f"The 'vrchat' environment cannot record audio ({type(error).__name__}: "
                    f"{error}). Check that PulseAudio (or PipeWire's pulse server) runs and "
                    "VRChat plays sound, or set environment.audio = false."
                ) from error
            self._audio = monitor
        self._episode_start = True

    def _open_actuator(self) -> Actuator:
        actuator = self._actuator_factory()
        actuator.setup()  # pamiq-vrchat resets every input and closes VRChat's menu here
        return actuator

    def observe(self) -> EnvStep:
        """Return the current frame; during an outage, wait, re-open the camera and retry.

        Returns:
            The frame (reward 0: VRChat has no extrinsic reward). During an outage the
            last good frame is returned after one backoff wait; the first frame after an
            outage has ``episode_start`` set.
        """
        frame = None if self.in_outage else self._frame(self._camera.read())
        if frame is None:
            self._begin_outage(self._camera.problem)
            # One wait and one retry per step: observe() returns within about max_backoff_s,
            # so pamiq-core can still pause for checkpoints and shut down in a long outage.
            pamiq_time.sleep(self._backoff)
            self._backoff = min(2.0 * self._backoff, self.options.max_backoff_s)
            if self._camera.reopen():
                self._count("camera_reopens")
            frame = self._frame(self._camera.read())
            if frame is None:
                return EnvStep(self._last_frame, 0.0, False)
            self._end_outage()
        self._last_frame = frame
        self._count("frames")
        start, self._episode_start = self._episode_start, False
        return EnvStep(frame, 0.0, start)

    def _frame(self, raw: npt.NDArray[Any] | None) -> Frame | None:
        if raw is None:
            return None
        try:
            return square_rgb(raw, self._size)
        except ValueError as error:
            self._camera.problem = f"unusable frame ({error})"
            self._count("bad_frames")
            return None

    def _begin_outage(self, problem: str) -> None:
        if self._outage_since is not None:
            return
        with self._lock:
            self._outage_since = pamiq_time.perf_counter()
            self._stats["outages"] += 1
        logger.warning(
            "VRChat camera outage (%s): every input released, acting paused until frames return",
            problem,
        )
        self._release()
        self._backoff = self._interval

    def _end_outage(self) -> None:
        seconds = self._close_outage()
        logger.warning("VRChat frames are back after %.1f s: acting resumes", seconds)
        self._backoff = self._interval
        self._episode_start = True  # the world moved on unseen: continuity is broken

    def _close_outage(self) -> float:
        with self._lock:
            if self._outage_since is None:
                return 0.0
            seconds = pamiq_time.perf_counter() - self._outage_since
            self._stats["outage_seconds"] += seconds
            self._outage_since = None
        return seconds

    def affect(self, action: npt.NDArray[np.int64]) -> None:
        """Send the action's inputs (ignored during an outage, when inputs stay released).

        Args:
            action: Shape ``()`` in discrete mode, ``(5,)`` in multi-discrete mode.

        Raises:
            ValueError: If the action does not fit the action space.
        """
        command = decode(action, self.options.action_mode, self.options.look_scale)
        if self.in_outage:
            return
        try:
            if self._actuator is None:
                self._actuator = self._open_actuator()
            self._actuator.operate(osc_action(command, look_via_osc=self._mouse_factory is None))
            if self._mouse is not None:
                self._mouse.operate(mouse_action(command, self.options.mouse_speed))
        except OSError as error:
            # A network hiccup costs one step, not the run; the actuator is made anew.
            logger.warning("sending VRChat inputs failed (%s): inputs released", error)
            self._count("send_errors")
            self._release()

    def _release(self) -> None:
        """Release every input now; the next action opens a fresh OSC actuator."""
        actuator, self._actuator = self._actuator, None
        try:
            if actuator is not None:
                # pamiq-vrchat's OSC teardown sends 0 to every axis and button at once,
                # bypassing smoothing; a fresh actuator later starts from rest.
                actuator.teardown()
            if self._mouse is not None:
                self._mouse.on_paused()  # stops the movement and releases the buttons
        except OSError as error:
            logger.warning("releasing VRChat inputs failed: %s", error)

    def on_paused(self) -> None:
        """Release every input while the run is paused (the avatar stops)."""
        self._release()

    def on_resumed(self) -> None:
        """Nothing to do: the next action re-opens the OSC actuator and sends its inputs."""

    def teardown(self) -> None:
        """Release every input and close the camera, mouse and audio."""
        self._release()
        if self._mouse is not None:
            mouse, self._mouse = self._mouse, None
            try:
                mouse.teardown()
            except OSError as error:
                logger.warning("closing the virtual mouse failed: %s", error)
        if self._audio is not None:
            self._audio.stop()
        self._camera.close()
        self._close_outage()

    def _count(self, key: str) -> None:
        with self._lock:
            self._stats[key] += 1

    def evaluation_metrics(self) -> dict[str, float]:
        """Return camera and input health, which the agent never sees.

        Returns:
            ``vrchat/frames`` (frames delivered), ``vrchat/outages`` and
            ``vrchat/outage_seconds`` (the ongoing outage included), ``vrchat/in_outage``,
            ``vrchat/camera_reopens``, ``vrchat/bad_frames``, ``vrchat/send_errors``, and
            with audio ``vrchat/audio_rms`` (mean since the last call),
            ``vrchat/audio_chunks`` and ``vrchat/audio_errors``. Counts are cumulative
            over the run, resumes included.
        """
        with self._lock:
            out = {f"vrchat/{key}": float(value) for key, value in self._stats.items()}
            if self._outage_since is not None:
                out["vrchat/outage_seconds"] += pamiq_time.perf_counter() - self._outage_since
            out["vrchat/in_outage"] = float(self._outage_since is not None)
        if self._audio is not None:
            out.update(self._audio.metrics())
        return out

    def state_dict(self) -> dict[str, Any]:
        """Return the health counters (an ongoing outage included), to continue on resume."""
        with self._lock:
            state = dict(self._stats)
            if self._outage_since is not None:
                state["outage_seconds"] += pamiq_time.perf_counter() - self._outage_since
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore the counters of :meth:`state_dict` (the world itself is not restorable)."""
        with self._lock:
            for key in _COUNTERS:
                if key in state:
                    self._stats[key] = float(state[key])
