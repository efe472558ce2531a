"""Side by side with Stable-Baselines3 PPO: the same work, steps per second.

Usage::

    python -m bench.sb3_peer                        # every row, a Markdown table at the end
    python -m bench.sb3_peer --repeats 1 --device cpu
    python -m bench.sb3_peer --side sb3             # one side only: one JSON line
    python -m bench.sb3_peer --side pamiqx --curiosity rnd
    python -m bench.sb3_peer --side pamiqx --curiosity rnd --set curiosity.update_proportion=1.0
    python -m bench sb3_peer                        # as in `make bench`; JSON in bench/results/

One invocation measures both frameworks. Each measurement runs in its own
subprocess, one after the other (SB3, pamiqx none, pamiqx rnd, pamiqx rnd with
the quickstart's predictor share), for ``--repeats`` rounds: steps/s rows keep
the best round, ratio rows the median of the rounds' own ratios (each pairs
runs next to each other in time). A process per side gives each its own peak
resident memory, its own allocator and thread pools set up from the same
``--threads`` (torch and OpenMP), and keeps SB3 and gymnasium out of the pamiqx
process; running them one after the other (never at once) keeps them from
competing for cores.
Other load on a shared machine only ever slows a run down, hence the best
round. With one thread on the CPU, each ratio also gets a row from steps per
CPU-second of the measured window, which such load disturbs much less (a busy
machine can halve wall-clock steps/s while CPU-time steps/s moves by a few %).

What is the same on both sides:

- the world: sim-maze 64x64 built by pamiqx's own plugin from the same
  resolved experiment as bench.training_speed (quickstart plus its
  ``OVERRIDES``), 4 parallel copies (SB3: a ``DummyVecEnv`` of 4), uint8
  ``H x W x C`` frames, 7 discrete actions. sim-maze is non-episodic in pamiqx;
  the gymnasium wrapper (bench.sb3_parts) never terminates and never
  truncates, so SB3 sees one endless episode per world too;
- the network: SB3's features extractor *is* ``pamiqx.models.networks.ConvEncoder``
  (feature_dim 256, channels 32/64/64) and ``net_arch=[256]`` (SB3 >= 1.8 builds
  that as separate 256-wide layers for the policy and the value, pamiqx as one
  shared 256-wide torso with an extrinsic and an intrinsic value head);
- PPO: rollout length (n_steps), minibatch size, epochs, learning rate, Adam
  eps 1e-5, gamma (pamiqx's extrinsic gamma), GAE lambda, clip range, entropy
  and value coefficients, gradient-norm clip, advantage normalisation, all read
  from that resolved experiment;
- the timing: steps/s over the steps after a warm-up of one rollout, with the
  training phases that follow each rollout inside the window (bench.training_speed's
  ``measure`` for pamiqx, run as it is; an SB3 callback marking the same step).

What differs is each framework's own pipeline: SB3 transposes frames to
channel-first in numpy (VecTransposeImage) and scales them in its policy;
pamiqx keeps channel-last uint8 frames and computes a second (intrinsic)
advantage stream even with curiosity ``none``.

The rnd rows use bench.training_speed's ``CURIOSITY_OVERRIDES`` (the paper's
predictor share: a fresh 25% of the rollout for each of 4 epochs); one more row
shows RND with the quickstart's own ``update_proportion = 1.0`` (4x that work),
for reference. Goals: pamiqx none / SB3 >= 1.0; rnd / none >= 0.7.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import sys
import time
from functools import partial
from typing import Any

from bench.training_speed import (
    MEASURE_STEPS,
    WARMUP_STEPS,
    curiosity_label,
    measure,
    resolve,
    run_json,
)

MODULE = "bench.sb3_peer"
REPEATS = 3
THREADS = 1
# RND as quickstart.toml sets it (rnd-maze.toml: the whole batch for each of 4 epochs).
QUICKSTART_RND = ["curiosity.update_proportion=1.0"]


def _peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def measure_pamiqx(curiosity: str, device: str, extra: list[str]) -> dict[str, float]:
    """Run bench.training_speed's measurement for ``curiosity`` in this process."""
    result = measure(curiosity, device, extra)
    result["peak_rss_mib"] = _peak_rss_mib()
    return result


def measure_sb3(device: str) -> dict[str, float]:
    """Train SB3 PPO on the same worlds with the same settings; steps/s after the warm-up."""
    import torch
    from stable_baselines3 import PPO
    from stable_baselines3.common.callbacks import BaseCallback
    from stable_baselines3.common.logger import Logger
    from stable_baselines3.common.vec_env import DummyVecEnv

    from bench.sb3_parts import ConvEncoderExtractor, PamiqxGymEnv
    from pamiqx.runtime.build import build_environments

    resolved = resolve("none", device)
    exp = resolved.experiment
    ppo, encoder = exp.policy, resolved.models["encoder"].options
    hidden = list(resolved.models["policy"].options.hidden)
    if resolved.models["policy"].options.recurrent_dim:
        raise SystemExit("sb3_peer compares feed-forward policies (recurrent_dim = 0)")
    worlds = build_environments(resolved, torch.device("cpu"), None)
    vec_env = DummyVecEnv([partial(PamiqxGymEnv, world) for world in worlds])

    class Clock(BaseCallback):
        """Marks the time when the warm-up steps are done (as training_speed's on_step)."""

        def __init__(self) -> None:
            super().__init__()
            self.start: float | None = None
            self.start_cpu = 0.0
            self.start_step = 0

        def _on_step(self) -> bool:
            if self.start is None and self.num_timesteps >= WARMUP_STEPS:
                self.start, self.start_step = time.perf_counter(), self.num_timesteps
                self.start_cpu = time.process_time()
            return True

    model = PPO(
        "CnnPolicy",
        vec_env,
        learning_rate=ppo.lr,
        n_steps=ppo.rollout_steps,
        batch_size=ppo.minibatch_size,
        n_epochs=ppo.epochs,
        gamma=ppo.gamma_ext,
        gae_lambda=ppo.gae_lambda,
        clip_range=ppo.clip_range,
        clip_range_vf=ppo.value_clip_range,
        normalize_advantage=ppo.normalize_advantages,
        ent_coef=ppo.entropy_coef,
        vf_coef=ppo.value_coef,
        max_grad_norm=ppo.max_grad_norm,
        policy_kwargs={
            "features_extractor_class": ConvEncoderExtractor,
            "features_extractor_kwargs": {
                "features_dim": encoder.feature_dim,
                "channels": tuple(encoder.channels),
            },
            "net_arch": hidden,
        },
        seed=exp.seed,
        device=device,
        verbose=0,
    )
    # A logger with no outputs: SB3's default one makes a /tmp/SB3-<date> folder per run.
    model.set_logger(Logger(folder=None, output_formats=[]))
    clock = Clock()
    model.learn(total_timesteps=WARMUP_STEPS + MEASURE_STEPS, callback=clock)
    assert clock.start is not None
    elapsed = time.perf_counter() - clock.start
    cpu = time.process_time() - clock.start_cpu
    steps = model.num_timesteps - clock.start_step
    return {
        "steps_per_second": steps / elapsed,
        "steps_per_cpu_second": steps / cpu,
        "peak_rss_mib": _peak_rss_mib(),
    }


def _command(
    side: str,
    device: str,
    threads: int,
    curiosity: str | None = None,
    extra: list[str] | None = None,
) -> list[str]:
    args = ["-m", MODULE, "--side", side, "--device", device, "--threads", str(threads)]
    if curiosity is not None:
        args += ["--curiosity", curiosity]
    for override in extra or []:
        args += ["--set", override]
    return args


def _subprocess(args: list[str], threads: int) -> dict[str, float]:
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
    return run_json(args, env)


def measure_all(device: str, threads: int, repeats: int) -> list[dict[str, Any]]:
    """Measure SB3, pamiqx none and pamiqx rnd on ``device`` for ``repeats`` rounds.

    Steps/s rows keep each configuration's best round. Ratio rows are the median of
    the per-round ratios (the runs of one round are next to each other in time, so
    a change of load between rounds does not pair a quiet run with a busy one) and
    list each round's ratio in the JSON. With one thread on the CPU each ratio has a
    second row from steps per CPU-second, which other load disturbs much less.
    """
    # pamiqx none runs between SB3 and rnd: each ratio pairs neighbouring runs.
    sides = {
        "sb3": _command("sb3", device, threads),
        "none": _command("pamiqx", device, threads, "none"),
        "rnd": _command("pamiqx", device, threads, "rnd"),
        "rnd-quickstart": _command("pamiqx", device, threads, "rnd", QUICKSTART_RND),
    }
    rounds: list[dict[str, dict[str, float]]] = []
    for _ in range(repeats):
        results: dict[str, dict[str, float]] = {}
        for key, args in sides.items():
            results[key] = _subprocess(args, threads)
            wall, cpu = (results[key][k] for k in ("steps_per_second", "steps_per_cpu_second"))
            print(
                f"{key:>14} {device}: {wall:7.1f} steps/s, {cpu:7.1f} steps/CPU-s",
                file=sys.stderr,
            )
        rounds.append(results)
    where = f"sim-maze 64x64 x4 worlds, {device}, {threads} torch thread(s)"
    everything = f"python -m {MODULE} --device {device} --threads {threads} --repeats {repeats}"

    def one(key: str) -> str:
        return "python " + " ".join(sides[key])

    def best(key: str, field: str = "steps_per_second") -> float:
        return max(r[key][field] for r in rounds)

    def ratio(num: str, den: str, name: str) -> list[dict[str, Any]]:
        wall = [r[num]["steps_per_second"] / r[den]["steps_per_second"] for r in rounds]
        cpu = [r[num]["steps_per_cpu_second"] / r[den]["steps_per_cpu_second"] for r in rounds]
        rows = [
            {
                "name": f"{name} ({where}, median of {repeats} paired rounds)",
                "value": statistics.median(wall),
                "unit": "x",
                "command": everything,
                "rounds": wall,
            }
        ]
        if device == "cpu" and threads == 1:
            rows.append(
                {
                    "name": f"{name}, by steps per CPU-second ({where}, median of {repeats})",
                    "value": statistics.median(cpu),
                    "unit": "x",
                    "command": everything,
                    "rounds": cpu,
                }
            )
        return rows

    def rate(key: str, name: str) -> dict[str, Any]:
        return {
            "name": f"{name} ({where}, best of {repeats})",
            "value": best(key),
            "unit": "steps/s",
            "command": one(key),
            "steps_per_cpu_second": best(key, "steps_per_cpu_second"),
        }

    def memory(key: str, name: str) -> dict[str, Any]:
        value = min(r[key]["peak_rss_mib"] for r in rounds)
        return {"name": f"{name} ({where})", "value": value, "unit": "MiB", "command": one(key)}

    rnd_name, rnd_qs_name = curiosity_label("rnd"), curiosity_label("rnd", QUICKSTART_RND)
    rows = [
        rate("none", "pamiqx PPO, curiosity 'none'"),
        rate("sb3", "SB3 PPO, same world, network and PPO settings"),
        *ratio("none", "sb3", "ratio pamiqx 'none' / SB3 (goal >= 1.0)"),
        rate("rnd", f"pamiqx PPO, curiosity {rnd_name}"),
        *ratio("rnd", "none", f"ratio pamiqx {rnd_name} / 'none' (goal >= 0.7)"),
        rate("rnd-quickstart", f"pamiqx PPO, curiosity {rnd_qs_name}"),
        *ratio("rnd-quickstart", "none", f"ratio pamiqx {rnd_qs_name} / 'none'"),
        memory("none", "peak resident memory, pamiqx 'none'"),
        memory("sb3", "peak resident memory, SB3 PPO"),
    ]
    return [row | {"device": device} for row in rows]


def _devices(requested: str | None) -> list[str]:
    """Return ``[requested]``, or the CPU plus CUDA where torch sees a GPU."""
    if requested is not None:
        return [requested]
    import torch

    return ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


def run(
    device: str | None = None, threads: int = THREADS, repeats: int = REPEATS
) -> list[dict[str, object]]:
    """Measure on the CPU, and on CUDA when present (no CUDA rows without a GPU)."""
    return [row for d in _devices(device) for row in measure_all(d, threads, repeats)]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--side", choices=["pamiqx", "sb3"], help="measure one side only")
    parser.add_argument("--curiosity", default="none", help="pamiqx side: curiosity plugin")
    parser.add_argument("--device", help="cpu or cuda (default: cpu, and cuda when present)")
    parser.add_argument("--threads", type=int, default=THREADS, help="torch and OpenMP threads")
    parser.add_argument(
        "--repeats", type=int, default=REPEATS, help="rounds (steps/s: best, ratios: median)"
    )
    parser.add_argument(
        "--set", action="append", default=[], metavar="KEY=VALUE", help="pamiqx side: override"
    )
    args = parser.parse_args()
    if args.side is not None:
        import torch

        torch.set_num_threads(args.threads)
        device = args.device or "cpu"
        if args.side == "sb3":
            result = measure_sb3(device)
        else:
            result = measure_pamiqx(args.curiosity, device, args.set)
        print(json.dumps(result))
        return
    from bench.__main__ import table

    print(table(run(args.device, args.threads, args.repeats)))


if __name__ == "__main__":
    main()
