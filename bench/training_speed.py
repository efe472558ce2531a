"""Training-loop speed: lock-step sim-maze with each installed curiosity, steps/s and peak memory.

Each configuration runs in its own process (so peak resident memory is its own):
``python -m bench.training_speed --one rnd --device cpu``; ``--set KEY=VALUE`` adds an
experiment override (``--set curiosity.update_proportion=1.0``). CUDA rows are measured
only where torch sees a GPU; every row names its device.

The measured experiment is the quickstart with :data:`OVERRIDES`, plus the options in
:data:`CURIOSITY_OVERRIDES` for the curiosity measured (named in its row). Curiosities
other than the quickstart's own get their plugin's defaults.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pamiqx.experiment import ResolvedExperiment

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
# RND does the paper's predictor work per rollout (Burda et al. 2018, table A.4): a fresh
# 25% of the batch for each of PPO's 4 epochs. quickstart.toml (from rnd-maze.toml) trains
# the predictor on the whole batch, chosen there for a single world; with the bench's 4
# worlds that is 4x the paper's share and as much conv work as PPO itself
# (``--one rnd --set curiosity.update_proportion=1.0`` measures that).
# The forward-dynamics mechanisms predict latents, not pixels: they run on the frozen
# `random` representation, as their own experiment files do.
ON_RANDOM_FEATURES = [
    "representation.plugin=random",
    "models.encoder.plugin=mlp-encoder",
    "models.encoder.feature_dim=256",
]
CURIOSITY_OVERRIDES: dict[str, list[str]] = {
    "rnd": ["curiosity.update_proportion=0.25", "curiosity.epochs=4"],
    **{
        name: ON_RANDOM_FEATURES
        for name in ("adversarial", "delta-minimize", "meta", "hierarchical", "ttt", "unified")
    },
}


def curiosity_label(curiosity: str, extra: Sequence[str] = ()) -> str:
    """Return ``'name'`` plus the curiosity options the bench sets, e.g. ``'rnd' [epochs=4]``."""
    options: dict[str, str] = {}
    for override in [*CURIOSITY_OVERRIDES.get(curiosity, []), *extra]:
        key, _, value = override.partition("=")
        if key.startswith("curiosity."):
            options[key.removeprefix("curiosity.")] = value
        elif key == "representation.plugin":
            options["representation"] = value
    shown = ", ".join(f"{k}={v}" for k, v in options.items())
    return f"'{curiosity}'" + (f" [{shown}]" if shown else "")


def resolve(
    curiosity: str, device: str, extra: Sequence[str] = (), file: str | None = None
) -> ResolvedExperiment:
    """Return the measured experiment: the quickstart with the bench's overrides.

    bench.sb3_peer reads its SB3 settings from the same resolved experiment.

    Args:
        curiosity: The curiosity plugin (ignored with ``file``).
        device: ``cpu`` or ``cuda``.
        extra: Further ``KEY=VALUE`` overrides, applied last.
        file: Measure this experiment file as it is instead (no metrics, no checkpoints).
    """
    from pamiqx.experiment import load_experiment

    if file is not None:
        quiet = ["tracking.enabled=false", "run.checkpoint_every=0", f"run.device={device}"]
        return load_experiment(ROOT / file, [*quiet, *extra])
    return load_experiment(
        ROOT / "experiments" / "quickstart.toml",
        [
            *OVERRIDES,
            f"curiosity.plugin={curiosity}",
            *CURIOSITY_OVERRIDES.get(curiosity, []),
            f"run.device={device}",
            *extra,
        ],
    )


def measure(
    curiosity: str,
    device: str,
    extra: Sequence[str] = (),
    warmup_steps: int = WARMUP_STEPS,
    measure_steps: int = MEASURE_STEPS,
    file: str | None = None,
) -> dict[str, float]:
    """Run the loop in this process and return steps/s (wall and CPU time) after a warm-up.

    The loop is the runtime's own (components, rollout and lock-step loop as a run
    builds them), so the bench measures what ``pamiqx run`` does.
    """
    import torch

    from pamiqx.runtime.build import build_components, build_environments
    from pamiqx.runtime.lockstep import LockstepLoop
    from pamiqx.runtime.signals import StopRequest

    resolved = resolve(curiosity, device, extra, file)
    envs = build_environments(resolved, torch.device("cpu"), None)
    for env in envs:
        env.setup()
    components = build_components(resolved, envs, None)
    marks: dict[str, float] = {}

    def on_step(step: int) -> None:
        if step >= warmup_steps and "start" not in marks:
            marks["start"], marks["start_step"] = time.perf_counter(), step
            marks["start_cpu"] = time.process_time()

    loop = LockstepLoop(
        components,
        warmup_steps + measure_steps,
        0,
        lambda s, m: None,
        on_step,
        lambda: None,
    )
    loop.run(StopRequest())
    elapsed = time.perf_counter() - marks["start"]
    cpu = time.process_time() - marks["start_cpu"]
    steps = loop.step - marks["start_step"]
    # Per CPU-second of the whole process: steadier than wall time on a shared machine
    # (one thread), meaningless for CUDA or several threads.
    return {
        "steps": steps,
        "steps_per_second": steps / elapsed,
        "steps_per_cpu_second": steps / cpu,
    }


def run_json(args: list[str], env: dict[str, str] | None = None) -> dict[str, float]:
    """Run ``python ARGS`` from the repository root and return its last line, read as JSON.

    Raises:
        RuntimeError: The command failed; the message holds the end of its stderr.
    """
    out = subprocess.run(
        [sys.executable, *args], cwd=ROOT, env=env, capture_output=True, text=True, check=False
    )
    if out.returncode != 0:
        raise RuntimeError(f"python {' '.join(args)} failed:\n{out.stderr[-4000:]}")
    result: dict[str, float] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def installed_curiosities() -> list[str]:
    """Return the names of the curiosity plugins found through entry points."""
    from pamiqx.plugins.manager import load_plugins

    return load_plugins().names("curiosity")


def run() -> list[dict[str, object]]:
    """Measure every installed curiosity on the CPU (and CUDA when present)."""
    import torch

    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    rows: list[dict[str, object]] = []
    for device in devices:
        for curiosity in installed_curiosities():
            command = f"python -m bench.training_speed --one {curiosity} --device {device}"
            args = ["-m", "bench.training_speed", "--one", curiosity, "--device", device]
            result = run_json(args)
            which = curiosity_label(curiosity)
            label = f"training loop, sim-maze 64x64 x4 worlds, curiosity {which}, {device}"
            rows.append(
                {
                    "name": label,
                    "value": result["steps_per_second"],
                    "unit": "steps/s",
                    "command": command,
                    "device": device,
                    "steps_per_cpu_second": result["steps_per_cpu_second"],
                }
            )
            rows.append(
                {
                    "name": f"peak resident memory, curiosity {which}, {device}",
                    "value": result["peak_rss_mib"],
                    "unit": "MiB",
                    "command": command,
                    "device": device,
                }
            )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--one", help="curiosity plugin name (in the quickstart)")
    parser.add_argument("--file", help="an experiment file to measure as it is, instead")
    parser.add_argument("--warmup-steps", type=int, default=WARMUP_STEPS)
    parser.add_argument("--measure-steps", type=int, default=MEASURE_STEPS)
    parser.add_argument("--device", default="cpu")
    parser.add_argument(
        "--set", action="append", default=[], metavar="KEY=VALUE", help="extra override"
    )
    args = parser.parse_args()
    if (args.one is None) == (args.file is None):
        parser.error("give exactly one of --one and --file")
    result = measure(
        args.one or "",
        args.device,
        args.set,
        args.warmup_steps,
        args.measure_steps,
        args.file,
    )
    result["peak_rss_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps(result))


if __name__ == "__main__":
    main()
