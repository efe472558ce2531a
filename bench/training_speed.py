"""Training-loop speed: lock-step sim-maze with each installed curiosity, steps/s and peak memory.

Each configuration runs in its own process (so peak resident memory is its own):
``python -m bench.training_speed --one rnd --device cpu``.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
WARMUP_STEPS = 512
MEASURE_STEPS = 4096
OVERRIDES = [
    "run.num_envs=4",
    "policy.rollout_steps=128",
    "policy.minibatch_size=256",
    "policy.epochs=4",
    "tracking.enabled=false",
    "run.checkpoint_every=0",
]


def measure(curiosity: str, device: str) -> dict[str, float]:
    """Run the loop in this process and return steps/s after a warm-up."""
    import torch

    from pamiqx.experiment import load_experiment
    from pamiqx.runtime.build import build_components, build_environments
    from pamiqx.runtime.launch import LockstepLoop, StopRequest
    from pamiqx.runtime.rollout import Rollout

    resolved = load_experiment(
        ROOT / "experiments" / "quickstart.toml",
        [*OVERRIDES, f"curiosity.plugin={curiosity}", f"run.device={device}"],
    )
    envs = build_environments(resolved, torch.device("cpu"), None)
    for env in envs:
        env.setup()
    components = build_components(resolved, envs, None)
    rollout = Rollout(
        resolved.experiment.policy.rollout_steps,
        len(envs),
        envs[0].observation_spec,
        envs[0].action_spec,
        components.policy.hidden_dim,
    )
    marks: dict[str, float] = {}

    def on_step(step: int) -> None:
        if step >= WARMUP_STEPS and "start" not in marks:
            marks["start"], marks["start_step"] = time.perf_counter(), step

    loop = LockstepLoop(
        components,
        rollout,
        WARMUP_STEPS + MEASURE_STEPS,
        0,
        lambda s, m: None,
        on_step,
        lambda: None,
    )
    loop.run(StopRequest())
    elapsed = time.perf_counter() - marks["start"]
    return {"steps_per_second": (loop.step - marks["start_step"]) / elapsed}


def _curiosities() -> list[str]:
    from pamiqx.plugins.manager import load_plugins

    return load_plugins().names("curiosity")


def run() -> list[dict[str, object]]:
    """Measure every installed curiosity on the CPU (and CUDA when present)."""
    import torch

    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    rows: list[dict[str, object]] = []
    for device in devices:
        for curiosity in _curiosities():
            command = f"python -m bench.training_speed --one {curiosity} --device {device}"
            out = subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "bench.training_speed",
                    "--one",
                    curiosity,
                    "--device",
                    device,
                ],
                cwd=ROOT,
                capture_output=True,
                text=True,
                check=True,
            )
            result = json.loads(out.stdout.strip().splitlines()[-1])
            label = f"training loop, sim-maze 64x64 x4 worlds, curiosity '{curiosity}', {device}"
            rows.append(
                {
                    "name": label,
                    "value": result["steps_per_second"],
                    "unit": "steps/s",
                    "command": command,
                }
            )
            rows.append(
                {
                    "name": f"peak resident memory, curiosity '{curiosity}', {device}",
                    "value": result["peak_rss_mib"],
                    "unit": "MiB",
                    "command": command,
                }
            )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--one", required=True, help="curiosity plugin name")
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    result = measure(args.one, args.device)
    result["peak_rss_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps(result))


if __name__ == "__main__":
    main()
