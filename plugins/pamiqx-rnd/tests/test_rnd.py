"""pamiqx-rnd: registration, the curiosity contract, and RND's own properties."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch
from pamiqx_rnd.mechanism import RND
from pamiqx_rnd.plugin import RNDOptions, RNDPlugin

from pamiqx.api import ActionSpec, ObservationSpec, Transitions
from pamiqx.testing import (
    ContractSetup,
    ContractWorld,
    check_curiosity_contract,
    check_novelty,
    check_plugin_distribution,
    check_reward_shape,
)

VECTORS = ObservationSpec((8,), "float32", "vector")


def _build(setup: ContractSetup) -> RND:
    curiosity = setup.build()
    assert isinstance(curiosity, RND)
    return curiosity


def test_distribution_registers_rnd() -> None:
    entries = check_plugin_distribution("pamiqx-rnd")
    assert [(e.kind, e.name) for e in entries] == [("curiosity", "rnd")]


def test_registration_module_does_not_import_torch() -> None:
    code = "import sys, pamiqx_rnd.plugin; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_default_options_follow_the_paper() -> None:
    options = RNDOptions()
    assert (options.lr, options.update_proportion, options.obs_clip) == (1e-4, 0.25, 5.0)
    assert (options.feature_dim, options.epochs) == (128, 1)


@pytest.mark.parametrize("bad", [{"update_proportion": 0.0}, {"obs_clip": -1.0}, {"epochs": 0}])
def test_invalid_options_are_refused(bad: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        RNDOptions(**bad)


def test_contract_on_images() -> None:
    check_curiosity_contract(ContractSetup(RNDPlugin))


def test_contract_on_vectors() -> None:
    check_curiosity_contract(ContractSetup(RNDPlugin, observation_spec=VECTORS))


def test_multi_discrete_actions_are_accepted() -> None:
    check_reward_shape(ContractSetup(RNDPlugin, action_spec=ActionSpec("multi_discrete", (3, 2))))


def test_novel_frames_stand_out_clearly() -> None:
    familiar, novel = check_novelty(ContractSetup(RNDPlugin))
    assert novel > 5 * familiar


@pytest.mark.parametrize("clip", [5.0, 2.0])
def test_observation_normalisation_is_clipped(clip: float) -> None:
    setup = ContractSetup(RNDPlugin, RNDOptions(obs_clip=clip))
    curiosity = _build(setup)
    world = ContractWorld(setup, curiosity)
    # Before any update the batch whitens itself; still clipped.
    first = world.rollout(novel_at=3)
    flat = first.next_observations.reshape(-1, *setup.observation_spec.shape)
    assert float(curiosity.normalize_observations(flat).abs().max()) <= clip
    for _ in range(3):
        curiosity.update(world.rollout())
    assert curiosity.obs_normalizer.rms.count == 3 * setup.steps * setup.envs
    # The checkerboard is far outside the familiar statistics: it saturates the clip.
    novel = world.novel.unsqueeze(0)
    normalized = curiosity.normalize_observations(novel)
    assert float(normalized.abs().max()) == pytest.approx(clip)
    familiar = curiosity.normalize_observations(world.frames)
    assert float(familiar.abs().max()) <= clip
    assert float(familiar.abs().mean()) < float(normalized.abs().mean())


def test_predictor_trains_on_a_fraction_of_the_batch() -> None:
    setup = ContractSetup(RNDPlugin, RNDOptions(update_proportion=0.25, epochs=2))
    curiosity = _build(setup)
    metrics = curiosity.update(ContractWorld(setup, curiosity).rollout())
    assert metrics["trained_fraction"] == pytest.approx(0.25)
    assert set(metrics) >= {"loss", "obs_std"}


def test_target_network_stays_fixed() -> None:
    setup = ContractSetup(RNDPlugin)
    curiosity = _build(setup)
    before = [p.clone() for p in curiosity.target.parameters()]
    world = ContractWorld(setup, curiosity)
    for _ in range(3):
        curiosity.update(world.rollout())
    assert all(not p.requires_grad for p in curiosity.target.parameters())
    assert all(
        torch.equal(a, b) for a, b in zip(before, curiosity.target.parameters(), strict=True)
    )


def test_reward_scores_the_next_observation_only() -> None:
    setup = ContractSetup(RNDPlugin)
    curiosity = _build(setup)
    world = ContractWorld(setup, curiosity)
    curiosity.update(world.rollout())
    batch = world.rollout()
    scrambled = Transitions(
        batch.observations.flip(0), batch.next_observations, batch.actions.flip(0), batch.dones
    )
    assert torch.equal(curiosity.rewards(batch), curiosity.rewards(scrambled))


def test_state_holds_optimizer_and_observation_statistics() -> None:
    setup = ContractSetup(RNDPlugin)
    curiosity = _build(setup)
    curiosity.update(ContractWorld(setup, curiosity).rollout())
    state = curiosity.state_dict()
    assert set(state) == {"target", "predictor", "optimizer", "obs_normalizer"}
    restored = _build(ContractSetup(RNDPlugin))
    restored.load_state_dict(state)
    assert restored.obs_normalizer.rms.count == curiosity.obs_normalizer.rms.count
    assert restored.optimizer.state_dict()["state"].keys() == state["optimizer"]["state"].keys()


def test_contract_on_token_latents() -> None:
    # The (16, 128) tokens of the jepa representation, smaller.
    check_curiosity_contract(
        ContractSetup(RNDPlugin, observation_spec=ObservationSpec((4, 8), "float32", "tokens"))
    )
