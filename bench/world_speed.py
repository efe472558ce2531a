"""Benchmark: maze world steps per second (render included) on one CPU core."""

from __future__ import annotations

import time

import numpy as np

from pamiqx.envs.maze import DISCRETE_ACTIONS, MazeWorld

COMMAND = "python -m bench world_speed"
SIZES = ((64, 64), (128, 128))
WARMUP_STEPS = 200
MEASURE_SECONDS = 2.0


def measure(height: int, width: int, seconds: float = MEASURE_SECONDS) -> float:
    """Return random-action steps per second of a fresh world after a warm-up."""
    world = MazeWorld(seed=0, height=height, width=width)
    actions = np.random.default_rng(0).integers(0, len(DISCRETE_ACTIONS), size=4096).tolist()
    for action in actions[:WARMUP_STEPS]:
        world.step(action)
    steps = 0
    start = time.perf_counter()
    deadline = start + seconds
    while True:
        # Check the clock once per batch so timing overhead stays out of the figure.
        for action in actions[:256]:
            world.step(action)
        steps += 256
        now = time.perf_counter()
        if now >= deadline:
            return steps / (now - start)
        actions = actions[256:] + actions[:256]


def run() -> list[dict[str, object]]:
    """Measure world steps per second at 64x64 and 128x128.

    Returns:
        One row per frame size: name, value, unit and the command that reproduces it.
    """
    return [
        {
            "name": f"sim-maze world steps/s ({height}x{width}, 1 core)",
            "value": round(measure(height, width), 1),
            "unit": "steps/s",
            "command": COMMAND,
        }
        for height, width in SIZES
    ]


if __name__ == "__main__":
    for row in run():
        print(row)
