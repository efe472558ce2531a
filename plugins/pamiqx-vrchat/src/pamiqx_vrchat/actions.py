"""Agent actions -> VRChat inputs, with the same layouts as the built-in ``sim-maze`` world.

An action is first decoded into a :class:`Command` (signed locomotion inputs and two
buttons), then turned into the ``{"axes": {OscAxes: float}, "buttons": {OscButtons: bool}}``
dict that pamiq-vrchat's ``OscActuator`` takes, or into a ``MouseActuator`` action when
turning is done with the mouse. Both layouts are pamiqx's locomotion layouts
(:func:`pamiqx.api.locomotion_action_spec`), which ``sim-maze`` uses too, so that an agent
trained in the maze can be pointed at VRChat:

* ``discrete``: 7 actions, see :data:`DISCRETE_ACTIONS`.
* ``multi_discrete``: ``(3, 3, 3, 2, 2)`` = Vertical, Horizontal, LookHorizontal (each
  0 = none, 1 = +1, 2 = -1; look scaled by ``look_scale``), Jump, Run.

VRChat's signs: Vertical +1 walks forward, Horizontal +1 strafes right, LookHorizontal +1
turns right.

This module imports pamiq-vrchat, so it is only imported when the environment is built.
"""

from __future__ import annotations

from typing import Any, Literal

import attrs
import numpy as np
import numpy.typing as npt
from pamiq_vrchat.actuators import OscAxes, OscButtons

# The same layout as sim-maze's, from one place, so maze-trained agents run here unchanged.
from pamiqx.api import DISCRETE_ACTIONS, MULTI_DISCRETE_NAMES, MULTI_DISCRETE_NVEC

__all__ = [
    "AXIS_VALUES",
    "DISCRETE_ACTIONS",
    "MULTI_DISCRETE_NAMES",
    "MULTI_DISCRETE_NVEC",
    "Command",
    "decode",
    "mouse_action",
    "osc_action",
    "release_action",
]

AXIS_VALUES: tuple[float, ...] = (0.0, 1.0, -1.0)
"""Signed input of each choice of an axis sub-action (0 none, 1 plus, 2 minus)."""

# Discrete action -> (Vertical, Horizontal, LookHorizontal), as in the maze.
_DISCRETE_INPUTS: tuple[tuple[float, float, float], ...] = (
    (0.0, 0.0, 0.0),
    (1.0, 0.0, 0.0),
    (-1.0, 0.0, 0.0),
    (0.0, -1.0, 0.0),
    (0.0, 1.0, 0.0),
    (0.0, 0.0, -1.0),
    (0.0, 0.0, 1.0),
)


@attrs.frozen
class Command:
    """What one action asks the avatar to do.

    Attributes:
        vertical: Forward (+1) or backward (-1) walking input.
        horizontal: Right (+1) or left (-1) strafing input.
        look: Turning input in ``[-1, 1]`` (already scaled by ``look_scale``).
        jump: Hold the Jump button.
        run: Hold the Run button.
    """

    vertical: float = 0.0
    horizontal: float = 0.0
    look: float = 0.0
    jump: bool = False
    run: bool = False


def decode(
    action: npt.NDArray[np.int64] | int,
    mode: Literal["discrete", "multi_discrete"],
    look_scale: float,
) -> Command:
    """Decode an agent action into a :class:`Command`.

    Args:
        action: An int (or shape ``()`` array) in discrete mode; 5 ints in multi-discrete mode.
        mode: ``"discrete"`` or ``"multi_discrete"``.
        look_scale: Factor applied to the turning input.

    Returns:
        The command.

    Raises:
        ValueError: If the action does not fit the layout.
    """
    values = np.asarray(action, dtype=np.int64).reshape(-1)
    if mode == "discrete":
        if values.size != 1 or not 0 <= int(values[0]) < len(DISCRETE_ACTIONS):
            raise ValueError(
                f"discrete VRChat action must be one int in [0, {len(DISCRETE_ACTIONS)}), "
                f"got {values.tolist()}"
            )
        vertical, horizontal, look = _DISCRETE_INPUTS[int(values[0])]
        return Command(vertical, horizontal, look * look_scale)
    if values.size != len(MULTI_DISCRETE_NVEC) or not all(
        0 <= int(v) < n for v, n in zip(values, MULTI_DISCRETE_NVEC, strict=True)
    ):
        raise ValueError(
            f"multi-discrete VRChat action must be {len(MULTI_DISCRETE_NVEC)} ints bounded by "
            f"{MULTI_DISCRETE_NVEC}, got {values.tolist()}"
        )
    v, h, look, jump, run = (int(x) for x in values)
    return Command(
        AXIS_VALUES[v], AXIS_VALUES[h], AXIS_VALUES[look] * look_scale, bool(jump), bool(run)
    )


def osc_action(command: Command, look_via_osc: bool = True) -> dict[str, dict[Any, Any]]:
    """Return the ``OscActuator`` action for a command.

    Every controlled input is always set, so an input the new action does not use is
    released rather than left as the previous action left it.

    Args:
        command: The decoded command.
        look_via_osc: Send turning as ``LookHorizontal``; False when the mouse turns
            (LookHorizontal is then held at 0).

    Returns:
        ``{"axes": {OscAxes: float}, "buttons": {OscButtons: bool}}``.
    """
    return {
        "axes": {
            OscAxes.Vertical: float(command.vertical),
            OscAxes.Horizontal: float(command.horizontal),
            OscAxes.LookHorizontal: float(command.look) if look_via_osc else 0.0,
        },
        "buttons": {OscButtons.Jump: bool(command.jump), OscButtons.Run: bool(command.run)},
    }


def mouse_action(command: Command, speed: float) -> dict[str, Any]:
    """Return the ``MouseActuator`` action that turns the avatar for a command.

    Args:
        command: The decoded command (only ``look`` is used).
        speed: Horizontal mouse speed in pixels per second for a look input of 1.

    Returns:
        ``{"move_velocity": (vx, 0.0)}``; no mouse button is pressed.
    """
    return {"move_velocity": (float(command.look) * speed, 0.0)}


def release_action() -> dict[str, dict[Any, Any]]:
    """Return the ``OscActuator`` action that releases every input VRChat's OSC knows.

    Every axis at 0 and every button up: the same inputs pamiq-vrchat resets on pause
    and teardown.

    Returns:
        ``{"axes": {axis: 0.0 for all}, "buttons": {button: False for all}}``.
    """
    return {
        "axes": {axis: 0.0 for axis in OscAxes},
        "buttons": {button: False for button in OscButtons},
    }
