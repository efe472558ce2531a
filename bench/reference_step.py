"""One agent step on the reference path: representation, policy core and forward model.

An agent step is what happens between an observation arriving and the action for
it being ready, plus encoding that observation: ``Collector.complete`` (the
representation encodes ``o_{t+1}``) and ``Collector.act`` (the QLSTM policy acts
and the forward model scores ``o_{t+1}`` against its imagined predictions). The
world's own step is left out. Measured on ``experiments/reference/adversarial``
at its ``-maze`` size and at the reference's sizes (jepa 144x144, QLSTM 8 x 1,024
policy and forward model); a sim-maze world with VRChat's multi-discrete actions
stands in for VRChat at both sizes, and no training runs (a rollout never fills).
The reference path must fit a 100 ms control interval on a GPU.

``python -m bench reference_step`` (CUDA rows where torch sees a GPU).
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
COMMAND = "python -m bench reference_step"
STEPS, WARM_UP = 60, 5
# Sim-maze with VRChat's action layout; nothing trains (the rollout never fills).
WORLD = [
    'environment.plugin="sim-maze"',
    'environment.action_mode="multi_discrete"',
    "policy.rollout_steps=100000",
    "policy.train_every=100000",
    "policy.replay_size=100000",
    "tracking.enabled=false",
]


def step_latencies(file: str, overrides: list[str], device: str) -> list[float]:
    """Milliseconds of each agent step of ``file`` (after a warm-up) on ``device``."""
    from pamiqx.experiment import load_experiment
    from pamiqx.runtime.build import build_components, build_environments
    from pamiqx.runtime.startup import set_up

    resolved = load_experiment(ROOT / file, [*WORLD, f'run.device="{device}"', *overrides])
    with tempfile.TemporaryDirectory() as tmp:
        envs = build_environments(resolved, torch.device("cpu"), Path(tmp))
        for env in envs:
            set_up(env, resolved)
        try:
            c = build_components(resolved, envs, Path(tmp))
            observations, _, starts = c.worlds.observe()
            times = []
            for _ in range(WARM_UP + STEPS):
                start = time.perf_counter()
                actions = c.collector.act(observations, starts)
                _sync(c.device)
                acted = time.perf_counter()
                c.worlds.affect(actions)
                observations, rewards, starts = c.worlds.observe()
                observed = time.perf_counter()
                c.collector.complete(observations, rewards, starts)
                _sync(c.device)
                times.append(1e3 * (acted - start + time.perf_counter() - observed))
        finally:
            for env in envs:
                env.teardown()
    return times[WARM_UP:]


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def run() -> list[dict[str, object]]:
    """Return p50/p99 agent-step latency at the -maze size and at the reference's sizes."""
    rows: list[dict[str, object]] = []
    devices = ["cpu", *(["cuda"] if torch.cuda.is_available() else [])]
    cases = [
        ("-maze size", "experiments/reference/adversarial-maze.toml", []),
        (
            "reference size",
            "experiments/reference/adversarial.toml",
            ["environment.size=144", 'run.mode="lockstep"'],
        ),
    ]
    for device in devices:
        for label, file, extra in cases:
            times = np.asarray(step_latencies(file, extra, device))
            for q in (50, 99):
                rows.append(
                    {
                        "name": f"reference-path agent step, {label} (adversarial), p{q}, {device}",
                        "value": float(np.percentile(times, q)),
                        "unit": "ms",
                        "command": COMMAND,
                    }
                )
    return rows


if __name__ == "__main__":
    for row in run():
        print(row)
