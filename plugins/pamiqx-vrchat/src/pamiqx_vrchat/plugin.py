"""Registers the ``vrchat`` environment; import-light (pamiq-vrchat and OpenCV load in build)."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, ClassVar, Literal

import attrs

from pamiqx.api import BuildContext, EnvironmentPlugin, hookimpl

if TYPE_CHECKING:
    from pamiqx_vrchat.audio import AudioSource
    from pamiqx_vrchat.camera import FrameSensor
    from pamiqx_vrchat.environment import Actuator, VRChatEnvironment


def _camera(_: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if isinstance(value, int) and value < 0:
        raise ValueError(f"{attribute.name} index must be >= 0, got {value}")
    if isinstance(value, str) and not value.strip():
        raise ValueError(f"{attribute.name} must be a camera name or index, got an empty name")


@attrs.frozen
class VRChatOptions:
    """Options of ``vrchat``.

    Attributes:
        camera: The camera's name as the system reports it, or its OpenCV index. The
            default is OBS's virtual camera, found the way pamiq-vrchat finds it.
        size: Side of the square RGB frames given to the agent (centre-cropped, then
            resized with ``cv2.INTER_AREA``); 64 as in ``sim-maze``.
        control_hz: Agent steps per second (``control_interval = 1 / control_hz``).
        osc_host: Where VRChat listens for OSC.
        osc_port: VRChat's OSC input port (UDP).
        smooth: Smooth the inputs with pamiq-vrchat's ``SmoothOscActuator`` (first-order
            lag stepped every control interval); false sends them as they are.
        smooth_time_constant_s: Time constant of that smoothing (the reference's 0.2 s).
        action_mode: ``discrete`` (7 actions as in ``sim-maze``) or ``multi_discrete``
            (3, 3, 3, 2, 2) = Vertical, Horizontal, LookHorizontal, Jump, Run.
        look_scale: LookHorizontal input of a turn (the reference's 0.7).
        audio: Record the sound VRChat plays (pamiq-vrchat ``AudioSensor``, needs
            soundcard and PulseAudio). It is tracked as ``vrchat/audio_rms`` only: the
            agent does not get it.
        audio_frame_size: Samples per audio chunk.
        audio_sample_rate: Audio sample rate in Hz.
        mouse: Turn with a virtual mouse (pamiq-vrchat ``MouseActuator``, needs inputtino
            and ``/dev/uinput`` on Linux) instead of OSC LookHorizontal.
        mouse_speed: Mouse speed in pixels per second for a full turn input (scaled by
            ``look_scale``).
        frame_timeout_s: A frame later than this counts as the camera failing.
        max_backoff_s: Longest wait between camera retries during an outage (waits start
            at one control interval and double).
    """

    camera: str | int = attrs.field(default="OBS Virtual Camera", validator=_camera)
    size: int = attrs.field(
        default=64, validator=[attrs.validators.ge(16), attrs.validators.le(512)]
    )
    control_hz: float = attrs.field(
        default=10.0, validator=[attrs.validators.gt(0.0), attrs.validators.le(120.0)]
    )
    osc_host: str = "127.0.0.1"
    osc_port: int = 9000
    smooth: bool = True
    smooth_time_constant_s: float = attrs.field(default=0.2, validator=attrs.validators.gt(0.0))
    action_mode: Literal["discrete", "multi_discrete"] = "discrete"
    look_scale: float = attrs.field(
        default=0.7, validator=[attrs.validators.gt(0.0), attrs.validators.le(1.0)]
    )
    audio: bool = False
    audio_frame_size: int = attrs.field(default=1600, validator=attrs.validators.gt(0))
    audio_sample_rate: int = attrs.field(default=16000, validator=attrs.validators.gt(0))
    mouse: bool = False
    mouse_speed: float = attrs.field(default=100.0, validator=attrs.validators.gt(0.0))
    frame_timeout_s: float = attrs.field(default=1.0, validator=attrs.validators.gt(0.0))
    max_backoff_s: float = attrs.field(default=5.0, validator=attrs.validators.gt(0.0))


class VRChatPlugin(EnvironmentPlugin):
    """VRChat in real time: frames from the OBS virtual camera, the avatar moved over OSC.

    ``realtime``: one VRChat world per machine (a sweep asks for ``realtime_world``).

    The class attributes ``sensor_factory``, ``actuator_factory``, ``audio_factory`` and
    ``mouse_factory`` replace the real devices when set (tests set them to fakes); each
    is a zero-argument callable returning a new device, and the checks of the device it
    replaces are skipped.
    """

    name = "vrchat"
    realtime = True
    Options = VRChatOptions
    sensor_factory: ClassVar[Callable[[], FrameSensor] | None] = None
    actuator_factory: ClassVar[Callable[[], Actuator] | None] = None
    audio_factory: ClassVar[Callable[[], AudioSource] | None] = None
    mouse_factory: ClassVar[Callable[[], Actuator] | None] = None

    def build(self, options: VRChatOptions, context: BuildContext) -> VRChatEnvironment:
        """Check dependencies and devices, then build the environment (devices open in setup).

        Args:
            options: The plugin's options.
            context: Unused: VRChat is one shared world, with no seed or device to pick.

        Returns:
            The environment, not yet set up.

        Raises:
            EnvironmentUnavailableError: pamiq-vrchat or a device's library is missing,
                inputtino is missing with ``mouse``, the camera is not found, or the OSC
                host or port is unusable.
        """
        from pamiqx_vrchat import devices

        devices.require_dependencies()
        cls = type(self)
        mouse = None
        if options.mouse:
            mouse = cls.mouse_factory or devices.mouse_actuator_factory(options)
        actuator = cls.actuator_factory or devices.osc_actuator_factory(options)
        sensor = cls.sensor_factory or devices.image_sensor_factory(options.camera)
        audio = None
        if options.audio:
            audio = cls.audio_factory or devices.audio_sensor_factory(options)

        from pamiqx_vrchat.environment import VRChatEnvironment

        return VRChatEnvironment(options, sensor, actuator, audio, mouse)


@hookimpl
def pamiqx_register_environments() -> list[type[EnvironmentPlugin]]:
    """Return the ``vrchat`` environment."""
    return [VRChatPlugin]
