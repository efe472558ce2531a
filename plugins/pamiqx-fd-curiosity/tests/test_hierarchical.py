"""Tests of ``hierarchical``: layered forward dynamics and policies in one owned network.

Layer 0 observes the representation stage's latents: ``(32,)`` vectors here, and
``(16, 8)`` tokens (flattened) in the tests that say so.
"""

from __future__ import annotations

from typing import Any

import pytest
import torch
import torch.nn.functional as F
from pamiqx_fd_curiosity.hierarchical import HierarchicalCuriosity
from pamiqx_fd_curiosity.hierarchical_network import HierarchicalNetwork
from pamiqx_fd_curiosity.plugin import HierarchicalOptions, HierarchicalPlugin

from pamiqx.api import ActionSpec, BuildContext, Curiosity, ObservationSpec, Transitions
from pamiqx.testing import ContractSetup, TrainingHarness, check_curiosity_contract

MULTI = ActionSpec("multi_discrete", (3, 3, 2))
VECTORS = ObservationSpec((32,), "float32", "vector")
TOKENS = ObservationSpec((16, 8), "float32", "tokens")
SMALL: dict[str, Any] = {"hidden_dim": 32, "goal_dim": 4, "period": 2}


def _build(
    action_spec: ActionSpec = MULTI, spec: ObservationSpec = VECTORS, **options: Any
) -> HierarchicalCuriosity:
    torch.manual_seed(0)
    built = HierarchicalPlugin().build(
        HierarchicalOptions(**{**SMALL, **options}), BuildContext("t", 0), spec, action_spec
    )
    assert isinstance(built, HierarchicalCuriosity)
    return built


def _actions(spec: ActionSpec, *lead: int) -> torch.Tensor:
    if spec.kind == "discrete":
        return torch.randint(0, spec.nvec[0], lead)
    return torch.stack([torch.randint(0, n, lead) for n in spec.nvec], dim=-1)


def _latents(*lead: int, spec: ObservationSpec = VECTORS) -> torch.Tensor:
    return torch.randn(*lead, *spec.shape)


def _top_layer(curiosity: Curiosity, batch: Transitions) -> torch.Tensor:
    assert isinstance(curiosity, HierarchicalCuriosity)
    return curiosity.top_layer_errors(batch)


@pytest.mark.parametrize(
    "spec", [ActionSpec("discrete", (4,)), MULTI], ids=["discrete", "multi-discrete"]
)
def test_contract(spec: ActionSpec) -> None:
    """Every check; novelty is tested on the top layer's own error (c_top = +1, unblended)
    at each next observation, scored where that observation ends a top-layer period."""
    check_curiosity_contract(
        ContractSetup(
            HierarchicalPlugin,
            HierarchicalOptions(**SMALL),
            observation_spec=VECTORS,
            action_spec=spec,
        ),
        _top_layer,
    )


def _warm_state(network: HierarchicalNetwork, spec: ActionSpec, batch: int) -> torch.Tensor:
    """A state reached by acting a few steps (a valid counter, pending predictions, goals)."""
    hidden = network.initial_state(batch)
    with torch.no_grad():
        for _ in range(3):
            out = network(_latents(batch), hidden)
            hidden = network.fold_action(out.hidden, _actions(spec, batch), out.internal.sample())
    return hidden


@pytest.mark.parametrize(
    "spec,layers", [(MULTI, 2), (ActionSpec("discrete", (4,)), 3)], ids=["2-layers", "3-layers"]
)
def test_sequence_replays_the_step_by_step_chain(spec: ActionSpec, layers: int) -> None:
    network = _build(spec, num_layers=layers).hierarchical
    steps, batch = 9, 3
    obs = _latents(steps, batch)
    actions = _actions(spec, steps, batch)
    internal = torch.randn(steps, batch, network.internal_action_dim)
    resets = torch.zeros(steps, batch, dtype=torch.bool)
    resets[4, 1] = True
    resets[6, 2] = True
    hidden0 = _warm_state(network, spec, batch)
    seq = network.forward_sequence(obs, hidden0, resets, actions, internal)
    hidden = hidden0
    log_probs, entropies, values = [], [], []
    for t in range(steps):
        out = network(obs[t], hidden, resets[t])
        log_probs.append(out.log_prob(actions[t], internal[t]))
        entropies.append(out.entropy())
        values.append(out.values["int"])
        hidden = network.fold_action(out.hidden, actions[t], internal[t])
    flat = internal.flatten(0, 1)
    assert torch.allclose(
        seq.log_prob(actions.flatten(0, 1), flat), torch.cat(log_probs), atol=1e-5
    )
    assert torch.allclose(seq.entropy(), torch.cat(entropies), atol=1e-5)
    assert torch.allclose(seq.values["int"], torch.cat(values), atol=1e-5)
    assert torch.allclose(seq.hidden, hidden, atol=1e-5)
    assert seq.aux_loss is not None and seq.aux_loss.requires_grad
    assert {f"hierarchical/error_{i}" for i in range(layers)} <= set(seq.metrics)


def test_goal_is_held_between_acting_steps_and_counts_only_there() -> None:
    network = _build(period=4).hierarchical
    goal = network.layout.slice("goal1")
    batch = 2
    hidden = network.initial_state(batch)
    resets = torch.zeros(10, batch, dtype=torch.bool)
    resets[6, 1] = True  # row 1 restarts: its top layer acts at once
    acted = []
    for t in range(10):
        with torch.no_grad():
            out = network(_latents(batch), hidden, resets[t])
            actions = _actions(MULTI, batch)
            z = out.internal.sample()
            extra = out.log_prob(actions, z) - out.dist.log_prob(actions)
            extra_entropy = out.entropy() - out.dist.entropy()
            held = out.hidden[:, goal]
            after = network.fold_action(out.hidden, actions, z)[:, goal]
        acting = out.internal.acting[:, 0]
        acted.append(acting)
        assert torch.equal(z[~acting], held[~acting]), "a held goal was resampled"
        assert torch.equal(after[~acting], held[~acting]), "a held goal changed"
        assert torch.equal(after[acting], z[acting]), "the chosen goal was not stored"
        assert torch.equal(extra[~acting], torch.zeros_like(extra[~acting]))
        assert torch.equal(extra_entropy[~acting], torch.zeros_like(extra_entropy[~acting]))
        assert bool((extra[acting] != 0).all()) and bool((extra_entropy[acting] != 0).all())
        hidden = network.fold_action(out.hidden, actions, z)
    expected = torch.zeros(10, batch, dtype=torch.bool)
    expected[[0, 4, 8], 0] = True
    expected[[0, 4, 6], 1] = True
    assert torch.equal(torch.stack(acted), expected)


def test_reward_follows_the_blended_formula_on_set_predictions() -> None:
    """c = [-1, +1], blend 0.5: r_0 = 0.5 * (-e_0) + 0.5 * e_1 where the top acts."""
    network = _build(ActionSpec("discrete", (4,)), blend=0.5).hierarchical
    layout = network.layout
    batch = 2
    obs = _latents(batch)
    parts = layout.split(torch.zeros(batch, network.hidden_dim))
    parts = {k: torch.randn_like(v) for k, v in parts.items()}
    parts["action"] = F.one_hot(torch.tensor([1, 3]), 4).float()
    parts["valid0"] = torch.ones(batch, 1)
    parts["valid1"] = torch.ones(batch, 1)
    x0 = network.encode(obs)
    layer0 = network.layers[0]
    fd0 = layer0.fd_cell(torch.cat([x0, parts["action"]], dim=-1), parts["fd0"])
    x1 = F.layer_norm(fd0, (32,))
    e0 = (x0 - parts["pred0"]).pow(2).mean(dim=-1)
    e1 = (x1 - parts["pred1"]).pow(2).mean(dim=-1)
    with torch.no_grad():
        for counter, expected in [(0.0, 0.5 * -e0 + 0.5 * e1), (1.0, 0.5 * -e0)]:
            parts["step"] = torch.full((batch, 1), counter)
            out = network(obs, layout.join(parts))
            assert torch.allclose(out.intrinsic, expected, atol=1e-6), counter
        # Row 1 starts an episode: nothing was predicted for it.
        out = network(obs, layout.join(parts), reset=torch.tensor([False, True]))
        assert float(out.intrinsic[1]) == 0.0 and float(out.intrinsic[0]) != 0.0
        parts["valid1"] = torch.zeros(batch, 1)
        parts["step"] = torch.zeros(batch, 1)
        out = network(obs, layout.join(parts))
        assert torch.allclose(out.intrinsic, 0.5 * -e0, atol=1e-6)


def test_runs_in_float32_under_autocast() -> None:
    network = _build().hierarchical
    hidden = network.initial_state(2)
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        out = network(_latents(2), hidden)
        folded = network.fold_action(out.hidden, _actions(MULTI, 2), out.internal.sample())
    assert out.hidden.dtype == folded.dtype == torch.float32
    assert out.values["int"].dtype == out.internal.mean.dtype == torch.float32


def test_host_ppo_trains_the_owned_network() -> None:
    """The host's collector and learner drive the network: latent actions held, aux loss falls."""
    curiosity = _build()
    harness = TrainingHarness(curiosity, VECTORS, MULTI)
    frames = _latents(4).numpy()
    batch = harness.collect(lambda t: frames[[t % 4, (t + 1) % 4]])
    assert batch.internal.abs().sum() > 0, "latent actions were not stored"
    # Held between the top layer's acting steps (every 2 steps here).
    assert torch.equal(batch.internal[1::2], batch.internal[0::2])
    assert batch.rewards_int_online[1:].abs().sum() > 0, "the network's rewards did not arrive"
    metrics = harness.train(batch)
    first = metrics["loss/aux"]
    assert "hierarchical/error_1" in metrics
    for _ in range(5):
        last = harness.train(batch)["loss/aux"]
    assert last < first


def test_tokens_are_observed_whole() -> None:
    """Layer 0 observes the flattened (16, 8) tokens and predicts all 128 values of them."""
    curiosity = _build(spec=TOKENS)
    network = curiosity.hierarchical
    layer0 = network.layers[0]
    assert layer0.fd_head.out_features == 128
    tokens = _latents(2, spec=TOKENS)
    assert torch.equal(network.encode(tokens), tokens.reshape(2, 128))
    hidden = network.initial_state(2)
    with torch.no_grad():
        first = network(tokens, hidden)
        hidden = network.fold_action(first.hidden, _actions(MULTI, 2), first.internal.sample())
        pred = network.layout.split(hidden)["pred0"].clone()
        second = network(tokens, hidden)
    # Both layers act at step 0 of the cycle; at step 1 only layer 0 scores its prediction.
    expected = 0.5 * -(pred - tokens.reshape(2, 128)).pow(2).mean(dim=-1)
    assert torch.allclose(second.intrinsic, expected, atol=1e-6)


def test_host_ppo_trains_the_owned_network_on_tokens() -> None:
    curiosity = _build(spec=TOKENS)
    harness = TrainingHarness(curiosity, TOKENS, MULTI)
    frames = _latents(4, spec=TOKENS).numpy()
    batch = harness.collect(lambda t: frames[[t % 4, (t + 1) % 4]])
    first = harness.train(batch)["loss/aux"]
    for _ in range(5):
        last = harness.train(batch)["loss/aux"]
    assert last < first
