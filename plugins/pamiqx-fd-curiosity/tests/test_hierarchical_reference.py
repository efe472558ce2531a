"""``hierarchical``'s reference behaviours, each an option (MLShukai/pamiq-curiosity-exp).

* ``hold_upper_reward``: the upper layer's reward held over its period
  (src/exp/agents/curiosity/hierarchical.py keeps ``reward_to_lower_list``).
* ``fd_condition = "policy"``: the FD takes the policy's latent of the step
  (``LayerCuriosityAgent.step``: ``m.encoder(obs, latent_action, ...)``).
* ``max_imagination_steps``: the FD's K-step imagination loss
  (src/exp/trainers/forward_dynamics.py, ``imagination_length: 3``).
* ``goal_std = "state"``: ``softplus(W f) + 1e-6`` (src/exp/models/components/normal.py).
"""

from __future__ import annotations

import math
from typing import Any

import pytest
import torch
import torch.nn.functional as F
from pamiqx_fd_curiosity.hierarchical import HierarchicalCuriosity
from pamiqx_fd_curiosity.hierarchical_network import HierarchicalNetwork
from pamiqx_fd_curiosity.plugin import HierarchicalOptions, HierarchicalPlugin

from pamiqx.api import ActionSpec, BuildContext, ObservationSpec

DISCRETE = ActionSpec("discrete", (4,))
VECTORS = ObservationSpec((32,), "float32", "vector")
SMALL: dict[str, Any] = {"hidden_dim": 32, "goal_dim": 4, "period": 2}


def _network(**options: Any) -> HierarchicalNetwork:
    torch.manual_seed(0)
    built = HierarchicalPlugin().build(
        HierarchicalOptions(**{**SMALL, **options}), BuildContext("t", 0), VECTORS, DISCRETE
    )
    assert isinstance(built, HierarchicalCuriosity)
    return built.hierarchical


def _random_state(network: HierarchicalNetwork, batch: int) -> dict[str, torch.Tensor]:
    """Every part random, predictions pending, the cycle at its start, a stale held reward."""
    parts = network.layout.split(torch.zeros(batch, network.hidden_dim))
    parts = {k: torch.randn_like(v) for k, v in parts.items()}
    parts["action"] = F.one_hot(torch.arange(batch) % 4, 4).float()
    parts["step"] = torch.zeros(batch, 1)
    for i in range(network.num_layers):
        parts[f"valid{i}"] = torch.ones(batch, 1)
    return parts


def test_the_upper_reward_is_held_over_its_8_steps() -> None:
    """c = [-1, +1], blend 0.5, period 8: ``r_0(t) = 0.5 (-e_0(t)) + 0.5 e_1(s)`` with ``s``
    the top layer's last acting step; a stale held value is replaced at the acting step,
    and an episode start empties it (row 1 restarts at step 3)."""
    network = _network(period=8, hold_upper_reward=True)
    layout, layer0 = network.layout, network.layers[0]
    batch, steps = 2, 10
    parts = _random_state(network, batch)
    parts["reward1"] = torch.tensor([[5.0], [-7.0]])  # stale: must not reach any reward
    hidden = layout.join(parts)
    obs = torch.randn(steps, batch, 32)
    resets = torch.zeros(steps, batch, dtype=torch.bool)
    resets[3, 1] = True
    upper = torch.zeros(steps, batch)
    with torch.no_grad():
        for t in range(steps):
            before = layout.split(hidden * (~resets[t]).float().unsqueeze(-1))
            e0 = (before["pred0"] - obs[t]).pow(2).mean(dim=-1) * before["valid0"].squeeze(-1)
            out = network(obs[t], hidden, resets[t])
            upper[t] = out.intrinsic - 0.5 * -e0
            if t in (0, 8):
                # Both rows' top layer acts (row 1 only at 0: it restarted at step 3).
                fd0 = layer0.fd_cell(torch.cat([obs[t], before["action"]], -1), before["fd0"])
                x1 = F.layer_norm(fd0, (32,))
                e1 = (before["pred1"] - x1).pow(2).mean(dim=-1)
                rows = [0, 1] if t == 0 else [0]
                assert torch.allclose(upper[t, rows], 0.5 * e1[rows], atol=1e-6), t
                if t == 0:
                    first = e1
            hidden = network.fold_action(out.hidden, torch.tensor([1, 2]), out.internal.sample())
    # Row 0: e_1 of step 0 held over steps 0..7, then e_1 of step 8 (different).
    assert torch.allclose(upper[:8, 0], torch.full((8,), 0.5 * float(first[0])), atol=1e-6)
    assert not math.isclose(float(upper[8, 0]), float(upper[7, 0]), rel_tol=1e-3)
    # Row 1: held until its restart; there nothing was predicted and nothing is held.
    assert torch.allclose(upper[:3, 1], torch.full((3,), 0.5 * float(first[1])), atol=1e-6)
    assert float(out.intrinsic[1]) != 0.0
    assert torch.allclose(upper[3:, 1], torch.zeros(steps - 3), atol=1e-7)


def test_without_holding_the_upper_reward_counts_only_at_its_acting_step() -> None:
    network = _network(period=8)
    assert "reward1" not in network.layout.split(torch.zeros(1, network.hidden_dim))
    hidden = network.layout.join(_random_state(network, 2))
    obs = torch.randn(3, 2, 32)
    with torch.no_grad():
        for t in range(3):
            before = network.layout.split(hidden)
            e0 = (before["pred0"] - obs[t]).pow(2).mean(dim=-1)
            out = network(obs[t], hidden)
            if t > 0:
                assert torch.allclose(out.intrinsic, 0.5 * -e0, atol=1e-6)
            hidden = network.fold_action(out.hidden, torch.tensor([0, 3]), out.internal.sample())


def test_the_fd_takes_the_policy_latent_and_predicts_before_the_action() -> None:
    network = _network(fd_condition="policy")
    layout, layer0 = network.layout, network.layers[0]
    parts = _random_state(network, 3)
    hidden = layout.join(parts)
    obs = torch.randn(3, 32)
    with torch.no_grad():
        out = network(obs, hidden)
        policy = layer0.policy_cell(torch.cat([obs, parts["goal1"]], -1), parts["pi0"])
        fd = layer0.fd_cell(torch.cat([obs, policy], -1), parts["fd0"])
        after = layout.split(out.hidden)
        assert torch.allclose(after["pred0"], layer0.fd_head(fd), atol=1e-6)
        assert torch.equal(after["valid0"], torch.ones(3, 1))
        folded = network.fold_action(out.hidden, torch.tensor([0, 1, 2]), out.internal.sample())
    # The sampled action does not enter the prediction.
    assert torch.equal(layout.split(folded)["pred0"], after["pred0"])
    # The FD loss reaches the FD, never the policy (its latent is data for the FD).
    steps = 6
    seq = network.forward_sequence(
        torch.randn(steps, 3, 32),
        folded,
        None,
        torch.randint(0, 4, (steps, 3)),
        torch.randn(steps, 3, network.internal_action_dim),
    )
    assert seq.aux_loss is not None
    seq.aux_loss.backward()
    for layer in network.layers:
        # (Zero, not None: the flat state joins the parts, so the graph reaches every one.)
        assert all(p.grad is None or not p.grad.any() for p in layer.policy_cell.parameters())
        assert any(
            p.grad is not None and p.grad.abs().sum() > 0 for p in layer.fd_cell.parameters()
        )


def test_the_fd_loss_combines_its_k_step_imagination_exponentially() -> None:
    """Layer 0 (acts every step) by hand: depth 1 from the data, depths 2 and 3 from the
    FD's own predictions with the data's actions; weights ``exp(-(k-1)/3)``."""
    network = _network(max_imagination_steps=3).double()
    layout, layer0 = network.layout, network.layers[0]
    steps, batch = 7, 3
    generator = torch.Generator().manual_seed(2)
    obs = torch.randn(steps, batch, 32, generator=generator, dtype=torch.float64)
    actions = torch.randint(0, 4, (steps, batch), generator=generator)
    internal = torch.randn(steps, batch, 4, generator=generator, dtype=torch.float64)
    hidden0 = layout.join(_random_state(network, batch)).double()
    seq = network.forward_sequence(obs, hidden0, None, actions, internal)
    depths: list[list[torch.Tensor]] = [[], [], []]
    with torch.no_grad():
        hidden, branches = hidden0, []
        for t in range(steps):
            before = layout.split(hidden)
            out = network(obs[t], hidden)
            hidden = network.fold_action(out.hidden, actions[t], internal[t])
            if t > 0:  # depth 1: the prediction made at t - 1, inside the window
                depths[0].append((before["pred0"] - obs[t]).pow(2).mean(dim=-1))
            for k, (_, prediction) in enumerate(branches, start=2):
                depths[k - 1].append((prediction - obs[t]).pow(2).mean(dim=-1))
            action = layout.split(hidden)["action"]  # a_t one-hot, for the head
            sources = [(before["fd0"], before["pred0"]), *branches][:2]
            branches = []
            for state, prediction in sources:
                new = layer0.fd_cell(torch.cat([prediction, before["action"]], -1), state)
                branches.append((new, layer0.fd_head(torch.cat([new, action], -1))))
    losses = [float(torch.stack(d).mean()) for d in depths]
    assert len(depths[1]) == steps - 1 and len(depths[2]) == steps - 2
    assert seq.metrics["hierarchical/error_0"] == pytest.approx(losses[0])
    assert seq.metrics["hierarchical/imagination_0_2"] == pytest.approx(losses[1])
    assert seq.metrics["hierarchical/imagination_0_3"] == pytest.approx(losses[2])
    w = math.exp(-1 / 3)
    combined = (losses[0] + w * losses[1] + w * w * losses[2]) / (1 + w + w * w)
    upper = [
        seq.metrics.get(f"hierarchical/{name}", math.nan)
        for name in ("error_1", "imagination_1_2", "imagination_1_3")
    ]
    weights = [1.0, w, w * w]
    present = [(v, c) for v, c in zip(upper, weights, strict=True) if not math.isnan(v)]
    combined_upper = sum(v * c for v, c in present) / sum(c for _, c in present)
    assert seq.aux_loss is not None
    assert float(seq.aux_loss.detach()) == pytest.approx(combined + combined_upper)


def test_goals_are_gaussians_with_a_state_dependent_std() -> None:
    network = _network(goal_std="state")
    assert network.goal_stds is not None
    head = network.goal_stds[0]
    hidden = network.layout.join(_random_state(network, 3))
    obs = torch.randn(3, 32)
    with torch.no_grad():
        step = network.step_layers(network.encode(obs), hidden)
        out = network(obs, hidden)
        expected = F.softplus(head(step.features[1])) + 1e-6
        assert torch.allclose(out.internal.normal.scale, expected, atol=1e-6)
        assert not torch.allclose(expected[0], expected[1])
        # Capped at exp(0.5): nothing else stops the entropy bonus widening it.
        head.bias.fill_(100.0)
        capped = network(obs, hidden).internal.normal.scale
    assert torch.allclose(capped, torch.full_like(capped, math.exp(0.5)))
    fixed = _network(goal_std="parameter")
    with torch.no_grad():
        scale = fixed(obs, fixed.layout.join(_random_state(fixed, 3))).internal.normal.scale
    assert torch.equal(scale, torch.ones_like(scale))  # exp(0) at initialisation


def test_the_swiglu_predictor_is_the_references_shape() -> None:
    """``Predictor`` (models/latent_fd.py): linear to the width, SwiGLU x4 without a
    residual, linear to the observation; fed the FD output alone under ``policy``."""
    network = _network(fd_condition="policy", fd_predictor="swiglu")
    layout, layer0 = network.layout, network.layers[0]
    project, feed_forward = layer0.fd_trunk[0], layer0.fd_trunk[1]
    assert (project.in_features, project.out_features) == (32, 32)
    assert feed_forward.hidden_dim == 128
    assert (layer0.fd_head.in_features, layer0.fd_head.out_features) == (32, 32)
    parts = _random_state(network, 2)
    obs = torch.randn(2, 32)
    with torch.no_grad():
        out = network(obs, layout.join(parts))
        policy = layer0.policy_cell(torch.cat([obs, parts["goal1"]], -1), parts["pi0"])
        fd = layer0.fd_cell(torch.cat([obs, policy], -1), parts["fd0"])
        h = project(fd)
        hidden = feed_forward.fc(h) * F.silu(feed_forward.fc_gate(h))
        expected = layer0.fd_head(feed_forward.fc_out(hidden))
    assert torch.allclose(layout.split(out.hidden)["pred0"], expected, atol=1e-6)
