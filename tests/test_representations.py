"""The representation stage: built-ins, the contract, once-per-step encoding, exact resume."""

from __future__ import annotations

import os
import random
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from rich.console import Console

from pamiqx.api import ObservationSpec
from pamiqx.builtin.representations import PixelsPlugin, RandomOptions, RandomPlugin
from pamiqx.checkpoint import list_checkpoints, load_checkpoint
from pamiqx.experiment import load_experiment
from pamiqx.plugins.manager import load_plugins
from pamiqx.runtime.session import run_experiment
from pamiqx.testing import (
    RepresentationSetup,
    check_representation_contract,
    check_representation_round_trip,
)
from tests.fake_dists import write_distribution
from tests.runtime_helpers import install_recorder, tiny_maze

ROOT = Path(__file__).resolve().parents[1]
EXPERIMENTS = ROOT / "experiments"

# A stage that learns something simple (the mean of the frames it has trained
# on, subtracted from each pooled frame) on its own schedule, and counts calls.
CENTRING = '''
from typing import Any

import attrs
import torch

import pamiqx
from pamiqx.api import ObservationSpec, Representation, RepresentationPlugin

CALLS = {"encoded": 0, "observed": 0, "trained": 0}


@attrs.frozen
class Options:
    train_every: int = 48


class Centring(Representation):
    def __init__(self, train_every: int) -> None:
        self.spec = ObservationSpec((12,), "float32", "vector")
        self.train_every = train_every
        self.mean = torch.zeros(12)
        self.frames: list[torch.Tensor] = []
        self.seen = 0

    def modules(self) -> dict[str, torch.nn.Module]:
        return {}

    def _pool(self, raw: torch.Tensor) -> torch.Tensor:
        x = raw.float().permute(0, 3, 1, 2) / 255.0
        return torch.nn.functional.adaptive_avg_pool2d(x, 2).flatten(1)

    def encode(self, observations: torch.Tensor) -> torch.Tensor:
        CALLS["encoded"] += observations.shape[0]
        return self._pool(observations) - self.mean

    def observe(self, observations: torch.Tensor) -> None:
        CALLS["observed"] += observations.shape[0]
        self.frames.append(self._pool(observations))
        self.seen += observations.shape[0]

    def update(self) -> dict[str, float]:
        if sum(f.shape[0] for f in self.frames) < self.train_every:
            return {}
        CALLS["trained"] += 1
        batch = torch.cat(self.frames)
        self.frames = []
        self.mean = 0.5 * self.mean + 0.5 * batch.mean(0)
        return {"mean_norm": float(self.mean.norm()), "frames": float(self.seen)}

    def state_dict(self) -> dict[str, Any]:
        return {"mean": self.mean.clone(), "frames": list(self.frames), "seen": self.seen}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.mean = state["mean"]
        self.frames = list(state["frames"])
        self.seen = int(state["seen"])


class CentringPlugin(RepresentationPlugin):
    """Pooled colours minus their running mean (a test stage)."""

    name = "centring"
    Options = Options

    def build(self, options: Any, context: Any, observation_spec: Any) -> Representation:
        return Centring(options.train_every)


@pamiqx.hookimpl
def pamiqx_register_representations():
    return [CentringPlugin]
'''


def _run(path: Path, *overrides: str, resume: str | None = None) -> int:
    manager = load_plugins()
    resolved = load_experiment(path, list(overrides), manager)
    return run_experiment(
        resolved, manager, resume=resume, console=Console(file=open(os.devnull, "w"))
    )


def _with_stage(toml: str, plugin: str, encoder: str) -> str:
    """Give a tiny maze experiment a representation and the encoder for its latents."""
    toml = toml.replace(
        '[models.encoder]\nplugin = "conv-encoder"\nfeature_dim = 32\nchannels = [8, 16, 16]',
        f'[models.encoder]\nplugin = "{encoder}"\nfeature_dim = 32',
    )
    return toml + f'\n[representation]\nplugin = "{plugin}"\n'


@pytest.mark.parametrize(
    "setup",
    [
        RepresentationSetup(PixelsPlugin, learns=False, rounds=4),
        RepresentationSetup(RandomPlugin, RandomOptions(latent_dim=16), learns=False, rounds=4),
        RepresentationSetup(
            RandomPlugin,
            RandomOptions(latent_dim=8),
            observation_spec=ObservationSpec((5,), "float32", "vector"),
            learns=False,
            rounds=4,
        ),
    ],
    ids=["pixels", "random-image", "random-vector"],
)
def test_builtin_stages_pass_the_contract(setup: RepresentationSetup) -> None:
    check_representation_contract(setup)


def test_the_round_trip_check_catches_a_stage_that_forgets_pending_frames(
    dist_root: Path,
) -> None:
    write_distribution(
        dist_root, "pamiqx-centring", "1.0", {"pamiqx_centring": CENTRING}, {"c": "pamiqx_centring"}
    )
    import pamiqx_centring  # type: ignore[import-not-found]

    setup = RepresentationSetup(pamiqx_centring.CentringPlugin, batch=8, rounds=5)
    check_representation_round_trip(setup, rounds=5)
    # Its state holds the frames not trained on yet; a stage that drops them resumes differently.
    keeps = pamiqx_centring.Centring.state_dict
    pamiqx_centring.Centring.state_dict = lambda self: {**keeps(self), "frames": []}
    try:
        with pytest.raises(AssertionError, match=r"trains differently|encodes differently"):
            check_representation_round_trip(setup, rounds=5)
    finally:
        pamiqx_centring.Centring.state_dict = keeps


def test_random_stage_feeds_policy_and_rollout_with_latents(
    dist_root: Path, tmp_path: Path, write_toml: Callable[..., Path]
) -> None:
    logs = tmp_path / "logs"
    toml = _with_stage(tiny_maze(logs, max_steps=128, checkpoint_every=64), "random", "mlp-encoder")
    path = write_toml(toml + "latent_dim = 24\n")
    assert _run(path) == 0
    [run_dir] = (logs / "tiny").iterdir()
    state, _ = load_checkpoint(list_checkpoints(run_dir)[-1], "tiny")
    assert state["collector"]["rollout"]["last_observations"].shape == (2, 24)
    assert state["collector"]["rollout"]["last_observations"].dtype == torch.float32
    assert set(state["representation"]) == {"encoder"}


def test_each_observation_is_encoded_once_and_a_resumed_run_continues_exactly(
    dist_root: Path, tmp_path: Path, write_toml: Callable[..., Path]
) -> None:
    install_recorder(dist_root)
    write_distribution(
        dist_root, "pamiqx-centring", "1.0", {"pamiqx_centring": CENTRING}, {"c": "pamiqx_centring"}
    )
    import pamiqx_centring  # type: ignore[import-not-found]
    import pamiqx_recorder  # type: ignore[import-not-found]

    def metrics(after: int) -> list[tuple[int, dict[str, float]]]:
        return [
            (s, {k: v for k, v in m.items() if not k.startswith("perf/")})
            for s, m in pamiqx_recorder.METRICS
            if s > after
        ]

    toml = _with_stage(tiny_maze(tmp_path / "a", max_steps=192), "centring", "mlp-encoder")
    assert _run(write_toml(toml, "a.toml")) == 0
    # 2 worlds: their first observations, then one new observation per world and step.
    assert pamiqx_centring.CALLS == {"encoded": 2 + 192, "observed": 2 + 192, "trained": 3}
    whole = metrics(after=64)
    assert any("representation/mean_norm" in m for _, m in whole)

    pamiqx_recorder.METRICS.clear()
    toml = _with_stage(
        tiny_maze(tmp_path / "b", max_steps=64, checkpoint_every=64), "centring", "mlp-encoder"
    )
    path = write_toml(toml, "b.toml")
    assert _run(path) == 0
    pamiqx_recorder.METRICS.clear()
    assert _run(path, "run.max_steps=192", resume="latest") == 0
    assert metrics(after=64) == whole


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_a_jepa_run_survives_kill_9_and_resumes(tmp_path: Path) -> None:
    """The small jepa configuration with RND: killed mid-run, resumed from its last checkpoint."""
    logs = tmp_path / "logs"
    overrides = [
        "run.max_steps=512",
        "run.checkpoint_every=128",
        # A smaller buffer: one training call is 4 steps of 32 frames instead of 16.
        "representation.buffer_size=128",
        "run.device=cpu",
        "policy.rollout_steps=128",
        "policy.minibatch_size=128",
        "tracking.enabled=false",
        f"run.log_dir={logs}",
    ]
    command = [sys.executable, "-m", "pamiqx", "run", str(EXPERIMENTS / "jepa-rnd-maze.toml")]
    proc = subprocess.Popen(
        [*command, *overrides], stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT, cwd=ROOT
    )
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline and not list(logs.glob("jepa-rnd-maze/*/checkpoints/step-*")):
        time.sleep(0.1)
    time.sleep(random.uniform(0.0, 2.0))  # somewhere mid-run, possibly mid-checkpoint
    proc.kill()
    proc.wait()
    [run_dir] = (logs / "jepa-rnd-maze").iterdir()
    killed_at = load_checkpoint(list_checkpoints(run_dir)[-1], "jepa-rnd-maze")[0]["step"]
    assert 0 < killed_at < 512
    resumed = subprocess.run(
        [*command, *overrides, "--resume", "latest"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=600,
    )
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    state, meta = load_checkpoint(list_checkpoints(run_dir)[-1], "jepa-rnd-maze")
    assert meta["step"] == state["step"] == 512
    # The stage's whole state travelled: weights, EMA target, optimiser, buffer, counters.
    assert state["representation"], "the jepa stage saved no state"
