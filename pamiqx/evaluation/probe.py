"""A linear probe of a representation: how well its latents predict the agent's true pose.

sim-maze knows where the agent is and where it faces
(:meth:`~pamiqx.envs.sim_maze.SimMazeEnvironment.ground_truth`); the agent never
sees it. A representation that has learnt something about the world should make
``(x, y, sin heading, cos heading)`` linearly readable from its latents. The
probe:

1. walks the maze at random (a persistent random walk, so it covers rooms) and
   records frames with their poses; the walk is cut into 30 contiguous blocks,
   every fifth held out (whole blocks, so a held-out frame's close neighbours in
   time are not in the training set, while held-out and training frames come
   from the same rooms);
2. streams the training walk through the stage as a run does (encode, observe,
   and ``update()`` after every batch), for a fixed number of frames;
3. fits a ridge regression from the training frames' latents to the pose, the
   ridge strength chosen by cross-validation over contiguous stretches of them,
   and reports R² on the held-out blocks (mean over the four targets).

It cannot be faked: the pose is never an input, and neither the stage nor the
probe trains on the held-out frames.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import attrs
import numpy as np
import numpy.typing as npt
import torch

from pamiqx.api import BuildContext, ObservationSpec, Representation, RepresentationPlugin
from pamiqx.envs.sim_maze import SimMazeOptions, SimMazePlugin

# Up to 1e5: a (16, 128) token latent has 2,048 features for a few thousand frames.
RIDGES = (1e-2, 1e-1, 1.0, 10.0, 100.0, 1e3, 1e4, 1e5)
TARGETS = ("x", "y", "sin_heading", "cos_heading")
FOLDS = 5
# Persistent random walk: keep the current action with this probability.
_PERSISTENCE = 0.8
# forward, turn_left, turn_right (and the rest rarely): mostly moves, some turns.
_ACTION_WEIGHTS = np.array([0.02, 0.5, 0.04, 0.07, 0.07, 0.15, 0.15])


@attrs.frozen
class Walk:
    """Frames of a random walk and the agent's true pose at each.

    Attributes:
        frames: ``(N, H, W, 3)`` uint8.
        poses: ``(N, 4)`` float64: ``x``, ``y``, ``sin(heading)``, ``cos(heading)``.
    """

    frames: npt.NDArray[np.uint8]
    poses: npt.NDArray[np.float64]


def random_walk(
    steps: int, seed: int, maze: SimMazeOptions | None = None, maze_seed: int = 0
) -> Walk:
    """Walk one maze (the layout of ``maze_seed``) at random from its start for ``steps`` steps."""
    options = maze or SimMazeOptions(size=64)
    env = SimMazePlugin().build(
        attrs.evolve(options, map_seed=maze_seed), BuildContext("probe", seed)
    )
    env.setup()
    rng = np.random.default_rng(seed)
    weights = _ACTION_WEIGHTS / _ACTION_WEIGHTS.sum()
    frames, poses = [], []
    action = 1
    # A different start per seed: walk unrecorded first.
    for _ in range(int(rng.integers(0, 200))):
        env.affect(np.array(rng.choice(len(weights), p=weights), dtype=np.int64))
    for _ in range(steps):
        frames.append(env.observe().observation)
        truth = env.ground_truth()
        poses.append(
            [truth["x"], truth["y"], math.sin(truth["heading"]), math.cos(truth["heading"])]
        )
        if rng.random() > _PERSISTENCE:
            action = int(rng.choice(len(weights), p=weights))
        env.affect(np.array(action, dtype=np.int64))
    return Walk(np.stack(frames), np.asarray(poses, dtype=np.float64))


def split_walk(
    walk: Walk, blocks: int = 30, held_out: Sequence[int] = range(2, 30, 5)
) -> tuple[Walk, Walk]:
    """Cut a walk into contiguous blocks; return the kept blocks and the held-out ones, in order."""
    block = np.arange(len(walk.frames)) * blocks // len(walk.frames)
    test = np.isin(block, held_out)
    return (
        Walk(walk.frames[~test], walk.poses[~test]),
        Walk(walk.frames[test], walk.poses[test]),
    )


def encode_all(
    stage: Representation, frames: npt.NDArray[np.uint8], batch: int = 64
) -> torch.Tensor:
    """Encode frames without training; return ``(N, features)`` float64 latents (flattened)."""
    out = []
    for start in range(0, len(frames), batch):
        with torch.inference_mode():
            latents = stage.encode(torch.from_numpy(frames[start : start + batch]))
        out.append(latents.reshape(latents.shape[0], -1).double().cpu())
    return torch.cat(out)


def train_stage(stage: Representation, walk: Walk, frames: int, batch: int = 8) -> list[float]:
    """Stream ``frames`` frames of the walk (cycling) through the stage as a run does.

    Returns:
        The ``loss`` of every training call the stage reported.
    """
    losses = []
    for start in range(0, frames, batch):
        index = np.arange(start, start + batch) % len(walk.frames)
        raw = torch.from_numpy(walk.frames[index])
        with torch.inference_mode():
            stage.encode(raw)
        stage.observe(raw)
        metrics = stage.update()
        if "loss" in metrics:
            losses.append(float(metrics["loss"]))
    return losses


def _ridge_fit(x: torch.Tensor, y: torch.Tensor, ridge: float) -> torch.Tensor:
    """Closed-form ridge weights (bias column unpenalised) for standardised inputs."""
    design = torch.cat([x, torch.ones(x.shape[0], 1, dtype=x.dtype)], dim=1)
    penalty = ridge * torch.eye(design.shape[1], dtype=x.dtype)
    penalty[-1, -1] = 0.0
    weights: torch.Tensor = torch.linalg.solve(design.T @ design + penalty, design.T @ y)
    return weights


def _predict(x: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    return torch.cat([x, torch.ones(x.shape[0], 1, dtype=x.dtype)], dim=1) @ weights


def r2_scores(predicted: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Return R² per target column: ``1 - SS_res / SS_tot``."""
    residual = ((target - predicted) ** 2).sum(0)
    total = ((target - target.mean(0)) ** 2).sum(0)
    return 1.0 - residual / total


def probe_r2(
    train_latents: torch.Tensor,
    train_poses: torch.Tensor,
    test_latents: torch.Tensor,
    test_poses: torch.Tensor,
) -> dict[str, float]:
    """Fit the ridge probe on the training latents and score it on held-out ones.

    The ridge strength is chosen among :data:`RIDGES` by :data:`FOLDS`-fold
    cross-validation over contiguous stretches of the training walk (consecutive
    frames are near-duplicates: a random split would reward memorising the walk),
    then the probe is refitted on the whole training walk.

    Returns:
        R² per target and their mean (``"mean"``), on the held-out walk.
    """
    mean, std = train_latents.mean(0), train_latents.std(0) + 1e-8
    x_train, x_test = (train_latents - mean) / std, (test_latents - mean) / std
    folds = torch.arange(len(x_train)) * FOLDS // len(x_train)

    def validated(ridge: float) -> float:
        scores = []
        for fold in range(FOLDS):
            held, kept = folds == fold, folds != fold
            weights = _ridge_fit(x_train[kept], train_poses[kept], ridge)
            scores.append(
                float(r2_scores(_predict(x_train[held], weights), train_poses[held]).mean())
            )
        return sum(scores) / FOLDS

    best = max(RIDGES, key=validated)
    scores = r2_scores(_predict(x_test, _ridge_fit(x_train, train_poses, best)), test_poses)
    result = {name: float(v) for name, v in zip(TARGETS, scores, strict=True)}
    result["mean"] = float(scores.mean())
    return result


def evaluate(
    plugin: type[RepresentationPlugin],
    options: Any,
    seed: int,
    train_walk: Walk,
    test_walk: Walk,
    training_frames: int,
) -> dict[str, float]:
    """Build a stage, train it on ``training_frames`` frames of the walk, probe its latents.

    Returns:
        Held-out R² per target, ``mean``, and ``loss_first``/``loss_last`` when it trained.
    """
    torch.manual_seed(seed)
    height, width, channels = train_walk.frames.shape[1:]
    spec = ObservationSpec((height, width, channels), "uint8", "image")
    stage = plugin().build(options, BuildContext("probe", seed), spec)
    losses = train_stage(stage, train_walk, training_frames) if training_frames else []
    result = probe_r2(
        encode_all(stage, train_walk.frames),
        torch.from_numpy(train_walk.poses),
        encode_all(stage, test_walk.frames),
        torch.from_numpy(test_walk.poses),
    )
    if losses:
        result["loss_first"], result["loss_last"] = losses[0], losses[-1]
    return result


def compare_stages(
    seeds: Sequence[int],
    training_frames: int,
    walk_frames: int = 3000,
    jepa_options: dict[str, Any] | None = None,
    report: Callable[[str, int, dict[str, float]], None] | None = None,
) -> dict[str, list[dict[str, float]]]:
    """Probe ``jepa`` (small, trained), untrained ``jepa`` and ``random`` on each seed.

    Each seed has its own maze, walk, weights and masks. ``jepa`` comes from the
    ``pamiqx-jepa`` distribution, found through the plugin registry.

    Args:
        seeds: One comparison per seed.
        training_frames: Frames streamed through the trained ``jepa``.
        walk_frames: Length of each seed's walk (a fifth of it held out).
        jepa_options: Options of ``jepa`` on top of the small configuration.
        report: Called with (stage, seed, result) as each result is ready.

    Returns:
        For each stage, one :func:`evaluate` result per seed.
    """
    from pamiqx.builtin.representations import RandomOptions, RandomPlugin
    from pamiqx.plugins.manager import load_plugins

    jepa = load_plugins().lookup("representation", "jepa").plugin
    assert issubclass(jepa, RepresentationPlugin)
    # The small configuration the plugin documents (JEPAOptions.small).
    options = jepa.Options.small(**(jepa_options or {}))
    results: dict[str, list[dict[str, float]]] = {"random": [], "jepa-untrained": [], "jepa": []}
    for seed in seeds:
        train, test = split_walk(random_walk(walk_frames, seed=seed, maze_seed=seed))
        runs: dict[str, tuple[type[RepresentationPlugin], Any, int]] = {
            "random": (RandomPlugin, RandomOptions(), 0),
            "jepa-untrained": (jepa, options, 0),
            "jepa": (jepa, options, training_frames),
        }
        for stage, (plugin, stage_options, frames) in runs.items():
            result = evaluate(plugin, stage_options, seed, train, test, frames)
            results[stage].append(result)
            if report is not None:
                report(stage, seed, result)
    return results


def main(argv: Sequence[str] | None = None) -> None:
    """``python -m pamiqx.evaluation.probe [--frames N] [--seeds 0 1 2]``: print a table."""
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=4096, help="jepa training frames")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--lr", type=float, default=None, help="jepa's learning rate")
    args = parser.parse_args(argv)
    extra = {} if args.lr is None else {"lr": args.lr}
    print(f"held-out R² of a linear probe to (x, y, sin, cos heading); jepa: {args.frames} frames")
    print("| stage | seed | x | y | sin | cos | mean |")
    print("|:---|---:|---:|---:|---:|---:|---:|")

    def show(stage: str, seed: int, row: dict[str, float]) -> None:
        cells = " | ".join(f"{row[k]:.3f}" for k in (*TARGETS, "mean"))
        print(f"| {stage} | {seed} | {cells} |", flush=True)

    compare_stages(args.seeds, args.frames, jepa_options=extra, report=show)


if __name__ == "__main__":
    main()
