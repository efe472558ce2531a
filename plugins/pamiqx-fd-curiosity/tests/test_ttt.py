"""Tests of ``ttt``'s cores: the small ``fast-weights`` stand-in and the reference TTT stack.

The network takes ``(32,)`` latent vectors; the ``ttt`` core is 2 blocks of 16 with 2
heads and chunks of 4 steps, so windows cross chunk boundaries.
"""

from __future__ import annotations

from typing import Any

import pytest
import torch
from pamiqx_fd_curiosity.plugin import TTTOptions, TTTPlugin
from pamiqx_fd_curiosity.unified import UnifiedNetwork

from pamiqx.api import ActionSpec, BuildContext, ObservationSpec
from pamiqx.testing import ContractSetup, check_curiosity_contract

MULTI = ActionSpec("multi_discrete", (3, 3, 2))
VECTORS = ObservationSpec((32,), "float32", "vector")
STACK: dict[str, Any] = {
    "core": "ttt",
    "hidden_dim": 16,
    "internal_dim": 3,
    "ttt_depth": 2,
    "ttt_heads": 2,
    "ttt_chunk": 4,
    "prediction_delay": 3,
}
FAST: dict[str, Any] = {"hidden_dim": 16, "internal_dim": 3, "ttt_dim": 8, "prediction_delay": 3}


def _network(**options: Any) -> UnifiedNetwork:
    torch.manual_seed(0)
    curiosity = TTTPlugin().build(TTTOptions(**options), BuildContext("t", 0), VECTORS, MULTI)
    network: UnifiedNetwork = curiosity.unified
    return network


def _surprisal(
    network: UnifiedNetwork, latent: torch.Tensor, hidden: torch.Tensor, reset: Any
) -> Any:
    """The core's surprisal at this step, computed outside the network's own step."""
    with torch.no_grad():
        parts = network._begin(hidden, reset)
        x = network._inputs(network._encode(latent), parts)
        return network.core.step(x, parts["core"], reset)[2]


def test_stack_surprisal_is_each_block_and_heads_inner_loss() -> None:
    network = _network(**STACK)
    assert network.core.surprisal_dim == 2 * 2
    assert network.coefficients.shape == (4,)
    x = torch.randn(3, network.core.stack.input_dim)
    state = torch.zeros(3, network.core.state_dim)
    _, _, per_head = network.core.stack.step_with_surprisal(x, state)
    _, _, flat = network.core.step(x, state, None)
    assert per_head.shape == (3, 2, 2)
    torch.testing.assert_close(flat, per_head.flatten(1))


@pytest.mark.parametrize("options", [FAST, STACK], ids=["fast-weights", "ttt"])
def test_fatigue_persists_over_an_episode_start(options: dict[str, Any]) -> None:
    """f and M follow the formula through an episode start; the reward is the fatigued surprisal.

    Steps 0..5, one world, an episode start at step 3: the core and the prediction
    restart (no reward at step 3), but m_t / M_t and f_t carry on from step 2.
    """
    network = _network(**options)
    obs = torch.randn(6, 1, 32)
    resets = [False, False, False, True, False, False]
    hidden = network.initial_state(1)
    c = network.coefficients
    fatigue, long_mean = 0.0, 0.0
    for t in range(6):
        reset = torch.tensor([resets[t]])
        s = _surprisal(network, obs[t], hidden, reset)
        m = float(s.mean())
        long_mean = m if long_mean == 0.0 else 0.9999 * long_mean + 0.0001 * m
        fatigue = 0.99 * fatigue + 0.01 * m / long_mean
        out = network(obs[t], hidden, reset)
        parts = network.layout.split(out.hidden.detach())
        assert float(parts["fatigue"]) == pytest.approx(fatigue, rel=1e-5)
        assert float(parts["long_mean"]) == pytest.approx(long_mean, rel=1e-5)
        if resets[t]:  # cleared with the rest of the state, f would restart at 0.01 * m / m
            assert float(parts["fatigue"]) > 0.015
        scored = t not in (0, 3)  # nothing was predicted before a start
        gain = torch.relu(c) - torch.relu(-c) * fatigue
        expected = float((gain * s).mean()) if scored else 0.0
        assert float(out.intrinsic) == pytest.approx(expected, rel=1e-4, abs=1e-7)
        hidden = network.fold_action(out.hidden, torch.zeros(1, 3, dtype=torch.long), None)


def test_initial_state_starts_fatigue_and_its_average_at_zero() -> None:
    network = _network(**STACK)
    parts = network.layout.split(network.initial_state(2))
    assert torch.equal(parts["fatigue"], torch.zeros(2, 1))
    assert torch.equal(parts["long_mean"], torch.zeros(2, 1))


@pytest.mark.parametrize("options", [FAST, STACK], ids=["fast-weights", "ttt"])
def test_window_replay_equals_the_step_path(options: dict[str, Any]) -> None:
    """float64; episode starts at random positions; the aux loss pairs ô_t with o_{t+3}."""
    network = _network(**options)
    network.double()
    steps, batch = 10, 3
    generator = torch.Generator().manual_seed(5)
    obs = torch.randn(steps, batch, 32, generator=generator, dtype=torch.float64)
    actions = torch.stack(
        [torch.randint(0, n, (steps, batch), generator=generator) for n in MULTI.nvec], dim=-1
    )
    internal = torch.randn(steps, batch, 3, generator=generator, dtype=torch.float64)
    resets = (torch.rand(steps, batch, generator=generator) < 0.15).double()
    resets[0, 0] = 1.0
    resets[6, 1] = 1.0
    # A warm state, mid-chunk: two steps taken, fatigue and its average under way.
    hidden0 = network.initial_state(batch).double()
    with torch.no_grad():
        for _ in range(2):
            out = network(torch.randn(batch, 32, dtype=torch.float64), hidden0)
            hidden0 = network.fold_action(out.hidden, actions[0], internal[0])

    seq = network.forward_sequence(obs, hidden0, resets, actions, internal)
    hidden = hidden0
    log_probs, values, rewards, predictions = [], [], [], []
    for t in range(steps):
        out = network(obs[t], hidden, resets[t])
        log_probs.append(out.log_prob(actions[t], internal[t]))
        values.append(out.values["int"])
        rewards.append(out.intrinsic)
        predictions.append(network.layout.split(out.hidden)["pred"].detach())
        hidden = network.fold_action(out.hidden, actions[t], internal[t])
    torch.testing.assert_close(
        seq.log_prob(actions.flatten(0, 1), internal.flatten(0, 1)),
        torch.cat(log_probs),
        rtol=0,
        atol=1e-10,
    )
    torch.testing.assert_close(seq.values["int"], torch.cat(values), rtol=0, atol=1e-10)
    torch.testing.assert_close(seq.hidden, hidden, rtol=0, atol=1e-10)
    assert seq.metrics["unified/reward"] == pytest.approx(float(torch.stack(rewards).mean()))
    latents = obs.float().double()  # FlatLatent hands the network float32 latents
    total, count = 0.0, 0.0
    for t in range(steps - 3):
        for b in range(batch):
            if resets[t + 1 : t + 4, b].sum() == 0:  # no episode start in (t, t + 3]
                total += float((predictions[t][b] - latents[t + 3, b]).pow(2).mean())
                count += 1
    assert count > 0
    assert seq.aux_loss is not None
    assert float(seq.aux_loss.detach()) == pytest.approx(total / count, rel=1e-10)


def test_a_window_shorter_than_the_delay_has_no_prediction_loss() -> None:
    network = _network(**{**STACK, "prediction_delay": 32})
    obs = torch.randn(8, 2, 32)
    actions = torch.zeros(8, 2, 3, dtype=torch.long)
    seq = network.forward_sequence(obs, network.initial_state(2), None, actions, None)
    assert seq.aux_loss is not None and float(seq.aux_loss.detach()) == 0.0
    assert "unified/prediction_error" not in seq.metrics


# About a minute on a 2-core CPU: in `make test-all`; the default suite runs the ttt
# contract on the small core (test_unified.py) and the reference TTT stack's own tests here.
@pytest.mark.slow
def test_contract_ttt_stack() -> None:
    """Every check with the reference TTT core; novelty on the excitatory surprisal."""

    def excitatory(curiosity: Any, batch: Any) -> torch.Tensor:
        network: UnifiedNetwork = curiosity.unified
        out = []
        hidden = network.initial_state(batch.shape[1])
        with torch.no_grad():
            for t in range(batch.shape[0]):
                s = _surprisal(network, batch.next_observations[t], hidden, None)
                out.append(network.excitatory_reward(s))
                step = network(batch.observations[t], hidden)
                hidden = network.fold_action(step.hidden, batch.actions[t], None)
        return torch.stack(out)

    options = TTTOptions(**{**STACK, "prediction_delay": 4})
    check_curiosity_contract(
        ContractSetup(TTTPlugin, options, observation_spec=VECTORS), excitatory
    )


def test_the_ttt_sizes_are_checked_with_the_options_naming_the_keys() -> None:
    # In the options, so `pamiqx validate` refuses them before anything is built.
    with pytest.raises(ValueError, match=r"curiosity.hidden_dim \(18\) must be divisible by"):
        TTTOptions(**{**STACK, "hidden_dim": 18, "ttt_heads": 4})
    with pytest.raises(ValueError, match="ttt_base_lr_min"):
        TTTOptions(**{**STACK, "ttt_base_lr_min": 0.5, "ttt_base_lr_max": 0.1})
