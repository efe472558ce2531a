"""The reference's training regime (replay windows) and PPO settings, as ``[policy]`` options."""

from __future__ import annotations

import io
import math
import os
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch

from pamiqx.api import ActionSpec, MLPEncoder, ObservationSpec
from pamiqx.builtin.curiosity import NoCuriosity
from pamiqx.experiment import load_experiment
from pamiqx.learner.advantages import (
    IntrinsicRewardNormalizer,
    compute_advantages,
    compute_gae,
    normalize_advantages,
)
from pamiqx.learner.batch import RolloutBatch
from pamiqx.learner.loss import ppo_loss
from pamiqx.learner.optimizers import make_optimizer
from pamiqx.learner.options import PPOOptions
from pamiqx.learner.ppo import PPOLearner
from pamiqx.learner.replay import STEP_FIELDS, ReplayBuffer
from pamiqx.learner.sub_actions import sub_action_entropy, sub_action_log_probs
from pamiqx.models.actor_critic import ActorCritic
from pamiqx.plugins.manager import load_plugins
from pamiqx.runtime.agent import PolicyAgent
from pamiqx.runtime.collector import Collector
from pamiqx.runtime.rollout import Rollout
from pamiqx.runtime.session import run_experiment
from tests.runtime_helpers import install_recorder, tiny_maze

ROOT = Path(__file__).resolve().parents[1]
PRESET = ROOT / "experiments" / "reference" / "ppo.toml"
VECTORS = ObservationSpec((2,), "float32", "vector")
MULTI = ActionSpec("multi_discrete", (3, 2))
ENVS, EVERY = 2, 8


def _options(**changes: object) -> PPOOptions:
    values: dict[str, object] = {
        "regime": "replay-windows",
        "rollout_steps": EVERY,
        "train_every": EVERY,
        "replay_size": 24,
        "windows": 4,
        "window_length": 8,
        "minibatch_size": 16,
        "lr": 1e-3,
        "multi_discrete_ratio": "per-action",
    }
    values.update(changes)
    return PPOOptions(**values)  # type: ignore[arg-type]


def _parts(options: PPOOptions, seed: int = 0) -> tuple[Collector, PPOLearner]:
    torch.manual_seed(seed)
    policy = ActorCritic(MLPEncoder(2, 8, (8,)), ("multi_discrete", (3, 2)), 8, hidden=(8,))
    cpu = torch.device("cpu")
    agent = PolicyAgent(policy, NoCuriosity("cpu"), ENVS, cpu)
    rollout = lambda: Rollout(options.rollout_steps, ENVS, VECTORS, MULTI, policy.hidden_dim)  # noqa: E731
    learner = PPOLearner(policy, options, cpu, generator=torch.Generator().manual_seed(seed))
    return Collector(agent, rollout, cpu), learner


class _World:
    """Two worlds observing a noisy position; episodes end every 5 steps."""

    def __init__(self) -> None:
        self.rng = np.random.default_rng(0)
        self.t = 0

    def observe(self) -> tuple[np.ndarray, np.ndarray]:
        obs = self.rng.normal(size=(ENVS, 2)).astype(np.float32)
        return obs, np.full(ENVS, self.t % 5 == 0)


def _step(
    collector: Collector, world: _World, obs: np.ndarray, starts: np.ndarray
) -> tuple[np.ndarray, np.ndarray, RolloutBatch | None]:
    actions = collector.act(obs, starts)
    world.t += 1
    rewards = (actions[:, 0] == 1).astype(np.float32)
    obs, starts = world.observe()
    return obs, starts, collector.complete(obs, rewards, starts)


def _batches(collector: Collector, count: int) -> list[RolloutBatch]:
    world = _World()
    obs, starts = world.observe()
    out: list[RolloutBatch] = []
    while len(out) < count:
        obs, starts, batch = _step(collector, world, obs, starts)
        if batch is not None:
            out.append(batch)
    return out


def _steps(first: int, count: int) -> dict[str, torch.Tensor]:
    """Steps numbered ``first .. first + count - 1`` in every field (hidden: the number too)."""
    index = torch.arange(first, first + count, dtype=torch.float32).unsqueeze(1).expand(-1, ENVS)
    steps = {name: index.clone() for name in STEP_FIELDS}
    steps["hidden"] = index.unsqueeze(-1).expand(-1, -1, 3).clone()
    steps["dones"] = torch.zeros(count, ENVS, dtype=torch.bool)
    steps["episode_starts"] = torch.zeros(count, ENVS, dtype=torch.bool)
    return steps


# --- the buffer ---------------------------------------------------------------------------


def test_buffer_keeps_the_last_steps_fifo_with_their_hidden_states() -> None:
    buffer = ReplayBuffer(5)
    for first in (0, 3, 6):
        buffer.add(
            _steps(first, 3), {"ext": torch.full((ENVS,), 100.0 + first), "int": torch.zeros(ENVS)}
        )
    assert buffer.size == 5 and buffer.num_envs == ENVS
    torch.testing.assert_close(buffer.steps["log_probs"][:, 0], torch.arange(4.0, 9.0))
    torch.testing.assert_close(buffer.steps["hidden"][:, 1, 2], torch.arange(4.0, 9.0))
    # A window ending inside the buffer bootstraps from the stored next value; one ending
    # at the newest step from the value handed over with it.
    drawn = buffer.windows(torch.tensor([0, 2]), torch.tensor([0, 1]), 3)
    torch.testing.assert_close(drawn.sequences.hidden[0, :, 0], torch.tensor([4.0, 6.0]))
    torch.testing.assert_close(drawn.bootstrap["ext"], torch.tensor([7.0, 106.0]))
    with pytest.raises(ValueError, match="window starts"):
        buffer.windows(torch.tensor([3]), torch.tensor([0]), 3)


def test_real_steps_enter_the_buffer_in_order_and_the_oldest_leave() -> None:
    options = _options(window_length=24)  # no update before the buffer is full
    collector, learner = _parts(options)
    batches = _batches(collector, 4)
    for batch in batches:
        learner.train(batch, torch.zeros_like(batch.rewards_ext))
    assert learner.updates == 2  # the third and fourth calls found 24 stored steps
    assert learner.replay is not None and learner.replay.size == 24
    stored = learner.replay.steps
    kept = batches[1:]  # 3 x 8 = 24 steps: the first batch was dropped
    torch.testing.assert_close(stored["hidden"], torch.cat([b.hidden for b in kept]))
    torch.testing.assert_close(stored["observations"], torch.cat([b.observations for b in kept]))
    torch.testing.assert_close(learner.replay.next_values["int"], batches[-1].last_values["int"])


def test_windows_start_from_the_stored_hidden_state_and_equal_a_recomputation() -> None:
    options = _options(replay_size=32, window_length=32, intrinsic_normalisation="none")
    collector, learner = _parts(options)
    batches = _batches(collector, 3)
    for batch in batches:
        learner.train(batch, torch.ones_like(batch.rewards_ext))
    assert learner.updates == 0
    replay = learner.replay
    assert replay is not None and replay.size == 24
    drawn = replay.windows(torch.tensor([3, 16, 5]), torch.tensor([0, 1, 1]), 8)
    seq = drawn.sequences
    # The policy has not changed since acting: replaying each window from its stored
    # state gives the acting-time log-probabilities and values (the state is right).
    with torch.no_grad():
        out = learner.policy.forward_sequence(
            seq.observations, seq.hidden[0], seq.episode_starts.float(), seq.actions, None
        )
        joint = out.log_prob(seq.actions.flatten(0, 1), None).reshape(8, 3)
        per_action = sub_action_log_probs(out, seq.actions.flatten(0, 1), None).reshape(8, 3, 2)
    torch.testing.assert_close(joint, seq.log_probs, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(
        out.values["ext"].reshape(8, 3), seq.values["ext"], atol=1e-5, rtol=1e-5
    )
    assert seq.sub_log_probs is not None
    torch.testing.assert_close(per_action, seq.sub_log_probs, atol=1e-5, rtol=1e-5)
    # A fresh recurrent state instead of the stored one gives other numbers.
    with torch.no_grad():
        fresh = learner.policy.forward_sequence(
            seq.observations, torch.zeros_like(seq.hidden[0]), None, seq.actions, None
        )
    assert not torch.allclose(fresh.values["ext"].reshape(8, 3)[0], seq.values["ext"][0])
    # Per-window GAE bootstraps from the step after the window.
    all_values = torch.cat([b.values["int"] for b in batches])
    adv, _ = compute_gae(
        torch.ones(8), all_values[3:11, 0], torch.zeros(8), all_values[11, 0], 0.99, 0.95, False
    )
    adv_w, _ = compute_gae(
        drawn.rewards_int,
        seq.values["int"],
        drawn.dones.float(),
        drawn.bootstrap["int"],
        0.99,
        0.95,
        False,
    )
    torch.testing.assert_close(adv_w[:, 0], adv)
    # The window [16, 24) ends at the newest step: the hand-over's bootstrap value.
    torch.testing.assert_close(drawn.bootstrap["int"][1], batches[-1].last_values["int"][1])


def test_a_training_call_happens_exactly_every_train_every_steps() -> None:
    options = _options()
    collector, learner = _parts(options)
    world = _World()
    obs, starts = world.observe()
    calls: list[int] = []
    for step in range(1, 8 * EVERY + 3):
        obs, starts, batch = _step(collector, world, obs, starts)
        if batch is not None:
            assert batch.rewards_ext.shape == (EVERY, ENVS)
            metrics = learner.train(batch, torch.zeros_like(batch.rewards_ext))
            calls.append(step)
            assert metrics["replay/size"] == min(len(calls) * EVERY, 24)
    assert calls == [EVERY * k for k in range(1, 9)]
    assert learner.updates == 8  # window_length 8 fits from the first call on


def test_train_every_and_rollout_steps_must_agree_naming_both_keys(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"policy\.rollout_steps \(16\) and policy\.train_every"):
        PPOOptions(regime="replay-windows", rollout_steps=16, train_every=8)
    with pytest.raises(ValueError, match=r"policy\.window_length \(300\).*policy\.replay_size"):
        PPOOptions(
            regime="replay-windows",
            rollout_steps=8,
            train_every=8,
            window_length=300,
            replay_size=200,
        )
    PPOOptions(rollout_steps=16, train_every=8)  # the rollouts regime ignores train_every


def test_state_round_trip_gives_an_identical_next_update() -> None:
    options = _options(optimizer="sgd-nesterov", weight_decay=1e-4, advantage_centering=False)
    collector, learner = _parts(options)
    batches = _batches(collector, 5)
    for batch in batches[:4]:
        learner.train(batch, torch.rand(batch.rewards_ext.shape))
    buffer = io.BytesIO()
    torch.save({"policy": learner.policy.state_dict(), "learner": learner.state_dict()}, buffer)
    _, twin = _parts(options, seed=1)
    buffer.seek(0)
    saved = torch.load(buffer, weights_only=False)
    twin.policy.load_state_dict(saved["policy"])
    twin.load_state_dict(saved["learner"])
    intrinsic = torch.rand(batches[4].rewards_ext.shape)
    expected = learner.train(batches[4], intrinsic)
    got = twin.train(batches[4], intrinsic)
    assert got == expected
    for a, b in zip(learner.policy.parameters(), twin.policy.parameters(), strict=True):
        assert torch.equal(a, b)
    rollouts = PPOLearner(twin.policy, PPOOptions(), torch.device("cpu"))
    with pytest.raises(ValueError, match="no replay buffer"):
        twin.load_state_dict(rollouts.state_dict())


# --- the reference settings change the loss as computed by hand ----------------------------


def _loss(
    new_lp: torch.Tensor,
    old_lp: torch.Tensor,
    adv: torch.Tensor,
    options: PPOOptions,
    new_v: float = 0.0,
    old_v: float = 0.0,
    ret: float = 0.0,
) -> float:
    b = adv.shape[0]

    def values(x: float) -> dict[str, torch.Tensor]:
        return {"ext": torch.full((b,), x)}

    loss, _ = ppo_loss(
        new_lp, old_lp, adv, values(new_v), values(old_v), values(ret), torch.zeros(b), options
    )
    return loss.item()


def test_value_clip_changes_the_value_loss_as_by_hand() -> None:
    plain = PPOOptions(value_coef=1.0, entropy_coef=0.0)
    clipped = PPOOptions(value_coef=1.0, entropy_coef=0.0, value_clip_range=0.1)
    z = torch.zeros(1)
    # new 0.5, old 0, target 1: unclipped 0.25; clipped prediction 0.1 -> 0.81; max wins.
    assert _loss(z, z, z, plain, 0.5, 0.0, 1.0) == pytest.approx(0.5 * 0.25)
    assert _loss(z, z, z, clipped, 0.5, 0.0, 1.0) == pytest.approx(0.5 * 0.81)


def test_advantages_without_centring_are_divided_by_the_std_only() -> None:
    adv = torch.tensor([1.0, 3.0])
    std = math.sqrt(2.0)  # unbiased std of (1, 3)
    torch.testing.assert_close(normalize_advantages(adv, center=False), adv / (std + 1e-8))
    torch.testing.assert_close(normalize_advantages(adv), torch.tensor([-1.0, 1.0]) / (std + 1e-8))
    # With ratios of 1 the policy loss is -mean(advantage): 0 centred, -(4 / sqrt 2) / 2 not.
    z = torch.zeros(2)
    for centring, expected in ((True, 0.0), (False, -2.0 / std)):
        options = PPOOptions(
            value_coef=0.0,
            entropy_coef=0.0,
            gamma_ext=0.0,
            ext_coef=1.0,
            int_coef=0.0,
            advantage_centering=centring,
        )
        out = compute_advantages(
            adv.unsqueeze(1),
            torch.zeros(2, 1),
            {"ext": torch.zeros(2, 1), "int": torch.zeros(2, 1)},
            {"ext": torch.zeros(1), "int": torch.zeros(1)},
            torch.zeros(2, 1),
            IntrinsicRewardNormalizer(),
            options,
        )
        assert _loss(z, z, out.advantages.reshape(-1), options) == pytest.approx(expected, abs=1e-6)


def test_per_action_ratios_are_clipped_one_by_one() -> None:
    options = PPOOptions(clip_range=0.2, value_coef=0.0, entropy_coef=0.0)
    new = torch.log(torch.tensor([[1.5, 0.5]]))
    old = torch.zeros(1, 2)
    adv = torch.ones(1)
    # Per action: min(1.5, 1.2) = 1.2 and min(0.5, 0.8) = 0.5, mean 0.85.
    assert _loss(new, old, adv, options) == pytest.approx(-0.85)
    # Joint: ratio 1.5 * 0.5 = 0.75, min(0.75, 0.8) = 0.75.
    assert _loss(new.sum(-1), old.sum(-1), adv, options) == pytest.approx(-0.75)


def test_per_action_log_probs_split_the_joint_one_and_entropy_is_their_mean() -> None:
    torch.manual_seed(0)
    policy = ActorCritic(MLPEncoder(2, 8, (8,)), ("multi_discrete", (3, 2)), None, hidden=(8,))
    out = policy(torch.randn(4, 2), policy.initial_state(4))
    actions = out.dist.sample()
    columns = sub_action_log_probs(out, actions, None)
    assert columns.shape == (4, 2)
    torch.testing.assert_close(columns.sum(-1), out.log_prob(actions, None))
    entropies = torch.stack([c.entropy() for c in out.dist.categoricals], -1)
    torch.testing.assert_close(sub_action_entropy(out), entropies.mean(-1))
    torch.testing.assert_close(out.entropy(), entropies.sum(-1))


def test_raw_intrinsic_rewards_skip_the_return_normaliser() -> None:
    rewards = torch.full((4, 1), 3.0)
    zeros = {"ext": torch.zeros(4, 1), "int": torch.zeros(4, 1)}
    last = {"ext": torch.zeros(1), "int": torch.zeros(1)}
    for mode in ("return", "none"):
        normalizer = IntrinsicRewardNormalizer()
        options = PPOOptions(intrinsic_normalisation=mode)
        out = compute_advantages(
            torch.zeros(4, 1), rewards, zeros, last, torch.zeros(4, 1), normalizer, options
        )
        if mode == "none":
            torch.testing.assert_close(out.intrinsic_normalized, rewards)
            assert normalizer.rms.count < 2  # untouched
        else:
            assert not torch.allclose(out.intrinsic_normalized, rewards)


def test_sgd_nesterov_optimizer() -> None:
    params = [torch.nn.Parameter(torch.zeros(2))]
    for name in ("sgd-nesterov", "sgd"):
        optimizer = make_optimizer(params, PPOOptions(optimizer=name, lr=1e-4, weight_decay=1e-4))
        assert isinstance(optimizer, torch.optim.SGD)
        group = optimizer.param_groups[0]
        assert (group["momentum"], group["nesterov"], group["weight_decay"]) == (0.9, True, 1e-4)
    assert isinstance(make_optimizer(params, PPOOptions()), torch.optim.Adam)


# --- the preset, and a lock-step run that resumes exactly -----------------------------------


def test_the_preset_holds_the_reference_values(tmp_path: Path) -> None:
    path = tmp_path / "exp.toml"
    path.write_text(f'extends = "{PRESET}"\n' + tiny_maze(tmp_path / "logs").split("[policy]")[0])
    policy = load_experiment(path, [], load_plugins()).experiment.policy
    assert (policy.regime, policy.replay_size, policy.train_every, policy.rollout_steps) == (
        "replay-windows",
        1000,
        128,
        128,
    )
    assert (policy.windows, policy.window_length, policy.epochs) == (32, 256, 1)
    assert (policy.optimizer, policy.lr, policy.weight_decay) == ("sgd-nesterov", 1e-4, 1e-4)
    assert (policy.clip_range, policy.value_clip_range, policy.gae_lambda) == (0.1, 0.1, 0.95)
    assert (policy.value_coef, policy.entropy_coef) == (0.5, 0.01)
    assert policy.normalize_advantages and not policy.advantage_centering
    assert (policy.multi_discrete_ratio, policy.intrinsic_normalisation) == ("per-action", "none")


def _run(
    path: Path, *overrides: str, resume: str | None = None
) -> list[tuple[int, dict[str, float]]]:
    import pamiqx_recorder  # type: ignore[import-not-found]
    from rich.console import Console

    pamiqx_recorder.METRICS.clear()
    manager = load_plugins()
    resolved = load_experiment(path, list(overrides), manager)
    with open(os.devnull, "w") as sink:
        assert run_experiment(resolved, manager, resume=resume, console=Console(file=sink)) == 0
    return [
        (s, {k: v for k, v in m.items() if not k.startswith("perf/")})
        for s, m in pamiqx_recorder.METRICS
    ]


TINY_REPLAY = [
    "policy.rollout_steps=8",
    "policy.train_every=8",
    "policy.replay_size=24",
    "policy.windows=4",
    "policy.window_length=8",
    "policy.minibatch_size=16",
    'environment.action_mode="multi_discrete"',
    "models.policy.recurrent_dim=16",
]


def test_lockstep_run_with_the_preset_resumes_with_identical_metrics(
    dist_root: Path, tmp_path: Path, write_toml: Callable[..., Path]
) -> None:
    install_recorder(dist_root)
    text = tiny_maze(tmp_path / "logs", max_steps=96, checkpoint_every=48)
    text = text.replace("[policy]\nrollout_steps = 32\nepochs = 2\nminibatch_size = 32\n", "")
    path = write_toml(f'extends = "{PRESET}"\n' + text)
    whole = _run(path, *TINY_REPLAY, 'run.log_dir="' + str(tmp_path / "a") + '"')
    assert [s for s, _ in whole if "ppo/updates" in _] == list(range(16, 97, 16))
    assert all(math.isfinite(m["loss/total"]) for s, m in whole if "loss/total" in m)
    first = _run(
        path, *TINY_REPLAY, 'run.log_dir="' + str(tmp_path / "b") + '"', "run.max_steps=48"
    )
    resumed = _run(
        path,
        *TINY_REPLAY,
        'run.log_dir="' + str(tmp_path / "b") + '"',
        "run.max_steps=96",
        resume="latest",
    )
    assert first + resumed == whole
