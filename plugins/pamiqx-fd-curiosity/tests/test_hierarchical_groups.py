"""``upper_policy_training = "own-ppo"``: each upper layer is a policy group of the host's PPO.

The reference trains one PPO per layer, each on its own blended reward
(MLShukai/pamiq-curiosity-exp, src/exp/trainers/ppo_policy.py
``create_multiple(hierarchical=True)``, agents/curiosity/hierarchical.py).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from pamiqx_fd_curiosity.hierarchical import HierarchicalCuriosity
from pamiqx_fd_curiosity.hierarchical_network import HierarchicalNetwork
from pamiqx_fd_curiosity.plugin import HierarchicalOptions, HierarchicalPlugin

from pamiqx.api import ActionSpec, BuildContext, ObservationSpec
from pamiqx.learner.options import PPOOptions
from pamiqx.testing import ContractSetup, TrainingHarness, check_curiosity_contract

DISCRETE = ActionSpec("discrete", (4,))
VECTORS = ObservationSpec((32,), "float32", "vector")
OWN: dict[str, Any] = {
    "hidden_dim": 32,
    "goal_dim": 4,
    "period": 2,
    "upper_policy_training": "own-ppo",
}


def _build(**options: Any) -> HierarchicalCuriosity:
    torch.manual_seed(0)
    built = HierarchicalPlugin().build(
        HierarchicalOptions(**{**OWN, **options}), BuildContext("t", 0), VECTORS, DISCRETE
    )
    assert isinstance(built, HierarchicalCuriosity)
    return built


def _set_state(network: HierarchicalNetwork, batch: int, counter: float) -> dict[str, torch.Tensor]:
    """Random parts with every prediction pending and the counter at ``counter``."""
    parts = network.layout.split(torch.zeros(batch, network.hidden_dim))
    parts = {k: torch.randn_like(v) for k, v in parts.items()}
    parts["action"] = F.one_hot(torch.arange(batch) % 4, 4).float()
    parts["step"] = torch.full((batch, 1), counter)
    for i in range(network.num_layers):
        parts[f"valid{i}"] = torch.ones(batch, 1)
    return parts


@pytest.mark.parametrize("layers", [2, 3])
def test_each_upper_layer_is_a_group_of_its_goal_columns(layers: int) -> None:
    network = _build(num_layers=layers).hierarchical
    assert network.internal_groups == (4,) * (layers - 1)
    assert sum(network.internal_groups) == network.internal_action_dim
    joint = _build(num_layers=layers, upper_policy_training="joint").hierarchical
    assert joint.internal_groups == ()
    with torch.no_grad():
        out = joint(torch.randn(2, 32), joint.initial_state(2))
    assert out.group_rewards is None and out.group_values is None and out.group_acting is None


def test_the_top_groups_reward_is_its_own_error_where_it_acts() -> None:
    """L = 2, c = [-1, +1]: layer 1's group reward is ``e_1`` at its acting step, by hand;
    it does not act at the next step; the value head reads layer 1's own features."""
    network = _build(blend=0.5).hierarchical
    batch = 2
    obs = torch.randn(batch, 32)
    parts = _set_state(network, batch, 0.0)
    x0 = network.encode(obs)
    layer0 = network.layers[0]
    fd0 = layer0.fd_cell(torch.cat([x0, parts["action"]], dim=-1), parts["fd0"])
    x1 = F.layer_norm(fd0, (32,))
    e1 = (x1 - parts["pred1"]).pow(2).mean(dim=-1)
    with torch.no_grad():
        out = network(obs, network.layout.join(parts))
        assert out.group_rewards is not None and out.group_acting is not None
        assert torch.allclose(out.group_rewards[:, 0], e1, atol=1e-6)
        assert bool(out.group_acting.all())
        step = network.step_layers(x0, network.layout.join(parts))
        head = network.group_value_heads
        assert head is not None and out.group_values is not None
        assert torch.allclose(out.group_values[:, 0], head[0](step.features[1]).squeeze(-1))
        parts["step"] = torch.ones(batch, 1)
        out = network(obs, network.layout.join(parts))
        assert out.group_acting is not None and not bool(out.group_acting.any())


@pytest.mark.parametrize("hold", [False, True])
def test_group_rewards_are_the_layers_blended_rewards(hold: bool) -> None:
    """L = 3, c = [-1, 0, +1], blend 0.25, period 2: at a step where every layer acts,
    ``r_2 = e_2`` and ``r_1 = 0.75 * 0 * e_1 + 0.25 * r_2``; at a step where only layer 1
    acts its reward is its own blend with ``r_2`` held (``hold_upper_reward``) or 0."""
    network = _build(num_layers=3, blend=0.25, hold_upper_reward=hold).hierarchical
    assert network.coefficients == [-1.0, 0.0, 1.0]
    batch = 3
    obs = torch.randn(batch, 32)
    with torch.no_grad():
        for counter in (0.0, 2.0):
            parts = _set_state(network, batch, counter)
            if hold:
                parts["reward2"] = torch.full((batch, 1), 7.0)
            hidden = network.layout.join(parts)
            step = network.step_layers(network.encode(obs), hidden)
            e1, e2 = step.errors[1], step.errors[2]
            r2 = e2 if counter == 0.0 else torch.full_like(e2, 7.0 if hold else 0.0)
            r1 = 0.75 * 0.0 * e1 + 0.25 * r2
            out = network(obs, hidden)
            assert out.group_rewards is not None and out.group_acting is not None
            assert torch.allclose(out.group_rewards[:, 0], r1, atol=1e-6), counter
            assert bool(out.group_acting[:, 0].all())
            assert bool(out.group_acting[:, 1].all()) == (counter == 0.0)
            if counter == 0.0:
                assert torch.allclose(out.group_rewards[:, 1], e2, atol=1e-6)


def test_contract_with_own_ppo() -> None:
    """Every check, the policy groups' outputs included."""
    check_curiosity_contract(
        ContractSetup(
            HierarchicalPlugin,
            HierarchicalOptions(**OWN),
            observation_spec=VECTORS,
            action_spec=DISCRETE,
        ),
        lambda c, b: c.top_layer_errors(b),  # type: ignore[attr-defined]
    )


def test_host_ppo_trains_one_policy_per_layer() -> None:
    """Through the host: layer 1's group rewards are stored at its acting steps, group 0's
    log-probability is the world's action alone, and the group's terms are logged."""
    curiosity = _build()
    options = PPOOptions(rollout_steps=16, minibatch_size=32, epochs=1, sequence_length=8)
    harness = TrainingHarness(curiosity, VECTORS, DISCRETE, options=options)
    frames = np.random.default_rng(0).normal(size=(4, 32)).astype(np.float32)
    batch = harness.collect(lambda t: frames[[t % 4, (t + 1) % 4]])
    assert batch.groups is not None
    assert batch.groups.acting[:, 0, 0].tolist() == [t % 2 == 0 for t in range(16)]
    assert bool((batch.groups.rewards[1::2] == 0).all())
    assert batch.groups.rewards[2::2].abs().sum() > 0
    network = curiosity.hierarchical
    with torch.no_grad():
        out = network.forward_sequence(
            batch.observations, batch.hidden[0], None, batch.actions, batch.internal
        )
    stored = batch.log_probs.flatten(0, 1)
    assert torch.allclose(stored, out.dist.log_prob(batch.actions.flatten(0, 1)), atol=1e-5)
    metrics = harness.train(batch)
    for key in ("policy_loss", "value_loss", "entropy", "approx_kl", "advantage_mean"):
        assert f"policy/group1/{key}" in metrics
    assert metrics["policy/group1/trained_fraction"] == pytest.approx(0.5)
