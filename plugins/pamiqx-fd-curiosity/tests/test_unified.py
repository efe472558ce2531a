"""Tests of the mechanisms that own the policy network: unified, ttt and ttt-e2e.

``unified`` and ``ttt`` take the representation stage's latents (``(32,)``
vectors here, ``(16, 8)`` tokens where a test says so); ``ttt-e2e`` trains its own
encoder on the world's images.
"""

from __future__ import annotations

import math
from typing import Any

import pytest
import torch
from pamiqx_fd_curiosity.plugin import (
    HierarchicalOptions,
    HierarchicalPlugin,
    TTTE2EOptions,
    TTTE2EPlugin,
    TTTOptions,
    TTTPlugin,
    UnifiedOptions,
    UnifiedPlugin,
)
from pamiqx_fd_curiosity.unified import TTTCore, UnifiedCuriosity, UnifiedNetwork

from pamiqx.api import ActionSpec, BuildContext, ObservationSpec, PluginError, Transitions
from pamiqx.testing import ContractSetup, TrainingHarness, check_curiosity_contract

MULTI = ActionSpec("multi_discrete", (3, 3, 2))
SMALL: dict[str, Any] = {"hidden_dim": 32, "internal_dim": 4}
# A delay shorter than the contract's 32-step rollouts, so that windows hold prediction pairs.
TTT_SMALL: dict[str, Any] = {**SMALL, "ttt_dim": 8, "prediction_delay": 4}
VECTORS = ObservationSpec((32,), "float32", "vector")
TOKENS = ObservationSpec((16, 8), "float32", "tokens")
IMAGES = ObservationSpec((16, 16, 3), "uint8", "image")


def _build(
    plugin: Any, options: Any, action_spec: ActionSpec = MULTI, spec: ObservationSpec = VECTORS
) -> Any:
    torch.manual_seed(0)
    return plugin().build(options, BuildContext("t", 0), spec, action_spec)


def _latents(*lead: int, spec: ObservationSpec = VECTORS) -> torch.Tensor:
    return torch.randn(*lead, *spec.shape)


def _excitatory(curiosity: Any, batch: Transitions) -> torch.Tensor:
    """ttt's maximising part: mean(relu(c) * s) of each arriving observation."""
    network: UnifiedNetwork = curiosity.unified
    out = []
    hidden = network.initial_state(batch.shape[1])
    with torch.no_grad():
        for t in range(batch.shape[0]):
            parts = network.layout.split(hidden)
            latent = network._encode(batch.next_observations[t])
            inputs = [latent, parts["action"], parts["internal"], parts["fatigue"] - 0.5]
            _, _, surprisal = network.core.step(torch.cat(inputs, dim=-1), parts["core"], None)
            out.append(network.excitatory_reward(surprisal))
            step = network(batch.observations[t], hidden)
            hidden = network.fold_action(step.hidden, batch.actions[t], None)
    return torch.stack(out)


def test_contract_unified() -> None:
    check_curiosity_contract(
        ContractSetup(UnifiedPlugin, UnifiedOptions(**SMALL), observation_spec=VECTORS)
    )


def test_contract_unified_multi_discrete() -> None:
    check_curiosity_contract(
        ContractSetup(
            UnifiedPlugin, UnifiedOptions(**SMALL), observation_spec=VECTORS, action_spec=MULTI
        )
    )


def test_contract_ttt() -> None:
    """Every check; novelty is tested on the excitatory part of the surprisal (see CURIOSITY.md)."""
    setup = ContractSetup(TTTPlugin, TTTOptions(**TTT_SMALL), observation_spec=VECTORS)
    check_curiosity_contract(setup, _excitatory)


def test_contract_ttt_e2e() -> None:
    """ttt-e2e still trains its own encoder on the world's images (the ``pixels`` stage)."""
    options = TTTE2EOptions(**TTT_SMALL, latent_dim=16, encoder_feature_dim=32)
    check_curiosity_contract(
        ContractSetup(TTTE2EPlugin, options, observation_spec=IMAGES), _excitatory
    )


def test_ttt_e2e_refuses_latents() -> None:
    options = TTTE2EOptions(**TTT_SMALL, latent_dim=16, encoder_feature_dim=32)
    with pytest.raises(PluginError, match=r'vector .*\[representation\] plugin = "pixels"'):
        _build(TTTE2EPlugin, options, spec=VECTORS)


@pytest.mark.parametrize(
    "plugin,options",
    [(UnifiedPlugin, UnifiedOptions(**SMALL)), (TTTPlugin, TTTOptions(**TTT_SMALL))],
)
def test_sequence_replays_the_step_by_step_chain(plugin: Any, options: Any) -> None:
    network = _build(plugin, options).policy_network({})
    steps, batch = 6, 3
    obs = _latents(steps, batch)
    actions = torch.stack([torch.randint(0, n, (steps, batch)) for n in MULTI.nvec], dim=-1)
    internal = torch.randn(steps, batch, 4)
    resets = torch.zeros(steps, batch, dtype=torch.bool)
    resets[3, 1] = True
    hidden0 = torch.randn(batch, network.hidden_dim) * 0.1
    hidden0[:, -1] = 0.0
    seq = network.forward_sequence(obs, hidden0, resets, actions, internal)
    hidden = hidden0
    logits, values, intrinsic = [], [], []
    for t in range(steps):
        out = network(obs[t], hidden, resets[t])
        logits.append(out.dist.log_prob(actions[t]))
        values.append(out.values["int"])
        intrinsic.append(out.intrinsic)
        hidden = network.fold_action(out.hidden, actions[t], internal[t])
    assert torch.allclose(seq.dist.log_prob(actions.flatten(0, 1)), torch.cat(logits), atol=1e-5)
    assert torch.allclose(seq.values["int"], torch.cat(values), atol=1e-5)
    assert torch.allclose(seq.hidden, hidden, atol=1e-5)
    assert seq.aux_loss is not None and seq.aux_loss.requires_grad


def test_unified_reward_is_the_error_of_the_last_prediction() -> None:
    network = _build(UnifiedPlugin, UnifiedOptions(**SMALL)).policy_network({})
    obs = _latents(2)
    first = network(obs, network.initial_state(2))
    assert torch.equal(first.intrinsic, torch.zeros(2)), (
        "nothing was predicted before the first step"
    )
    parts = network.layout.split(first.hidden)
    # The latent is the observation itself: the stage's vector, predicted whole.
    expected = (parts["pred"] - obs).pow(2).mean(dim=-1)
    second = network(obs, first.hidden)
    assert torch.allclose(second.intrinsic, expected, atol=1e-6)


def test_ttt_fast_weights_learn_a_repeated_input() -> None:
    core = TTTCore(input_dim=6, dim=4, output_dim=5, inner_lr=0.5)
    x = torch.randn(1, 6)
    delta = torch.zeros(1, 16)
    surprisals = []
    for _ in range(8):
        _, delta, surprisal = core(x, delta)
        surprisals.append(float(surprisal.detach().sum()))
    assert surprisals[-1] < 0.05 * surprisals[0], surprisals


def test_ttt_reward_follows_the_formula_with_fatigue() -> None:
    curiosity = _build(TTTPlugin, TTTOptions(**TTT_SMALL))
    network: UnifiedNetwork = curiosity.unified
    obs = _latents(5, 1)
    hidden = network.initial_state(1)
    fatigue, long_mean = 0.0, None
    c = network.coefficients
    for t in range(5):
        # The reference computation needs no graph; the network's own call below builds one.
        with torch.no_grad():
            parts = network.layout.split(hidden)
            latent = network._encode(obs[t])
            inputs = [latent, parts["action"], parts["internal"], parts["fatigue"] - 0.5]
            _, _, s = network.core.step(torch.cat(inputs, dim=-1), parts["core"], None)
        m = float(s.mean())
        long_mean = m if long_mean is None else 0.9999 * long_mean + 0.0001 * m
        fatigue = 0.99 * fatigue + 0.01 * m / long_mean
        expected = float(((torch.relu(c) - torch.relu(-c) * fatigue) * s).mean()) if t else 0.0
        out = network(obs[t], hidden)
        assert float(out.intrinsic) == pytest.approx(expected, rel=1e-4, abs=1e-7)
        hidden = network.fold_action(out.hidden, torch.zeros(1, 3, dtype=torch.long), None)


@pytest.mark.parametrize("core", ["gru", "qgru"])
def test_host_ppo_trains_the_owned_network(core: str) -> None:
    """The host's collector and learner drive the network: internal actions kept, aux loss falls."""
    curiosity: UnifiedCuriosity = _build(UnifiedPlugin, UnifiedOptions(**SMALL, core=core))
    harness = TrainingHarness(curiosity, VECTORS, MULTI)
    frames = _latents(4).numpy()
    batch = harness.collect(lambda t: frames[[t % 4, (t + 1) % 4]])
    assert batch.internal.abs().sum() > 0, "internal actions were not stored"
    assert batch.rewards_int_online[1:].abs().sum() > 0, "the network's rewards did not arrive"
    first = harness.train(batch)["loss/aux"]
    for _ in range(5):
        last = harness.train(batch)["loss/aux"]
    assert last < first


@pytest.mark.parametrize(
    "plugin,options",
    [
        (UnifiedPlugin, UnifiedOptions(**SMALL)),
        (HierarchicalPlugin, HierarchicalOptions(hidden_dim=32, goal_dim=4)),
    ],
)
def test_one_discrete_world_folds_its_action_as_one_hot(plugin: Any, options: Any) -> None:
    """A single world's discrete action, shape (1,), is one action, not a multi-discrete row."""
    network = _build(plugin, options, ActionSpec("discrete", (5,))).policy_network({})
    step = network(torch.zeros(1, 32), network.initial_state(1))
    internal = None if step.internal is None else step.internal.sample()
    hidden = network.fold_action(step.hidden, torch.tensor([3]), internal)
    action = network.layout.split(hidden)["action"]
    assert torch.equal(action, torch.tensor([[0.0, 0.0, 0.0, 1.0, 0.0]]))


@pytest.mark.parametrize(
    "plugin,options",
    [(UnifiedPlugin, UnifiedOptions(**SMALL)), (TTTPlugin, TTTOptions(**TTT_SMALL))],
)
def test_tokens_are_predicted_whole(plugin: Any, options: Any) -> None:
    """(16, 8) tokens are flattened: the network predicts all 128 values and scores them."""
    network = _build(plugin, options, spec=TOKENS).policy_network({})
    assert network.predictor.out_features == 128
    tokens = _latents(2, spec=TOKENS)
    with torch.no_grad():
        first = network(tokens, network.initial_state(2))
        hidden = network.fold_action(first.hidden, torch.zeros(2, 3, dtype=torch.long), None)
        pred = network.layout.split(hidden)["pred"]
        second = network(tokens, hidden)
    assert pred.shape == (2, 128)
    if plugin is UnifiedPlugin:
        expected = (pred - tokens.reshape(2, 128)).pow(2).mean(dim=-1)
        assert torch.allclose(second.intrinsic, expected, atol=1e-6)
    else:
        assert bool((second.intrinsic != 0).all()) and bool(torch.isfinite(second.intrinsic).all())


def test_host_ppo_trains_the_owned_network_on_tokens() -> None:
    curiosity: UnifiedCuriosity = _build(UnifiedPlugin, UnifiedOptions(**SMALL), spec=TOKENS)
    harness = TrainingHarness(curiosity, TOKENS, MULTI)
    frames = _latents(4, spec=TOKENS).numpy()
    batch = harness.collect(lambda t: frames[[t % 4, (t + 1) % 4]])
    first = harness.train(batch)["loss/aux"]
    for _ in range(5):
        last = harness.train(batch)["loss/aux"]
    assert last < first


def _warm_state(network: UnifiedNetwork, batch: int, spec: ObservationSpec) -> torch.Tensor:
    """A state after three acting steps: a prediction, a_{t-1} and z_{t-1} are stored."""
    hidden = network.initial_state(batch).double()
    with torch.no_grad():
        for _ in range(3):
            out = network(_latents(batch, spec=spec).double(), hidden)
            actions = torch.stack([torch.randint(0, n, (batch,)) for n in MULTI.nvec], dim=-1)
            hidden = network.fold_action(out.hidden, actions, out.internal.sample())
    return hidden


@pytest.mark.parametrize("core", ["qgru", "qlstm", "gru"])
def test_window_replay_equals_the_step_path(core: str) -> None:
    """forward_sequence (the whole window through the core at once) computes what acting does.

    float64, episode starts at random positions (one at the first step), tokens scored
    with the reference's exponential token average.
    """
    options = UnifiedOptions(
        hidden_dim=16, core=core, internal_dim=3, reward_average="token-exponential"
    )
    network: UnifiedNetwork = _build(UnifiedPlugin, options, spec=TOKENS).policy_network({})
    network.double()
    assert network.core.scans == (core != "gru")
    steps, batch = 9, 4
    generator = torch.Generator().manual_seed(3)
    obs = torch.randn(steps, batch, *TOKENS.shape, generator=generator, dtype=torch.float64)
    actions = torch.stack(
        [torch.randint(0, n, (steps, batch), generator=generator) for n in MULTI.nvec], dim=-1
    )
    internal = torch.randn(steps, batch, 3, generator=generator, dtype=torch.float64)
    resets = (torch.rand(steps, batch, generator=generator) < 0.2).double()
    resets[0, 0] = 1.0
    resets[5, 2] = 1.0
    hidden0 = _warm_state(network, batch, TOKENS)

    seq = network.forward_sequence(obs, hidden0, resets, actions, internal)
    hidden = hidden0
    log_probs, values, means, rewards, predictions = [], [], [], [], []
    for t in range(steps):
        out = network(obs[t], hidden, resets[t])
        log_probs.append(out.log_prob(actions[t], internal[t]))
        values.append(torch.stack([out.values["ext"], out.values["int"]]))
        means.append(out.internal.loc)
        rewards.append(out.intrinsic)
        predictions.append(network.layout.split(out.hidden)["pred"])
        hidden = network.fold_action(out.hidden, actions[t], internal[t])
    flat_actions, flat_internal = actions.flatten(0, 1), internal.flatten(0, 1)
    torch.testing.assert_close(
        seq.log_prob(flat_actions, flat_internal), torch.cat(log_probs), rtol=0, atol=1e-10
    )
    torch.testing.assert_close(
        torch.stack([seq.values["ext"], seq.values["int"]]),
        torch.cat(values, dim=1),
        rtol=0,
        atol=1e-10,
    )
    torch.testing.assert_close(seq.internal.loc, torch.cat(means), rtol=0, atol=1e-10)
    torch.testing.assert_close(seq.hidden, hidden, rtol=0, atol=1e-10)
    assert seq.metrics["unified/reward"] == pytest.approx(float(torch.stack(rewards).mean()))
    # The prediction loss: each prediction against the next latent, within one episode.
    latents = obs.flatten(2).float().double()  # FlatLatent hands the network float32 latents
    errors = [
        (predictions[t - 1] - latents[t]).pow(2).mean(dim=-1) * (1 - resets[t])
        for t in range(1, steps)
    ]
    expected = torch.stack(errors).sum() / (1 - resets[1:]).sum()
    assert seq.aux_loss is not None
    assert float(seq.aux_loss.detach()) == pytest.approx(float(expected.detach()), rel=1e-10)


def test_token_exponential_reward_by_hand() -> None:
    """The reference's token average: sum_i w^i e_i / sum_i w^i, w = exp(-1/16), e_i per token."""
    options = UnifiedOptions(**SMALL, reward_average="token-exponential")
    network = _build(UnifiedPlugin, options, spec=TOKENS).policy_network({})
    tokens = _latents(1, spec=TOKENS)
    with torch.no_grad():
        first = network(tokens, network.initial_state(1))
        hidden = network.fold_action(first.hidden, torch.zeros(1, 3, dtype=torch.long), None)
        pred = network.layout.split(hidden)["pred"].reshape(16, 8)
        second = network(tokens, hidden)
    w = math.exp(-1 / 16)
    per_token = [float((pred[i] - tokens[0, i]).pow(2).mean()) for i in range(16)]
    expected = sum(w**i * e for i, e in enumerate(per_token)) / sum(w**i for i in range(16))
    assert float(second.intrinsic) == pytest.approx(expected, rel=1e-5)
    assert expected != pytest.approx(sum(per_token) / 16, rel=1e-3), "the weights matter here"


def test_internal_entropy_penalty_replaces_the_host_bonus() -> None:
    """``penalty``: the host's bonus sees z's entropy as a constant; the aux loss adds coef * H(z).

    At build z's log-std is 0, so H(z) = Z * (0.5 + 0.5 log(2 pi)) = 4 * 1.4189385 per row.
    """
    steps, batch = 5, 2
    obs = _latents(steps, batch)
    actions = torch.stack([torch.randint(0, n, (steps, batch)) for n in MULTI.nvec], dim=-1)
    internal = torch.randn(steps, batch, 4)
    out = {}
    for mode in ("bonus", "none", "penalty"):
        options = UnifiedOptions(**SMALL, internal_entropy=mode, internal_entropy_coef=0.5)
        network = _build(UnifiedPlugin, options).policy_network({})
        hidden0 = network.initial_state(batch)
        out[mode] = network.forward_sequence(obs, hidden0, None, actions, internal)
    assert out["bonus"].internal.entropy().requires_grad
    assert not out["penalty"].internal.entropy().requires_grad
    assert not out["none"].internal.entropy().requires_grad
    torch.testing.assert_close(out["penalty"].internal.entropy(), out["bonus"].internal.entropy())
    aux = {mode: float(step.aux_loss.detach()) for mode, step in out.items()}
    assert aux["penalty"] - aux["none"] == pytest.approx(0.5 * 4 * 1.4189385, rel=1e-6)
    assert aux["bonus"] == pytest.approx(aux["none"])
