"""Tests of the mechanisms that own the policy network: unified, ttt and ttt-e2e."""

from __future__ import annotations

from collections.abc import Iterator
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

from pamiqx.api import ActionSpec, BuildContext, ObservationSpec, Transitions
from pamiqx.testing import ContractSetup, TrainingHarness, check_curiosity_contract

MULTI = ActionSpec("multi_discrete", (3, 3, 2))
SMALL: dict[str, Any] = {
    "latent_dim": 16,
    "hidden_dim": 32,
    "internal_dim": 4,
    "encoder_channels": (16, 32),
}
TTT_SMALL: dict[str, Any] = {**SMALL, "ttt_dim": 8}
IMAGES = ObservationSpec((16, 16, 3), "uint8", "image")


@pytest.fixture(autouse=True, scope="module")
def _one_thread() -> Iterator[None]:
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


def _build(plugin: Any, options: Any, action_spec: ActionSpec = MULTI) -> Any:
    torch.manual_seed(0)
    return plugin().build(options, BuildContext("t", 0), IMAGES, action_spec)


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
            _, _, surprisal = network.core(torch.cat(inputs, dim=-1), parts["core"])
            out.append(network.excitatory_reward(surprisal))
            step = network(batch.observations[t], hidden)
            hidden = network.fold_action(step.hidden, batch.actions[t], None)
    return torch.stack(out)


def test_contract_unified() -> None:
    check_curiosity_contract(ContractSetup(UnifiedPlugin, UnifiedOptions(**SMALL)))


def test_contract_unified_multi_discrete() -> None:
    check_curiosity_contract(
        ContractSetup(UnifiedPlugin, UnifiedOptions(**SMALL), action_spec=MULTI)
    )


def test_contract_ttt() -> None:
    """Every check; novelty is tested on the excitatory part of the surprisal (see CURIOSITY.md)."""
    check_curiosity_contract(ContractSetup(TTTPlugin, TTTOptions(**TTT_SMALL)), _excitatory)


def test_contract_ttt_e2e() -> None:
    options = TTTE2EOptions(**TTT_SMALL, encoder_feature_dim=32)
    check_curiosity_contract(ContractSetup(TTTE2EPlugin, options), _excitatory)


@pytest.mark.parametrize(
    "plugin,options",
    [(UnifiedPlugin, UnifiedOptions(**SMALL)), (TTTPlugin, TTTOptions(**TTT_SMALL))],
)
def test_sequence_replays_the_step_by_step_chain(plugin: Any, options: Any) -> None:
    network = _build(plugin, options).policy_network({})
    steps, batch = 6, 3
    obs = torch.randint(0, 255, (steps, batch, 16, 16, 3), dtype=torch.uint8)
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
    obs = torch.randint(0, 255, (2, 16, 16, 3), dtype=torch.uint8)
    first = network(obs, network.initial_state(2))
    assert torch.equal(first.intrinsic, torch.zeros(2)), (
        "nothing was predicted before the first step"
    )
    parts = network.layout.split(first.hidden)
    expected = (parts["pred"] - network._encode(obs)).pow(2).mean(dim=-1)
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
    obs = torch.randint(0, 255, (5, 1, 16, 16, 3), dtype=torch.uint8)
    hidden = network.initial_state(1)
    fatigue, long_mean = 0.0, None
    c = network.coefficients
    for t in range(5):
        # The reference computation needs no graph; the network's own call below builds one.
        with torch.no_grad():
            parts = network.layout.split(hidden)
            latent = network._encode(obs[t])
            inputs = [latent, parts["action"], parts["internal"], parts["fatigue"] - 0.5]
            _, _, s = network.core(torch.cat(inputs, dim=-1), parts["core"])
        m = float(s.mean())
        long_mean = m if long_mean is None else 0.9999 * long_mean + 0.0001 * m
        fatigue = 0.99 * fatigue + 0.01 * m / long_mean
        expected = float(((torch.relu(c) - torch.relu(-c) * fatigue) * s).mean()) if t else 0.0
        out = network(obs[t], hidden)
        assert float(out.intrinsic) == pytest.approx(expected, rel=1e-4, abs=1e-7)
        hidden = network.fold_action(out.hidden, torch.zeros(1, 3, dtype=torch.long), None)


def test_host_ppo_trains_the_owned_network() -> None:
    """The host's collector and learner drive the network: internal actions kept, aux loss falls."""
    curiosity: UnifiedCuriosity = _build(UnifiedPlugin, UnifiedOptions(**SMALL))
    harness = TrainingHarness(curiosity, IMAGES, MULTI)
    frames = torch.randint(0, 255, (4, 16, 16, 3), dtype=torch.uint8).numpy()
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
        (HierarchicalPlugin, HierarchicalOptions(latent_dim=16, hidden_dim=32, goal_dim=4)),
    ],
)
def test_one_discrete_world_folds_its_action_as_one_hot(plugin: Any, options: Any) -> None:
    """A single world's discrete action, shape (1,), is one action, not a multi-discrete row."""
    network = _build(plugin, options, ActionSpec("discrete", (5,))).policy_network({})
    step = network(torch.zeros(1, 16, 16, 3, dtype=torch.uint8), network.initial_state(1))
    internal = None if step.internal is None else step.internal.sample()
    hidden = network.fold_action(step.hidden, torch.tensor([3]), internal)
    action = network.layout.split(hidden)["action"]
    assert torch.equal(action, torch.tensor([[0.0, 0.0, 0.0, 1.0, 0.0]]))
