"""The reference experiments' files (experiments/reference/): full size validates, -maze runs.

Each ``<mechanism>.toml`` is the reference experiment at its own sizes (a GPU host);
``<mechanism>-maze.toml`` is the same path sized for a 2-core CPU in sim-maze.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import attrs
import pytest

from pamiqx.experiment import load_experiment

REFERENCE = Path(__file__).resolve().parents[1] / "experiments" / "reference"
# The forward-dynamics mechanisms beside the policy (their own models and regime)...
MECHANISMS = ["adversarial", "delta-minimize", "meta"]
# ...and all seven reference experiments.
ALL = [*MECHANISMS, "hierarchical", "unified", "ttt", "ttt-e2e"]
# Seconds a -maze variant may take for 2,048 steps on a 2-core CPU: the stepped windows of
# hierarchical and ttt-e2e take over ten minutes there.
MAZE_RUN_LIMIT = 2400


@pytest.mark.parametrize("mechanism", MECHANISMS)
def test_the_full_size_file_validates_at_the_reference_sizes(mechanism: str) -> None:
    resolved = load_experiment(REFERENCE / f"{mechanism}.toml")
    exp = resolved.experiment
    assert exp.name == f"reference-{mechanism}"
    assert resolved.curiosity.entry.name == mechanism
    representation = resolved.representation.options
    assert (representation.input_size, representation.width, representation.depth) == (144, 432, 6)
    assert resolved.models["policy"].entry.name == "qlstm"
    assert resolved.models["policy"].options.preset == "reference"
    curiosity = resolved.curiosity.options
    assert (curiosity.core, curiosity.hidden_dim, curiosity.core_depth) == ("qlstm", 1024, 8)
    # The forward models' own replay-windows regime (trainers/stacked_hiddens.yaml).
    assert (curiosity.regime, curiosity.replay_size, curiosity.train_every) == (
        "replay-windows",
        1000,
        128,
    )
    assert (curiosity.windows, curiosity.window_length, curiosity.windows_per_step) == (32, 256, 1)
    assert (curiosity.optimizer, curiosity.lr, curiosity.weight_decay) == (
        "sgd-nesterov",
        1e-4,
        1e-4,
    )
    assert curiosity.grad_clip == 0.0
    policy = exp.policy
    assert (policy.regime, policy.replay_size, policy.train_every) == ("replay-windows", 1000, 128)
    assert (policy.windows, policy.window_length, policy.optimizer) == (32, 256, "sgd-nesterov")


def test_the_shared_path_runs_alone_as_its_own_none_baseline() -> None:
    resolved = load_experiment(REFERENCE / "vrchat.toml")
    assert resolved.experiment.name == "reference-vrchat"  # never vrchat-none's runs
    assert resolved.curiosity.entry.name == "none"
    assert resolved.experiment.policy.regime == "replay-windows"


def test_the_maze_path_has_its_own_none_baseline() -> None:
    none = load_experiment(REFERENCE / "none-maze.toml")
    maze = load_experiment(REFERENCE / "adversarial-maze.toml")
    assert none.experiment.name == "reference-none-maze"
    assert none.curiosity.entry.name == "none"
    # The same path as the mechanisms' -maze variants: world, representation, policy, PPO.
    assert none.environment == maze.environment
    assert none.representation == maze.representation
    assert none.models == maze.models
    assert none.experiment.policy == attrs.evolve(
        maze.experiment.policy, gamma_int=none.experiment.policy.gamma_int
    )


@pytest.mark.parametrize("mechanism", MECHANISMS)
def test_the_maze_variant_changes_sizes_and_world_only(mechanism: str) -> None:
    full = load_experiment(REFERENCE / f"{mechanism}.toml")
    maze = load_experiment(REFERENCE / f"{mechanism}-maze.toml")
    assert maze.experiment.name == f"reference-{mechanism}-maze"
    assert maze.environment.entry.name == "sim-maze"
    assert maze.representation.options.input_size == 64
    assert maze.experiment.policy.regime == "replay-windows"
    assert maze.experiment.policy.gamma_int == full.experiment.policy.gamma_int
    # The mechanism's own settings stay; only the forward model's width and depth and the
    # windows per training call shrink.
    fields = attrs.asdict(full.curiosity.options)
    shrunk = {"hidden_dim", "core_depth", "windows", "window_length"}
    assert {k: v for k, v in attrs.asdict(maze.curiosity.options).items() if k not in shrunk} == {
        k: v for k, v in fields.items() if k not in shrunk
    }


@pytest.mark.slow
@pytest.mark.timeout(MAZE_RUN_LIMIT + 60)
@pytest.mark.parametrize("mechanism", ALL)
def test_the_maze_variant_runs_2048_steps(mechanism: str, tmp_path: Path) -> None:
    pamiqx = Path(sys.executable).with_name("pamiqx")
    command = [
        str(pamiqx),
        "run",
        str(REFERENCE / f"{mechanism}-maze.toml"),
        "run.max_steps=2048",
        f"run.log_dir={tmp_path}",
        "tracking.enabled=false",
    ]
    done = subprocess.run(
        command,
        capture_output=True,
        text=True,
        env={**os.environ, "CI": "true"},
        timeout=MAZE_RUN_LIMIT,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    (events,) = tmp_path.glob(f"reference-{mechanism}-maze/*/events.jsonl")
    end = json.loads(events.read_text().splitlines()[-1])
    assert end["event"] == "end" and end["status"] == "finished" and end["step"] == 2048


def test_the_hierarchical_file_validates_at_the_reference_sizes() -> None:
    """hierarchical owns its policy and trains its forward dynamics inside PPO's windows,
    so the forward-model assertions above do not apply: its own reference values
    (configs/experiment, models, trainers and interaction/agent hierarchical.yaml)."""
    resolved = load_experiment(REFERENCE / "hierarchical.toml")
    exp = resolved.experiment
    assert exp.name == "reference-hierarchical"
    assert resolved.curiosity.entry.name == "hierarchical"
    representation = resolved.representation.options
    assert (representation.input_size, representation.width, representation.depth) == (144, 432, 6)
    curiosity = resolved.curiosity.options
    assert (curiosity.num_layers, curiosity.period) == (2, 8)
    # QGRU cores of 8 blocks, widths 1024 + 2 i, feed-forward x4, for policy and FD alike.
    assert (curiosity.core, curiosity.hidden_dim, curiosity.layer_width_step) == ("qgru", 1024, 2)
    assert (curiosity.core_depth, curiosity.core_ff_ratio) == (8, 4.0)
    # Layer 1's goal: a Gaussian as wide as layer 1, with a state-dependent std.
    assert (curiosity.goal_dim, curiosity.goal_std) == (1026, "state")
    assert (curiosity.blend, curiosity.hold_upper_reward) == (0.5, True)
    assert (curiosity.fd_condition, curiosity.max_imagination_steps) == ("policy", 3)
    assert (curiosity.fd_predictor, curiosity.token_mixing) == ("swiglu", "lerp")
    policy = exp.policy
    assert (policy.gamma_int, policy.entropy_coef, policy.gae_lambda) == (0.99, 0.1, 0.95)
    assert (policy.regime, policy.replay_size, policy.train_every) == ("replay-windows", 1000, 128)
    assert (policy.windows, policy.window_length) == (32, 256)
    assert (policy.optimizer, policy.lr, policy.weight_decay) == ("sgd-nesterov", 1e-4, 1e-4)


def test_the_hierarchical_maze_variant_changes_sizes_and_world_only() -> None:
    full = load_experiment(REFERENCE / "hierarchical.toml")
    maze = load_experiment(REFERENCE / "hierarchical-maze.toml")
    assert maze.experiment.name == "reference-hierarchical-maze"
    assert maze.environment.entry.name == "sim-maze"
    assert maze.representation.options.input_size == 64
    assert maze.experiment.policy.regime == "replay-windows"
    for key in ("gamma_int", "entropy_coef"):
        assert getattr(maze.experiment.policy, key) == getattr(full.experiment.policy, key)
    # Only the cores' width and depth shrink, and the goal with layer 1's width.
    shrunk = {"hidden_dim", "core_depth", "goal_dim"}
    fields = attrs.asdict(full.curiosity.options)
    assert {k: v for k, v in attrs.asdict(maze.curiosity.options).items() if k not in shrunk} == {
        k: v for k, v in fields.items() if k not in shrunk
    }
    for resolved in (full, maze):
        options = resolved.curiosity.options
        assert options.goal_dim == options.hidden_dim + options.layer_width_step


def test_the_owned_network_files_validate_at_the_reference_sizes() -> None:
    """unified, ttt and ttt-e2e: the reference's cores and sizes (configs/models/*.yaml)."""
    unified = load_experiment(REFERENCE / "unified.toml")
    options = unified.curiosity.options
    assert (options.core, options.hidden_dim, options.core_depth) == ("qgru", 1024, 8)
    assert (options.reward_average, options.internal_dim) == ("token-exponential", 0)
    assert unified.experiment.policy.regime == "replay-windows"
    assert unified.representation.entry.name == "jepa"
    ttt = load_experiment(REFERENCE / "ttt.toml")
    options = ttt.curiosity.options
    assert (options.core, options.hidden_dim, options.ttt_depth, options.ttt_heads) == (
        "ttt",
        1024,
        8,
        16,
    )
    assert (options.ttt_chunk, options.prediction_delay) == (128, 32)
    e2e = load_experiment(REFERENCE / "ttt-e2e.toml")
    options = e2e.curiosity.options
    assert (options.encoder, options.patch_size, options.encoder_width) == (
        "patch-transformer",
        12,
        1024,
    )
    assert (options.encoder_layers, options.ttt_depth, options.ttt_heads) == (4, 16, 32)
    assert e2e.representation.entry.name == "pixels"  # it trains its own encoder


@pytest.mark.parametrize("mechanism", ["unified", "ttt", "ttt-e2e"])
def test_an_owned_network_maze_variant_keeps_the_mechanism_and_shrinks_sizes(
    mechanism: str,
) -> None:
    full = load_experiment(REFERENCE / f"{mechanism}.toml")
    maze = load_experiment(REFERENCE / f"{mechanism}-maze.toml")
    assert maze.experiment.name == f"reference-{mechanism}-maze"
    assert maze.environment.entry.name == "sim-maze"
    assert maze.curiosity.entry.name == full.curiosity.entry.name
    assert maze.experiment.policy.gamma_int == full.experiment.policy.gamma_int
    assert maze.experiment.policy.regime == full.experiment.policy.regime
    for key in ("reward_average", "internal_entropy", "prediction_delay", "core"):
        if hasattr(full.curiosity.options, key):
            assert getattr(maze.curiosity.options, key) == getattr(full.curiosity.options, key)
