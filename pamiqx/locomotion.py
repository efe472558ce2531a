"""The locomotion action layout shared by ``sim-maze`` and ``vrchat``.

Actions are shaped like VRChat's OSC inputs, so an agent trained in the
simulated maze can be pointed at VRChat unchanged.
"""

from __future__ import annotations

from pamiqx.api import ActionSpec

DISCRETE_ACTIONS: tuple[str, ...] = (
    "noop",
    "forward",
    "backward",
    "strafe_left",
    "strafe_right",
    "turn_left",
    "turn_right",
)
"""Names of the discrete actions; the index in this tuple is the action value."""

MULTI_DISCRETE_NAMES: tuple[str, ...] = ("Vertical", "Horizontal", "LookHorizontal", "Jump", "Run")
"""The multi-discrete sub-actions, named after VRChat's OSC inputs."""

MULTI_DISCRETE_NVEC: tuple[int, ...] = (3, 3, 3, 2, 2)
"""Sizes of the multi-discrete sub-actions.

The first three take 0 (none), 1 (+1) or 2 (-1): Vertical +1 walks forward,
Horizontal +1 strafes right and LookHorizontal +1 turns right. Jump and Run are
buttons (1 pressed).
"""


def locomotion_action_spec(mode: str) -> ActionSpec:
    """Return the action spec of ``"discrete"`` or ``"multi_discrete"`` locomotion."""
    if mode == "discrete":
        return ActionSpec("discrete", (len(DISCRETE_ACTIONS),), DISCRETE_ACTIONS)
    return ActionSpec("multi_discrete", MULTI_DISCRETE_NVEC, MULTI_DISCRETE_NAMES)
