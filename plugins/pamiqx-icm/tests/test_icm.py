"""pamiqx-icm: registration, the curiosity contract, and ICM's own properties."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch
from pamiqx_icm.mechanism import ICM
from pamiqx_icm.plugin import ICMOptions, ICMPlugin

from pamiqx.api import ActionSpec, ObservationSpec, Transitions
from pamiqx.testing import (
    ContractSetup,
    ContractWorld,
    check_curiosity_contract,
    check_novelty,
    check_plugin_distribution,
)

VECTORS = ObservationSpec((8,), "float32", "vector")
MULTI = ActionSpec("multi_discrete", (4, 2))


def _build(setup: ContractSetup) -> ICM:
    curiosity = setup.build()
    assert isinstance(curiosity, ICM)
    return curiosity


def _with_dones(batch: Transitions, dones: torch.Tensor) -> Transitions:
    return Transitions(batch.observations, batch.next_observations, batch.actions, dones)


def test_distribution_registers_icm() -> None:
    entries = check_plugin_distribution("pamiqx-icm")
    assert [(e.kind, e.name) for e in entries] == [("curiosity", "icm")]


def test_registration_module_does_not_import_torch() -> None:
    code = "import sys, pamiqx_icm.plugin; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_default_options_follow_the_paper() -> None:
    options = ICMOptions()
    assert (options.eta, options.beta, options.lr) == (0.01, 0.2, 1e-3)


@pytest.mark.parametrize("bad", [{"beta": 1.5}, {"eta": 0.0}, {"feature_dim": 0}])
def test_invalid_options_are_refused(bad: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        ICMOptions(**bad)


def test_contract_on_images() -> None:
    check_curiosity_contract(ContractSetup(ICMPlugin))


def test_contract_on_vectors() -> None:
    check_curiosity_contract(ContractSetup(ICMPlugin, observation_spec=VECTORS))


def test_contract_with_multi_discrete_actions() -> None:
    check_curiosity_contract(ContractSetup(ICMPlugin, observation_spec=VECTORS, action_spec=MULTI))


def test_novelty_numbers() -> None:
    familiar, novel = check_novelty(ContractSetup(ICMPlugin))
    assert novel > 2 * familiar


@pytest.mark.parametrize("action_spec", [ActionSpec("discrete", (4,)), MULTI])
def test_inverse_model_accuracy_rises(action_spec: ActionSpec) -> None:
    setup = ContractSetup(ICMPlugin, action_spec=action_spec)
    curiosity = _build(setup)
    world = ContractWorld(setup, curiosity)
    first = curiosity.update(world.rollout())["inverse_accuracy"]
    for _ in range(40):
        last = curiosity.update(world.rollout())
    # Each action leads to one frame, so the inverse model can read it off the frames.
    assert first < 0.75
    assert last["inverse_accuracy"] > 0.95
    assert last["inverse_loss"] < 0.5


def test_reward_is_half_eta_times_the_squared_feature_error() -> None:
    setup = ContractSetup(ICMPlugin, ICMOptions(eta=0.5))
    curiosity = _build(setup)
    world = ContractWorld(setup, curiosity)
    curiosity.update(world.rollout())
    batch = world.rollout()
    with torch.no_grad():
        # One encoder pass for both frames: the batch norm sees them together.
        frames = torch.cat([batch.observations, batch.next_observations]).flatten(0, 1)
        phi, phi_next = curiosity.features(frames).chunk(2)
        onehot = torch.nn.functional.one_hot(batch.actions.flatten(), 4).float()
        predicted = curiosity.forward_model(torch.cat([phi, onehot], -1))
    expected = (0.25 * (predicted - phi_next).pow(2).sum(-1)).view(batch.shape)
    torch.testing.assert_close(curiosity.rewards(batch), expected)


def test_forward_loss_does_not_train_the_encoder_through_its_target() -> None:
    setup = ContractSetup(ICMPlugin)
    curiosity = _build(setup)
    batch = ContractWorld(setup, curiosity).rollout()
    # Cut the forward model's view of φ(o): the only path left into φ is the target φ(o').
    with torch.no_grad():
        curiosity.forward_model[0].weight[:, : curiosity.options.feature_dim] = 0.0
    terms = curiosity.losses(batch)
    assert terms is not None
    curiosity.optimizer.zero_grad()
    terms.forward.backward()
    assert float(terms.forward.detach()) > 0
    for param in curiosity.encoder.parameters():
        assert param.grad is None or not bool(param.grad.any())


def test_done_transitions_are_masked_out_of_the_loss_and_reward() -> None:
    setup = ContractSetup(ICMPlugin)
    curiosity = _build(setup)
    world = ContractWorld(setup, curiosity)
    curiosity.update(world.rollout())
    batch = world.rollout()
    dones = torch.zeros_like(batch.dones)
    dones[5, 0] = dones[20, 1] = True
    masked = _with_dones(batch, dones)
    # Where an episode ended, next_observations is a reset frame: anything may be there.
    garbage = batch.next_observations.clone()
    garbage[dones] = world.novel
    corrupted = Transitions(batch.observations, garbage, batch.actions, dones)
    clean_terms, corrupted_terms = curiosity.losses(masked), curiosity.losses(corrupted)
    assert clean_terms is not None and corrupted_terms is not None
    assert clean_terms.valid == setup.steps * setup.envs - 2
    torch.testing.assert_close(clean_terms.total, corrupted_terms.total)
    rewards = curiosity.rewards(corrupted)
    assert bool((rewards[dones] == 0).all())
    assert bool((rewards[~dones] > 0).all())


def test_a_batch_of_only_episode_ends_trains_nothing() -> None:
    setup = ContractSetup(ICMPlugin)
    curiosity = _build(setup)
    batch = ContractWorld(setup, curiosity).rollout()
    before = [p.clone() for p in curiosity.encoder.parameters()]
    metrics = curiosity.update(_with_dones(batch, torch.ones_like(batch.dones)))
    assert metrics["valid_fraction"] == 0.0 and metrics["loss"] == 0.0
    after = list(curiosity.encoder.parameters())
    assert all(torch.equal(a, b) for a, b in zip(before, after, strict=True))


def test_state_holds_every_network_and_the_optimizer() -> None:
    curiosity = _build(ContractSetup(ICMPlugin))
    assert set(curiosity.state_dict()) == {"encoder", "inverse", "forward", "optimizer"}


def test_rewards_are_scored_as_the_forward_loss_is_trained() -> None:
    setup = ContractSetup(ICMPlugin)
    curiosity = _build(setup)
    world = ContractWorld(setup, curiosity)
    for _ in range(3):
        curiosity.update(world.rollout())
    batch = world.rollout()
    terms = curiosity.losses(batch)
    assert terms is not None
    # Same features, same normalisation: the mean reward is η times the forward loss.
    expected = curiosity.options.eta * float(terms.forward.detach())
    assert float(curiosity.rewards(batch).mean()) == pytest.approx(expected, rel=1e-5)
