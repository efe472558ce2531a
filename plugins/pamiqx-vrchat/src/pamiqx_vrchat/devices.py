"""The real devices behind ``vrchat`` and the checks that run before a run starts.

Each ``*_factory`` function checks what it can up front (raising
:class:`~pamiqx.api.EnvironmentUnavailableError` with what to do) and returns a
zero-argument callable that opens the device; the environment calls it at setup and
again to re-open the camera or to get a fresh actuator after releasing every input.
:func:`teardown_quietly` closes a sensor whatever state it is in. Imported when
:meth:`pamiqx_vrchat.plugin.VRChatPlugin.build` runs, never at registration.
"""

from __future__ import annotations

import importlib
import logging
import socket
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING

from pamiqx.api import EnvironmentUnavailableError

if TYPE_CHECKING:
    from pamiqx_vrchat.audio import AudioSource
    from pamiqx_vrchat.camera import FrameSensor
    from pamiqx_vrchat.environment import Actuator
    from pamiqx_vrchat.plugin import VRChatOptions

__all__ = [
    "OBS_CAMERA",
    "audio_sensor_factory",
    "find_camera",
    "image_sensor_factory",
    "list_cameras",
    "mouse_actuator_factory",
    "osc_actuator_factory",
    "require_dependencies",
    "teardown_quietly",
]

logger = logging.getLogger(__name__)

OBS_CAMERA = "OBS Virtual Camera"
"""The name OBS gives its virtual camera, which pamiq-vrchat looks for by default."""

INSTALL = (
    "pip install 'pamiq-io[opencv,osc]>=0.6.1' 'cv2-enumerate-cameras>=1.1.18.3' && "
    "pip install --no-deps 'pamiq-vrchat==0.1.0'"
)
INPUTTINO = (
    "pip install 'git+https://github.com/games-on-whales/inputtino.git"
    "#subdirectory=bindings/python&branch=stable'"
)


def require_dependencies() -> None:
    """Check that pamiq-vrchat, pamiq-io (OpenCV, OSC) and cv2-enumerate-cameras import.

    Raises:
        EnvironmentUnavailableError: Naming the missing module and the install command.
    """
    try:
        importlib.import_module("cv2")
        importlib.import_module("cv2_enumerate_cameras")
        # pamiq_io.osc hides a missing python-osc: it then just lacks OscOutput.
        if not hasattr(importlib.import_module("pamiq_io.osc"), "OscOutput"):
            raise ImportError("pamiq_io.osc has no OscOutput: python-osc is not installed")
        importlib.import_module("pamiq_vrchat")
    except ImportError as error:
        raise EnvironmentUnavailableError(
            f"The 'vrchat' environment needs pamiq-vrchat with OpenCV and OSC support, but an "
            f"import failed ({type(error).__name__}: {error}). Install them into the Python "
            f"environment that runs pamiqx: {INSTALL} (--no-deps because pamiq-vrchat's "
            "inputtino-python dependency is on no package index; inputtino is only needed for "
            "mouse = true). If the error mentions libGL, install your system's OpenGL runtime "
            "(e.g. apt install libgl1)."
        ) from error


def teardown_quietly(device: FrameSensor | AudioSource) -> None:
    """Tear a sensor down, logging what goes wrong instead of raising it."""
    try:
        device.teardown()
    except Exception as error:  # noqa: BLE001 - a broken device must not end the run
        logger.debug("device teardown failed: %s: %s", type(error).__name__, error)


def list_cameras() -> list[str]:
    """Return the cameras OpenCV can enumerate, as ``"index: name (path)"`` strings."""
    from cv2_enumerate_cameras import enumerate_cameras, supported_backends

    seen: list[str] = []
    for backend in supported_backends:
        try:
            cameras = enumerate_cameras(backend)
        except (OSError, NotImplementedError, RuntimeError):
            continue
        for camera in cameras:
            text = f"{camera.index}: {camera.name.strip()}" + (
                f" ({camera.path})" if camera.path else ""
            )
            if text not in seen:
                seen.append(text)
    return seen


def find_camera(camera: str | int) -> int:
    """Return the OpenCV index of a camera given by index or by name.

    The default name, ``"OBS Virtual Camera"``, is looked up by pamiq-vrchat itself;
    other names are looked up the same way (every backend, exact name).

    Args:
        camera: An index, or the camera's name as the system reports it.

    Returns:
        The index to open.

    Raises:
        EnvironmentUnavailableError: No camera has that name (lists those seen).
    """
    if isinstance(camera, int):
        return camera
    import cv2
    from cv2_enumerate_cameras import enumerate_cameras, supported_backends

    wanted = camera.strip()
    if wanted == OBS_CAMERA:
        from pamiq_vrchat.sensors.image import get_obs_virtual_camera_index

        try:
            return int(get_obs_virtual_camera_index())
        except (RuntimeError, OSError, NotImplementedError):
            pass
    else:
        for backend in (*supported_backends, cv2.CAP_ANY):
            try:
                cameras = enumerate_cameras(backend)
            except (OSError, NotImplementedError, RuntimeError):
                continue
            for info in cameras:
                if info.name.strip() == wanted:
                    return int(info.index)
    seen = "; ".join(list_cameras()) or "none"
    raise EnvironmentUnavailableError(
        f"The 'vrchat' environment found no camera named {camera!r} (cameras seen: {seen}). "
        "Start OBS Studio, capture the VRChat window and click 'Start Virtual Camera' (on "
        "Linux OBS needs v4l2loopback: sudo apt install v4l2loopback-dkms, then sudo modprobe "
        "v4l2loopback if OBS does not load it), then run again; or set environment.camera to "
        "the name or index of another camera."
    )


def image_sensor_factory(camera: str | int) -> Callable[[], FrameSensor]:
    """Check that the camera exists and return a factory of pamiq-vrchat ``ImageSensor``s.

    The factory looks the camera up again each time, since its index can change when
    OBS restarts its virtual camera.

    Args:
        camera: Name or index (see :func:`find_camera`).

    Returns:
        A callable opening the camera.

    Raises:
        EnvironmentUnavailableError: The camera is not found.
    """
    find_camera(camera)

    def open_camera() -> FrameSensor:
        from pamiq_vrchat.sensors import ImageSensor

        return ImageSensor(camera_index=find_camera(camera))

    return open_camera


def osc_actuator_factory(options: VRChatOptions) -> Callable[[], Actuator]:
    """Check the OSC target and return a factory of pamiq-vrchat OSC actuators.

    With ``smooth`` the actuator is a ``SmoothOscActuator`` stepping every control
    interval with time constant ``smooth_time_constant_s`` (the reference's 0.1 s and
    0.2 s by default); otherwise an ``OscActuator``.

    Args:
        options: The plugin's options.

    Returns:
        A callable making a new actuator (nothing is sent before its ``setup()``).

    Raises:
        EnvironmentUnavailableError: The port is out of range, the host does not
            resolve, or the UDP socket cannot be created.
    """
    host, port = options.osc_host, options.osc_port
    advice = (
        "VRChat listens for OSC on UDP port 9000 of the machine it runs on (osc_host "
        "127.0.0.1 when pamiqx runs there too); enable OSC in VRChat's settings."
    )
    if not 1 <= port <= 65535:
        raise EnvironmentUnavailableError(
            f"The 'vrchat' environment cannot use OSC port {port}: it must be 1-65535. "
            f"Set environment.osc_port. {advice}"
        )
    try:
        family, kind, *_ = socket.getaddrinfo(host, port, type=socket.SOCK_DGRAM)[0]
    except (OSError, UnicodeError) as error:
        raise EnvironmentUnavailableError(
            f"The 'vrchat' environment cannot resolve OSC host {host!r} ({error}). Set "
            f"environment.osc_host to an IP address or a resolvable name. {advice}"
        ) from error
    try:
        socket.socket(family, kind).close()  # what the actuator's client does, errors kept
    except OSError as error:
        raise EnvironmentUnavailableError(
            f"The 'vrchat' environment cannot create an OSC socket for {host}:{port} "
            f"({error}). {advice}"
        ) from error

    def make_actuator() -> Actuator:
        from pamiq_vrchat.actuators import OscActuator, SmoothOscActuator

        if options.smooth:
            return SmoothOscActuator(
                host,
                port,
                delta_time=1.0 / options.control_hz,
                time_constant=options.smooth_time_constant_s,
            )
        return OscActuator(host, port)

    try:
        make_actuator()  # creates the UDP socket and sends nothing
    except (OSError, ValueError, OverflowError, AttributeError) as error:
        # AttributeError: python-osc's client when it could create no socket after all.
        raise EnvironmentUnavailableError(
            f"The 'vrchat' environment cannot create an OSC socket for {host}:{port} "
            f"({type(error).__name__}: {error}). {advice}"
        ) from error
    return make_actuator


def audio_sensor_factory(options: VRChatOptions) -> Callable[[], AudioSource]:
    """Check the audio backend and return a factory of pamiq-vrchat ``AudioSensor``s.

    Args:
        options: The plugin's options (``audio_frame_size``, ``audio_sample_rate``).

    Returns:
        A callable opening the sound device VRChat plays to.

    Raises:
        EnvironmentUnavailableError: soundcard (or its PulseAudio library) is missing.
    """
    try:
        importlib.import_module("soundcard")
        if not hasattr(importlib.import_module("pamiq_io.audio"), "SoundcardAudioInput"):
            raise ImportError("pamiq_io.audio has no SoundcardAudioInput")
    except Exception as error:
        raise EnvironmentUnavailableError(
            f"The 'vrchat' environment cannot record audio ({type(error).__name__}: {error}). "
            "audio = true needs soundcard and a PulseAudio server (PipeWire's pulse works): "
            "pip install 'pamiq-io[soundcard]>=0.6.1' and install libpulse; or set "
            "environment.audio = false."
        ) from error

    def open_audio() -> AudioSource:
        from pamiq_vrchat.sensors import AudioSensor

        return AudioSensor(options.audio_frame_size, sample_rate=options.audio_sample_rate)

    return open_audio


def mouse_actuator_factory(options: VRChatOptions) -> Callable[[], Actuator]:
    """Check for inputtino (Linux) and return a factory of pamiq-vrchat mouse actuators.

    Args:
        options: The plugin's options (``smooth`` picks ``SmoothMouseActuator``).

    Returns:
        A callable creating the virtual mouse (opening ``/dev/uinput`` on Linux).

    Raises:
        EnvironmentUnavailableError: inputtino is not installed.
    """
    if sys.platform == "linux":
        try:
            importlib.import_module("inputtino")
        except ImportError as error:
            raise EnvironmentUnavailableError(
                f"The 'vrchat' environment has mouse = true, which needs inputtino, but it "
                f"cannot be imported ({error}). Install it from its git repository: "
                f"{INPUTTINO} (it builds with git, cmake, a C++ compiler, pkg-config and "
                "libevdev-dev) and give your user write access to /dev/uinput; or set "
                "environment.mouse = false to turn with OSC LookHorizontal."
            ) from error

    def make_mouse() -> Actuator:
        from pamiq_vrchat.actuators import MouseActuator, SmoothMouseActuator

        if options.smooth:
            return SmoothMouseActuator(
                delta_time=1.0 / options.control_hz,
                time_constant=options.smooth_time_constant_s,
            )
        return MouseActuator()

    return make_mouse
