"""pamiqx-vrchat without VRChat: real OSC on localhost, a video file as camera, fakes in a run."""

# ruff: noqa: E402 - the VRChat imports follow the importorskip guards

from __future__ import annotations

import io
import math
import socket
import sys
import textwrap
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

# Skip (instead of failing to collect) where the VRChat stack is not installed, e.g. in a
# venv rebuilt from uv.lock; see the README for the install commands.
pytest.importorskip("pamiq_vrchat", reason="pamiq-vrchat is not installed")
pytest.importorskip("pamiq_io.osc", reason="pamiq-io[osc] is not installed")
cv2 = pytest.importorskip("cv2", reason="opencv-python is not installed")

from pamiq_core import time as pamiq_time
from pamiq_core.interaction.modular_env import Sensor
from pamiq_io.osc import OscInput
from pamiq_io.video import OpenCVVideoInput
from pamiq_vrchat.actuators import OscActuator, OscAxes, OscButtons
from pamiqx_vrchat import devices
from pamiqx_vrchat.actions import (
    DISCRETE_ACTIONS,
    decode,
    osc_action,
    release_action,
)
from pamiqx_vrchat.camera import square_rgb
from pamiqx_vrchat.environment import VRChatEnvironment
from pamiqx_vrchat.plugin import VRChatOptions, VRChatPlugin

from pamiqx.api import EnvironmentUnavailableError, hookimpl, locomotion_action_spec

V, H, L = "/input/Vertical", "/input/Horizontal", "/input/LookHorizontal"
JUMP, RUN = "/input/Jump", "/input/Run"
ALL_INPUTS = [str(a) for a in OscAxes] + [str(b) for b in OscButtons]
RELEASED = {address: 0 for address in ALL_INPUTS}  # 0.0 == 0: axes 0.0, buttons 0


@pytest.fixture(autouse=True)
def real_time_scale() -> Iterator[None]:
    pamiq_time.set_time_scale(1.0)
    yield
    pamiq_time.set_time_scale(1.0)


# --------------------------------------------------------------------------- fakes


class SolidSensor:
    """A camera showing one colour."""

    def __init__(self, colour: tuple[int, int, int] = (10, 200, 30)) -> None:
        self.colour = colour

    def setup(self) -> None:
        pass

    def read(self) -> np.ndarray:
        return np.full((48, 64, 3), self.colour, dtype=np.uint8)

    def teardown(self) -> None:
        pass


class RecordingActuator:
    """Records every call into a log shared by all actuators a factory made."""

    def __init__(self, log: list[tuple[str, Any]]) -> None:
        self.log = log

    def setup(self) -> None:
        self.log.append(("setup", None))

    def operate(self, action: Any) -> None:
        self.log.append(("operate", action))

    def on_paused(self) -> None:
        self.log.append(("on_paused", None))

    def teardown(self) -> None:
        self.log.append(("teardown", None))


# --------------------------------------------------------------------------- actions


def test_action_layouts_are_the_locomotion_layouts() -> None:
    """The layouts sim-maze uses too, so that a maze-trained agent runs here unchanged."""
    for mode in ("discrete", "multi_discrete"):
        vrchat = VRChatEnvironment(
            VRChatOptions(action_mode=mode), SolidSensor, lambda: RecordingActuator([])
        )
        assert vrchat.action_spec == locomotion_action_spec(mode)
    env = VRChatEnvironment(VRChatOptions(), SolidSensor, lambda: RecordingActuator([]))
    assert env.action_spec.kind == "discrete" and env.action_spec.nvec == (7,)
    assert env.observation_spec.shape == (64, 64, 3) and env.realtime
    assert env.control_interval == pytest.approx(0.1)
    multi = VRChatEnvironment(
        VRChatOptions(action_mode="multi_discrete", control_hz=5),
        SolidSensor,
        lambda: RecordingActuator([]),
    )
    assert multi.action_spec.nvec == (3, 3, 3, 2, 2)
    assert multi.action_spec.names == ("Vertical", "Horizontal", "LookHorizontal", "Jump", "Run")
    assert multi.control_interval == pytest.approx(0.2)


def test_decode_rejects_actions_outside_the_space() -> None:
    with pytest.raises(ValueError, match="discrete"):
        decode(np.array(7), "discrete", 0.7)
    with pytest.raises(ValueError, match="multi-discrete"):
        decode(np.array([0, 0, 3, 0, 0]), "multi_discrete", 0.7)
    with pytest.raises(ValueError, match="multi-discrete"):
        decode(np.array([0, 0, 0]), "multi_discrete", 0.7)
    command = decode(np.array([1, 2, 2, 1, 0]), "multi_discrete", 0.5)
    assert osc_action(command) == {
        "axes": {OscAxes.Vertical: 1.0, OscAxes.Horizontal: -1.0, OscAxes.LookHorizontal: -0.5},
        "buttons": {OscButtons.Jump: True, OscButtons.Run: False},
    }
    assert osc_action(command, look_via_osc=False)["axes"][OscAxes.LookHorizontal] == 0.0
    release = release_action()
    assert {str(k) for k in release["axes"]} | {str(k) for k in release["buttons"]} == set(
        ALL_INPUTS
    )


# --------------------------------------------------------------------------- real OSC


def _free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class OscListener:
    """A pamiq-io OscInput on localhost recording every VRChat input message."""

    def __init__(self) -> None:
        self.port = _free_udp_port()
        self.messages: list[tuple[str, Any]] = []
        self._lock = threading.Lock()
        self.input = OscInput("127.0.0.1", self.port)
        for address in ALL_INPUTS:
            self.input.add_handler(address, self._record)
        self.input.start(blocking=False)

    def _record(self, address: str, *args: Any) -> None:
        with self._lock:
            self.messages.append((address, args[0]))

    def take(self, count: int, timeout: float = 3.0) -> list[tuple[str, Any]]:
        """Wait for ``count`` messages, check no more arrive, and return them."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and len(self.messages) < count:
            time.sleep(0.005)
        time.sleep(0.05)
        with self._lock:
            taken, self.messages = self.messages, []
        assert len(taken) == count, f"{len(taken)} messages: {taken!r}"
        return taken

    def stop(self) -> None:
        self.input.stop()


@pytest.fixture
def osc() -> Iterator[OscListener]:
    listener = OscListener()
    yield listener
    listener.stop()


def _as_dict(messages: list[tuple[str, Any]]) -> dict[str, Any]:
    out = dict(messages)
    assert len(out) == len(messages), f"an address was sent twice: {messages}"
    return out


def _approx(expected: dict[str, float]) -> Any:
    return pytest.approx(expected, abs=1e-6)  # OSC floats are float32


def _bag(messages: list[tuple[str, Any]]) -> Counter[tuple[str, float]]:
    # The OSC server handles each datagram in its own thread: compare regardless of order.
    return Counter((address, round(float(value), 5)) for address, value in messages)


# pamiq-vrchat's setup: reset everything, Vertical 1 to close any menu, reset again.
SETUP_BURST = [*RELEASED.items(), (V, 1.0), *RELEASED.items()]


def test_real_osc_messages_for_every_action_and_release(osc: OscListener) -> None:
    port = osc.port
    env = VRChatEnvironment(
        VRChatOptions(smooth=False, size=16),
        SolidSensor,
        lambda: OscActuator("127.0.0.1", port),
    )
    env.setup()
    assert _bag(osc.take(len(SETUP_BURST))) == _bag(SETUP_BURST)
    expected_discrete = [
        {V: 0.0, H: 0.0, L: 0.0, JUMP: 0, RUN: 0},  # noop: the first action sets all five
        {V: 1.0},  # forward; only changed inputs are sent
        {V: -1.0},  # backward
        {V: 0.0, H: -1.0},  # strafe_left
        {H: 1.0},  # strafe_right
        {H: 0.0, L: -0.7},  # turn_left
        {L: 0.7},  # turn_right
    ]
    for action, expected in enumerate(expected_discrete):
        env.observe()
        env.affect(np.array(action))
        assert _as_dict(osc.take(len(expected))) == _approx(expected), DISCRETE_ACTIONS[action]

    env.on_paused()
    assert _as_dict(osc.take(len(ALL_INPUTS))) == RELEASED
    env.on_resumed()
    env.affect(np.array(1))  # a fresh actuator: its setup burst, then every input of forward
    forward = [(V, 1.0), (H, 0.0), (L, 0.0), (JUMP, 0), (RUN, 0)]
    assert _bag(osc.take(len(SETUP_BURST) + 5)) == _bag(SETUP_BURST + forward)
    env.teardown()
    assert _as_dict(osc.take(len(ALL_INPUTS))) == RELEASED


def test_real_osc_multi_discrete_messages(osc: OscListener) -> None:
    port = osc.port
    env = VRChatEnvironment(
        VRChatOptions(smooth=False, size=16, action_mode="multi_discrete", look_scale=0.5),
        SolidSensor,
        lambda: OscActuator("127.0.0.1", port, command_for_close_menu={}),
    )
    env.setup()
    assert _as_dict(osc.take(len(ALL_INPUTS))) == RELEASED  # no menu nudge configured
    steps = [
        ([1, 2, 1, 1, 1], {V: 1.0, H: -1.0, L: 0.5, JUMP: 1, RUN: 1}),
        ([2, 0, 2, 0, 1], {V: -1.0, H: 0.0, L: -0.5, JUMP: 0}),
        ([2, 1, 0, 1, 0], {H: 1.0, L: 0.0, JUMP: 1, RUN: 0}),
        ([2, 1, 0, 1, 0], {}),
    ]
    for action, expected in steps:
        env.observe()
        env.affect(np.array(action))
        assert _as_dict(osc.take(len(expected))) == _approx(expected), action
    env.teardown()
    assert _as_dict(osc.take(len(ALL_INPUTS))) == RELEASED


def test_smooth_actuator_uses_control_interval_and_time_constant(osc: OscListener) -> None:
    options = VRChatOptions(osc_port=osc.port, control_hz=10, smooth_time_constant_s=0.2)
    actuator = devices.osc_actuator_factory(options)()
    forward = osc_action(decode(np.array(1), "discrete", 0.7))
    actuator.operate(forward)
    first = _as_dict(osc.take(len(ALL_INPUTS)))  # nothing cached yet: every input is sent
    assert first[V] == pytest.approx(1 - math.exp(-0.1 / 0.2), abs=1e-6)
    actuator.operate(forward)
    assert osc.take(1) == [(V, pytest.approx(1 - math.exp(-0.2 / 0.2), abs=1e-6))]
    actuator.teardown()
    assert _as_dict(osc.take(len(ALL_INPUTS))) == RELEASED


# --------------------------------------------------------------------------- camera

# Distinct saturated colours (RGB), never white, which marks the side bands.
COLOURS = [(r, g, b) for r in (0, 128, 255) for g in (0, 128, 255) for b in (0, 128, 255)][:20]


def _write_video(path: Path) -> None:
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*"MJPG"), 10.0, (160, 120))
    assert writer.isOpened()
    for colour in COLOURS:
        frame = np.full((120, 160, 3), 255, dtype=np.uint8)  # white side bands
        frame[:, 20:140] = colour[::-1]  # the 120x120 centre, in BGR for OpenCV
        writer.write(frame)
    writer.release()


class VideoFileCamera:
    """A camera backed by a video file through pamiq-io's OpenCVVideoInput; can vanish."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.gone = threading.Event()
        self.opened = 0

    def open(self) -> VideoFileSensor:
        if self.gone.is_set():
            raise RuntimeError("Can not open camera.")
        self.opened += 1
        return VideoFileSensor(self)


class VideoFileSensor(Sensor[np.ndarray]):
    def __init__(self, camera: VideoFileCamera) -> None:
        super().__init__()
        self.camera = camera
        self.input = OpenCVVideoInput(
            cv2.VideoCapture(str(camera.path)), num_trials_on_read_failure=1
        )

    def read(self) -> np.ndarray:
        if self.camera.gone.is_set():
            raise RuntimeError("Failed to read input frame.")
        return self.input.read()  # RGB, as from pamiq-vrchat's ImageSensor

    def teardown(self) -> None:
        self.input.camera.release()


def _colour_of(frame: np.ndarray) -> tuple[float, ...]:
    return tuple(float(c) for c in frame.reshape(-1, 3).mean(axis=0))


def _assert_colour(frame: np.ndarray, colour: tuple[int, int, int]) -> None:
    assert frame.shape == (32, 32, 3) and frame.dtype == np.uint8
    assert np.allclose(_colour_of(frame), colour, atol=12), (_colour_of(frame), colour)


def test_video_file_frames_then_an_outage_then_recovery(tmp_path: Path) -> None:
    pamiq_time.set_time_scale(10.0)  # backoff waits are on pamiq-core's clock
    _write_video(tmp_path / "world.avi")
    camera = VideoFileCamera(tmp_path / "world.avi")
    log: list[tuple[str, Any]] = []
    env = VRChatEnvironment(
        VRChatOptions(size=32, smooth=False, max_backoff_s=0.4, frame_timeout_s=1.0),
        camera.open,
        lambda: RecordingActuator(log),
    )
    env.setup()  # reads frame 0 to check the camera works
    for i in range(1, 6):
        step = env.observe()
        _assert_colour(step.observation, COLOURS[i])
        assert step.episode_start == (i == 1) and step.reward == 0.0
        env.affect(np.array(1))
    assert [kind for kind, _ in log] == ["setup"] + ["operate"] * 5
    last = step.observation

    camera.gone.set()  # the camera vanishes mid-run
    log.clear()
    for _ in range(4):
        stalled = env.observe()
        assert env.in_outage
        assert stalled.observation is last and not stalled.episode_start
        env.affect(np.array(1))
    # Inputs were released once, then nothing was sent while frames were missing.
    assert [kind for kind, _ in log] == ["teardown"]
    metrics = env.evaluation_metrics()
    assert metrics["vrchat/outages"] == 1 and metrics["vrchat/in_outage"] == 1
    assert metrics["vrchat/outage_seconds"] > 0.2  # backoffs 0.1 + 0.2 + 0.4 + 0.4 s

    camera.gone.clear()  # it comes back; the re-opened file starts at frame 0
    back = env.observe()
    assert not env.in_outage and back.episode_start
    _assert_colour(back.observation, COLOURS[0])
    env.affect(np.array(2))
    assert [kind for kind, _ in log] == ["teardown", "setup", "operate"]
    assert env.observe().episode_start is False
    metrics = env.evaluation_metrics()
    assert metrics["vrchat/outages"] == 1 and metrics["vrchat/in_outage"] == 0
    assert 0.6 < metrics["vrchat/outage_seconds"] < 5.0
    assert metrics["vrchat/frames"] == 7 and metrics["vrchat/camera_reopens"] == 1
    assert camera.opened == 2
    env.on_paused()
    env.teardown()
    assert [kind for kind, _ in log][-1] == "teardown"
    assert env.state_dict()["outages"] == 1


class HangingSensor:
    """A camera whose read blocks until released (a stalled capture device)."""

    def __init__(self, release: threading.Event, closed: list[str]) -> None:
        self.release = release
        self.closed = closed

    def setup(self) -> None:
        pass

    def read(self) -> np.ndarray:
        self.release.wait()
        return np.full((20, 20, 3), 77, dtype=np.uint8)

    def teardown(self) -> None:
        self.closed.append("closed")


def test_a_hung_camera_times_out_without_blocking_the_step() -> None:
    pamiq_time.set_time_scale(10.0)
    released = threading.Event()
    released.set()
    closed: list[str] = []
    opened: list[HangingSensor] = []
    log: list[tuple[str, Any]] = []

    def open_sensor() -> HangingSensor:
        opened.append(HangingSensor(released, closed))
        return opened[-1]

    env = VRChatEnvironment(
        VRChatOptions(size=16, frame_timeout_s=1.0, max_backoff_s=0.5),
        open_sensor,
        lambda: RecordingActuator(log),
    )
    env.setup()
    env.observe()
    released.clear()  # every read from now on hangs
    started = time.monotonic()
    env.observe()
    # Timeout 1 s + backoff 0.1 s + the retry's 1 s, on a clock running 10x faster.
    assert time.monotonic() - started < 1.0
    assert env.in_outage and ("teardown", None) in log
    for _ in range(3):
        env.observe()
    # Two hung reads (two abandoned sensors): no more sensors are opened until one returns.
    assert len(opened) == 2 and not closed
    assert "still hanging" in env._camera.problem
    released.set()  # the stuck reads return; their sensors are closed then
    deadline = time.monotonic() + 2.0
    while len(closed) < 2 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert len(closed) == 2, "the sensors of the hung reads were not torn down"
    step = env.observe()
    assert not env.in_outage and step.episode_start
    assert step.observation.shape == (16, 16, 3) and int(step.observation[0, 0, 0]) == 77
    assert len(opened) == 3
    env.teardown()
    assert len(closed) == 3


def test_square_rgb_crops_the_centre_and_accepts_gray_and_rgba() -> None:
    wide = np.zeros((10, 30, 3), dtype=np.uint8)
    wide[:, 10:20] = (1, 2, 3)
    assert (square_rgb(wide, 10) == (1, 2, 3)).all()
    tall = np.zeros((40, 20, 4), dtype=np.uint8)
    tall[10:30] = (9, 8, 7, 255)
    out = square_rgb(tall, 16)
    assert out.shape == (16, 16, 3) and (out == (9, 8, 7)).all()
    gray = np.full((8, 8), 5, dtype=np.uint8)
    assert square_rgb(gray, 16).shape == (16, 16, 3)
    with pytest.raises(ValueError, match="uint8"):
        square_rgb(np.zeros((8, 8, 3), dtype=np.float32), 16)


# --------------------------------------------------------------------------- whole run


class FakeWorld:
    """Frames that change with every read, with one outage; an actuator log."""

    def __init__(self, outage: range) -> None:
        self.reads = 0
        self.outage = outage
        self.log: list[tuple[str, Any]] = []

    def open_sensor(self) -> FakeWorldSensor:
        return FakeWorldSensor(self)

    def make_actuator(self) -> RecordingActuator:
        return RecordingActuator(self.log)


class FakeWorldSensor:
    def __init__(self, world: FakeWorld) -> None:
        self.world = world

    def setup(self) -> None:
        pass

    def read(self) -> np.ndarray | None:
        self.world.reads += 1
        if self.world.reads in self.world.outage:
            return None
        return np.full((24, 32, 3), (self.world.reads * 7) % 255, dtype=np.uint8)

    def teardown(self) -> None:
        pass


EXPERIMENT = """
name = "vrchat-fake"
seed = 0

[run]
max_steps = 300
device = "cpu"
time_scale = 10.0
checkpoint_every = 128
log_every = 50
log_dir = "{log_dir}"

[environment]
plugin = "vrchat"
size = 16
action_mode = "multi_discrete"
max_backoff_s = 0.4

[models.encoder]
plugin = "conv-encoder"
feature_dim = 32
channels = [8, 16, 16]

[models.policy]
plugin = "actor-critic"
hidden = [32]

[curiosity]
plugin = "none"

[policy]
rollout_steps = 32
epochs = 1
minibatch_size = 32

[tracking]
enabled = false
"""


class MetricsRecorder:
    def __init__(self) -> None:
        self.metrics: list[dict[str, float]] = []

    @hookimpl
    def pamiqx_metrics_emitted(self, step: int, metrics: dict[str, float]) -> None:
        self.metrics.append(dict(metrics))


@pytest.mark.parametrize("acting", ["process", "thread"])
def test_whole_plugin_runs_in_real_time_with_fakes(
    acting: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from rich.console import Console

    from pamiqx.checkpoint import list_checkpoints, load_checkpoint, read_meta
    from pamiqx.experiment import load_experiment
    from pamiqx.plugins.manager import load_plugins
    from pamiqx.runtime.session import run_experiment

    world = FakeWorld(outage=range(120, 126))
    monkeypatch.setattr(VRChatPlugin, "sensor_factory", world.open_sensor)
    monkeypatch.setattr(VRChatPlugin, "actuator_factory", world.make_actuator)
    path = tmp_path / "exp.toml"
    path.write_text(textwrap.dedent(EXPERIMENT.format(log_dir=tmp_path / "logs")))
    manager = load_plugins(["pamiqx-vrchat"])
    recorder = MetricsRecorder()
    manager.register_module(recorder, "test-recorder", "0", "recorder")
    resolved = load_experiment(path, [f"run.acting={acting}"], manager)
    code = run_experiment(resolved, manager, console=Console(file=io.StringIO()))
    assert code == 0
    [run_dir] = (tmp_path / "logs" / "vrchat-fake").iterdir()
    checkpoints = list_checkpoints(run_dir)
    assert checkpoints and read_meta(checkpoints[-1])["step"] == 300
    state, _ = load_checkpoint(checkpoints[-1], "vrchat-fake")
    env_state = state["envs"][0]
    assert float(env_state["outages"]) == 1 and float(env_state["outage_seconds"]) > 0
    assert float(env_state["frames"]) >= 290
    tracked = [m for m in recorder.metrics if "vrchat/outages" in m]
    assert tracked and tracked[-1]["vrchat/frames"] > 0
    if acting == "process":
        return  # the fakes ran in the acting process: their log stayed there
    kinds = [kind for kind, _ in world.log]
    assert kinds.count("operate") >= 290 and kinds[-1] == "teardown"
    assert kinds.count("setup") >= 2  # after the outage (and any pause) a fresh actuator
    operated = [a for kind, a in world.log if kind == "operate"]
    assert all(
        set(a["axes"]) == {OscAxes.Vertical, OscAxes.Horizontal, OscAxes.LookHorizontal}
        for a in operated
    )


# --------------------------------------------------------------------------- errors


def test_missing_camera_lists_the_cameras_seen(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(devices, "list_cameras", lambda: ["0: Integrated Webcam (/dev/video0)"])
    with pytest.raises(EnvironmentUnavailableError) as error:
        VRChatPlugin().build(VRChatOptions(), _context())
    message = str(error.value)
    assert "OBS Virtual Camera" in message and "Integrated Webcam" in message
    assert "Start Virtual Camera" in message and "\n" not in message
    with pytest.raises(EnvironmentUnavailableError, match="no camera named 'Nope'"):
        devices.find_camera("Nope")


def test_camera_that_cannot_open_or_sends_nothing_fails_setup() -> None:
    pamiq_time.set_time_scale(10.0)  # setup waits 5 s for a first frame

    def broken() -> Any:
        raise RuntimeError("Can not open camera.")

    env = VRChatEnvironment(VRChatOptions(), broken, lambda: RecordingActuator([]))
    with pytest.raises(EnvironmentUnavailableError, match="cannot open its camera"):
        env.setup()

    class Silent(SolidSensor):
        def read(self) -> Any:
            return None

    env = VRChatEnvironment(VRChatOptions(), Silent, lambda: RecordingActuator([]))
    with pytest.raises(EnvironmentUnavailableError, match="got no frame"):
        env.setup()


@pytest.mark.parametrize(
    ("host", "port", "problem"),
    [
        ("127.0.0.1", 70000, "OSC port 70000"),
        ("127.0.0.1", 0, "OSC port 0"),
        ("no such host.invalid", 9000, "cannot resolve OSC host"),
    ],
)
def test_unusable_osc_target(host: str, port: int, problem: str) -> None:
    options = VRChatOptions(osc_host=host, osc_port=port)
    with pytest.raises(EnvironmentUnavailableError, match=problem):
        VRChatPlugin().build(options, _context())


def test_osc_socket_that_cannot_be_created(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_socket(*args: Any, **kwargs: Any) -> Any:
        raise OSError(24, "Too many open files")

    monkeypatch.setattr(socket, "socket", no_socket)
    with pytest.raises(EnvironmentUnavailableError, match="cannot create an OSC socket"):
        devices.osc_actuator_factory(VRChatOptions())


def test_mouse_without_inputtino(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "inputtino", None)  # import fails as if not installed
    monkeypatch.setattr(sys, "platform", "linux")
    with pytest.raises(EnvironmentUnavailableError, match="needs inputtino") as error:
        VRChatPlugin().build(VRChatOptions(mouse=True), _context())
    assert "games-on-whales/inputtino" in str(error.value)


def test_missing_pamiq_vrchat(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "pamiq_vrchat", None)
    with pytest.raises(EnvironmentUnavailableError, match="needs pamiq-vrchat") as error:
        VRChatPlugin().build(VRChatOptions(), _context())
    assert "--no-deps 'pamiq-vrchat==0.1.0'" in str(error.value)


def test_injected_devices_skip_the_device_checks(monkeypatch: pytest.MonkeyPatch) -> None:
    log: list[tuple[str, Any]] = []
    monkeypatch.setattr(VRChatPlugin, "sensor_factory", SolidSensor)
    monkeypatch.setattr(VRChatPlugin, "actuator_factory", lambda: RecordingActuator(log))
    env = VRChatPlugin().build(VRChatOptions(size=16, osc_port=70000), _context())
    env.setup()
    assert env.observe().observation.shape == (16, 16, 3)
    env.teardown()
    assert [kind for kind, _ in log] == ["setup", "teardown"]


def test_audio_is_a_metric_only() -> None:
    class Tone:
        def setup(self) -> None:
            pass

        def read(self) -> np.ndarray:
            time.sleep(0.01)
            return np.full((160, 2), 0.5, dtype=np.float32)

        def teardown(self) -> None:
            pass

    env = VRChatEnvironment(
        VRChatOptions(size=16, audio=True), SolidSensor, lambda: RecordingActuator([]), Tone
    )
    env.setup()
    time.sleep(0.1)
    step = env.observe()
    assert step.observation.shape == (16, 16, 3)  # the agent sees frames only
    metrics = env.evaluation_metrics()
    assert metrics["vrchat/audio_rms"] == pytest.approx(0.5)
    assert metrics["vrchat/audio_chunks"] > 0 and metrics["vrchat/audio_errors"] == 0
    env.teardown()


def test_plugin_distribution() -> None:
    from pamiqx.testing import check_plugin_distribution

    [entry] = check_plugin_distribution("pamiqx-vrchat")
    assert entry.name == "vrchat" and entry.kind == "environment"


def _context() -> Any:
    from pamiqx.api import BuildContext

    return BuildContext("t", 0)
