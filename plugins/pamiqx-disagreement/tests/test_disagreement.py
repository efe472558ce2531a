"""pamiqx-disagreement: registration, the curiosity contract, and the ensemble's own properties.

Disagreement rewards a transition ``(o, a, o')`` by how much the ensemble disagrees
about what ``(o, a)`` leads to: the reward is a function of ``o`` and ``a`` only. The
contract's novelty check puts the novel frame at ``o'`` of transition ``at`` and reads
``rewards[at]``, whose inputs are familiar, so with the default ``reward_fn`` it compares
familiar transitions with familiar transitions (a coin flip). The contract is therefore
run with :func:`disagreement_from_next_observation`, which scores the step taken *from*
each ``o'`` (the reward the agent earns for acting once the novel frame has arrived);
:func:`test_reward_ignores_the_next_observation` pins down why.
"""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch
from pamiqx_disagreement.mechanism import Disagreement
from pamiqx_disagreement.plugin import DisagreementOptions, DisagreementPlugin

from pamiqx.api import ActionSpec, Curiosity, ObservationSpec, Transitions
from pamiqx.testing import (
    ContractSetup,
    ContractWorld,
    check_curiosity_contract,
    check_novelty,
    check_plugin_distribution,
)

VECTORS = ObservationSpec((8,), "float32", "vector")
MULTI = ActionSpec("multi_discrete", (4, 2))


def disagreement_from_next_observation(curiosity: Curiosity, batch: Transitions) -> torch.Tensor:
    """Score, at row t, the step taken from ``o_{t+1}`` with the action taken there."""
    shifted = Transitions(
        batch.next_observations, batch.next_observations, batch.actions.roll(-1, 0), batch.dones
    )
    return curiosity.rewards(shifted)


def _build(setup: ContractSetup) -> Disagreement:
    curiosity = setup.build()
    assert isinstance(curiosity, Disagreement)
    return curiosity


def test_distribution_registers_disagreement() -> None:
    entries = check_plugin_distribution("pamiqx-disagreement")
    assert [(e.kind, e.name) for e in entries] == [("curiosity", "disagreement")]


def test_registration_module_does_not_import_torch() -> None:
    code = "import sys, pamiqx_disagreement.plugin; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_default_options() -> None:
    options = DisagreementOptions()
    assert (options.ensemble_size, options.features) == (5, "random")


@pytest.mark.parametrize("bad", [{"ensemble_size": 1}, {"lr": 0.0}, {"epochs": 0}])
def test_invalid_options_are_refused(bad: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        DisagreementOptions(**bad)


def test_contract_on_images() -> None:
    setup = ContractSetup(DisagreementPlugin)
    check_curiosity_contract(setup, reward_fn=disagreement_from_next_observation)


def test_contract_on_vectors() -> None:
    setup = ContractSetup(DisagreementPlugin, observation_spec=VECTORS)
    check_curiosity_contract(setup, reward_fn=disagreement_from_next_observation)


def test_contract_with_multi_discrete_actions() -> None:
    setup = ContractSetup(DisagreementPlugin, observation_spec=VECTORS, action_spec=MULTI)
    check_curiosity_contract(setup, reward_fn=disagreement_from_next_observation)


def test_novelty_numbers() -> None:
    familiar, novel = check_novelty(
        ContractSetup(DisagreementPlugin), reward_fn=disagreement_from_next_observation
    )
    assert novel > 2 * familiar


def test_reward_ignores_the_next_observation() -> None:
    setup = ContractSetup(DisagreementPlugin)
    curiosity = _build(setup)
    world = ContractWorld(setup, curiosity)
    curiosity.update(world.rollout())
    batch = world.rollout()
    replaced = Transitions(
        batch.observations, torch.zeros_like(batch.next_observations), batch.actions, batch.dones
    )
    assert torch.equal(curiosity.rewards(batch), curiosity.rewards(replaced))


def test_reward_is_the_mean_variance_across_members() -> None:
    setup = ContractSetup(DisagreementPlugin)
    curiosity = _build(setup)
    batch = ContractWorld(setup, curiosity).rollout()
    predictions = curiosity.predictions(
        batch.observations.flatten(0, 1), batch.actions.flatten(0, 1)
    )
    assert predictions.shape == (5, setup.steps * setup.envs, 128)
    mean = predictions.mean(0, keepdim=True)
    expected = (predictions - mean).pow(2).mean(0).mean(-1).view(batch.shape)
    torch.testing.assert_close(curiosity.rewards(batch), expected)


def test_each_member_gets_its_own_bootstrap() -> None:
    curiosity = _build(ContractSetup(DisagreementPlugin))
    valid = torch.arange(64)
    indices = curiosity.bootstrap_indices(valid)
    assert indices.shape == (5, 64)
    # Resampled with replacement: duplicates within a member, and different draws per member.
    assert all(row.unique().numel() < 64 for row in indices)
    assert len({tuple(row.tolist()) for row in indices}) == 5


def test_bootstraps_alone_make_identical_members_differ() -> None:
    setup = ContractSetup(DisagreementPlugin)
    curiosity = _build(setup)
    # Start every member from member 0's weights: only their bootstraps can tell them apart.
    with torch.no_grad():
        for param in curiosity.ensemble.parameters():
            param.copy_(param[:1].expand_as(param))
    world = ContractWorld(setup, curiosity)
    probe = world.rollout(novel_at=10)
    with torch.no_grad():
        start = curiosity.predictions(probe.next_observations[10], probe.actions[11])
    assert float(start.var(0).max()) == 0.0
    for _ in range(5):
        curiosity.update(world.rollout())
    weights = curiosity.ensemble[0].weight
    for i in range(1, weights.shape[0]):
        assert not torch.allclose(weights[0], weights[i])
    with torch.no_grad():
        trained = curiosity.predictions(probe.next_observations[10], probe.actions[11])
    assert float(trained.var(0).mean()) > 0


def test_done_transitions_are_left_out_of_the_bootstraps() -> None:
    setup = ContractSetup(DisagreementPlugin)
    curiosity = _build(setup)
    world = ContractWorld(setup, curiosity)
    batch = world.rollout()
    dones = torch.zeros_like(batch.dones)
    dones[::2] = True
    sampled: list[torch.Tensor] = []
    original = curiosity.bootstrap_indices

    def spy(valid: torch.Tensor) -> torch.Tensor:
        indices = original(valid)
        sampled.append(indices)
        return indices

    curiosity.bootstrap_indices = spy  # type: ignore[method-assign]
    metrics = curiosity.update(
        Transitions(batch.observations, batch.next_observations, batch.actions, dones)
    )
    assert metrics["valid_fraction"] == pytest.approx(0.5)
    done_rows = set(torch.nonzero(dones.flatten()).squeeze(-1).tolist())
    assert sampled and not done_rows & set(sampled[0].flatten().tolist())


def test_random_features_stay_fixed() -> None:
    setup = ContractSetup(DisagreementPlugin)
    curiosity = _build(setup)
    before = [p.clone() for p in curiosity.features.parameters()]
    world = ContractWorld(setup, curiosity)
    for _ in range(3):
        curiosity.update(world.rollout())
    after = list(curiosity.features.parameters())
    assert all(torch.equal(a, b) for a, b in zip(before, after, strict=True))


def test_state_holds_encoder_ensemble_and_optimizer() -> None:
    curiosity = _build(ContractSetup(DisagreementPlugin))
    assert set(curiosity.state_dict()) == {"features", "ensemble", "optimizer"}
