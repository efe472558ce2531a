"""Tests of the forward-dynamics curiosity family: contract, formulas, agent side, threads.

The mechanisms predict the latents of the host's representation stage: the
contract setups feed ``(32,)`` float32 vectors (the ``random`` stage's kind) and
some tests ``(16, 8)`` tokens (the kind of the ``jepa`` stage).
"""

from __future__ import annotations

import copy
import io
import math
import threading
from pathlib import Path
from typing import Any

import pytest
import torch
from pamiqx_fd_curiosity.imagination import combine_errors, imagination_weights
from pamiqx_fd_curiosity.mechanisms import (
    AdversarialCuriosity,
    DeltaMinimizeCuriosity,
    ImaginationCuriosity,
)
from pamiqx_fd_curiosity.meta import MetaCuriosity, meta_coefficients, meta_targets
from pamiqx_fd_curiosity.networks import CoreForwardDynamics, ForwardDynamics, standardise
from pamiqx_fd_curiosity.plugin import (
    AdversarialOptions,
    AdversarialPlugin,
    DeltaMinimizeOptions,
    DeltaMinimizePlugin,
    HierarchicalPlugin,
    MetaOptions,
    MetaPlugin,
    TTTE2EPlugin,
    TTTPlugin,
    UnifiedPlugin,
)

from pamiqx.api import (
    ActionSpec,
    BuildContext,
    Curiosity,
    CuriosityPlugin,
    ObservationSpec,
    PluginError,
    Transitions,
    hookimpl,
)
from pamiqx.testing import (
    ContractSetup,
    ContractWorld,
    check_curiosity_contract,
    check_device,
    check_no_gradient_leak,
    check_novelty,
    check_plugin_distribution,
    check_reward_shape,
    check_state_round_trip,
)

MULTI = ActionSpec("multi_discrete", (3, 3, 2))
# What the representation stage hands over: random-feature vectors, jepa-like tokens.
VECTORS = ObservationSpec((32,), "float32", "vector")
TOKENS = ObservationSpec((16, 8), "float32", "tokens")
IMAGES = ObservationSpec((16, 16, 3), "uint8", "image")
# Small networks where the test is about logic, not capacity.
SMALL: dict[str, Any] = {"hidden_dim": 64}
PLUGINS: dict[str, tuple[type[CuriosityPlugin], type[Any]]] = {
    "adversarial": (AdversarialPlugin, AdversarialOptions),
    "delta-minimize": (DeltaMinimizePlugin, DeltaMinimizeOptions),
    "meta": (MetaPlugin, MetaOptions),
}


def _small(name: str, **extra: Any) -> ContractSetup:
    plugin, options = PLUGINS[name]
    return ContractSetup(plugin, options(**SMALL, **extra), observation_spec=VECTORS)


def _traced(plugin: type[CuriosityPlugin], attribute: str) -> type[CuriosityPlugin]:
    """The plugin, with every agent step's ``attribute`` (a diagnostic) recorded in ``trace``."""

    class Traced(plugin):  # type: ignore[valid-type, misc]
        def build(self, *args: Any) -> Curiosity:
            curiosity = super().build(*args)
            step = curiosity.agent_step
            trace: list[torch.Tensor] = []

            def agent_step(
                observation: torch.Tensor, action: torch.Tensor | None, starts: torch.Tensor
            ) -> torch.Tensor | None:
                reward = step(observation, action, starts)
                if reward is not None:
                    trace.append(getattr(curiosity, attribute).clone())
                return reward

            curiosity.agent_step = agent_step  # type: ignore[method-assign]
            curiosity.trace = trace  # type: ignore[attr-defined]
            return curiosity

    return Traced


def _surprise(curiosity: Curiosity, batch: Transitions) -> torch.Tensor:
    """delta-minimize's error e_t of each transition of the batch, as scored while acting."""
    return torch.stack(curiosity.trace[-batch.shape[0] :])  # type: ignore[attr-defined]


def _top_level(curiosity: Curiosity, batch: Transitions) -> torch.Tensor:
    """meta's top (maximising) level component c_L * mean(δ_L^2), as scored while acting."""
    return torch.stack(curiosity.trace[-batch.shape[0] :])[:, -1]  # type: ignore[attr-defined]


def _drive(
    curiosity: Curiosity,
    observations: torch.Tensor,
    actions: torch.Tensor,
    starts: torch.Tensor | None = None,
) -> torch.Tensor:
    """Feed ``(T+1, E, ...)`` observations like the host, from a first step; ``(T, E)`` rewards."""
    steps, envs = actions.shape[0], observations.shape[1]
    if starts is None:
        starts = torch.zeros(steps + 1, envs, dtype=torch.bool)
        starts[0] = True
    rewards = torch.zeros(steps, envs)
    previous = None
    for t in range(steps + 1):
        with torch.inference_mode():
            reward = curiosity.agent_step(observations[t], previous, starts[t])
        if t == 0:
            assert reward is None
        else:
            assert reward is not None
            rewards[t - 1] = reward
        if t < steps:
            previous = actions[t]
    return rewards


def _familiar(setup: ContractSetup, curiosity: Curiosity, index: torch.Tensor) -> torch.Tensor:
    """The contract world's familiar frames at ``index`` (``(T, E)``)."""
    return ContractWorld(setup, curiosity).frames[index % setup.frames]


def _random_features_world(setup: ContractSetup, curiosity: Curiosity) -> ContractWorld:
    """The contract world with frames like the ``random`` stage's: dense, layer-normed.

    The contract's vector frames are one-hot, so a prediction error is tiny from
    the start; a fixed random projection, standardised, gives each frame the
    dense unit-scale latent that the ``random`` representation would.
    """
    world = ContractWorld(setup, curiosity)
    generator = torch.Generator().manual_seed(0)
    width = world.frames.shape[-1]
    projection = torch.randn(width, width, generator=generator)
    world.frames = standardise(world.frames @ projection)
    return world


def _train(setup: ContractSetup, updates: int) -> tuple[Curiosity, ContractWorld]:
    curiosity = setup.build()
    world = ContractWorld(setup, curiosity)
    for _ in range(updates):
        curiosity.update(world.rollout())
    return curiosity, world


# -- registration and contract ----------------------------------------------------------------


def test_plugins_register() -> None:
    entries = check_plugin_distribution("pamiqx-fd-curiosity")
    assert {e.name for e in entries} == {
        "adversarial",
        "delta-minimize",
        "meta",
        "hierarchical",
        "unified",
        "ttt",
        "ttt-e2e",
    }
    assert all(e.kind == "curiosity" for e in entries)


def test_contract_adversarial() -> None:
    check_curiosity_contract(ContractSetup(AdversarialPlugin, observation_spec=VECTORS))


# The TTT core steps through the contract's windows one step at a time (about a minute
# here); the default suite covers it in test_agent_side_matches_training_side_replay.
@pytest.mark.parametrize("core", ["qlstm", "qgru", pytest.param("ttt", marks=pytest.mark.slow)])
def test_contract_adversarial_on_a_reference_core(core: str) -> None:
    options = AdversarialOptions(hidden_dim=32, core=core, core_depth=2)
    check_curiosity_contract(ContractSetup(AdversarialPlugin, options, observation_spec=VECTORS))


def test_a_reference_core_is_the_forward_model() -> None:
    curiosity = _small("meta", core="qlstm", core_depth=3).build()
    assert isinstance(curiosity, MetaCuriosity)
    for level in curiosity.modules()["fd"]:
        assert isinstance(level, CoreForwardDynamics)
        assert level.core.kind == "qlstm" and len(level.core.blocks) == 3
        assert level.hidden_dim == level.core.state_dim


def test_contract_adversarial_multi_discrete() -> None:
    check_curiosity_contract(
        ContractSetup(AdversarialPlugin, observation_spec=VECTORS, action_spec=MULTI)
    )


def test_contract_delta_minimize() -> None:
    """Every check; the novelty check compares delta-minimize's *surprise* e_t.

    The defining property does not hold for delta-minimize's reward by its
    definition: when a novel frame arrives after familiar ones the error jumps,
    so ``-(e_t - e_{t-1})`` is negative there (see the two tests below for
    what its formula does promise). What is checked here is that the error it
    is built on (the imagination-averaged e_t computed in the agent's step)
    is higher for the novel frame than for familiar ones.
    """
    check_curiosity_contract(
        ContractSetup(_traced(DeltaMinimizePlugin, "last_error"), observation_spec=VECTORS),
        reward_fn=_surprise,
    )


def test_contract_delta_minimize_multi_discrete() -> None:
    setup = ContractSetup(
        _traced(DeltaMinimizePlugin, "last_error"),
        DeltaMinimizeOptions(**SMALL),
        observation_spec=VECTORS,
        action_spec=MULTI,
    )
    check_curiosity_contract(setup, reward_fn=_surprise)


def test_contract_meta() -> None:
    """Every check; novelty on the top level's component (meta mixes signs).

    With the default ``maximize_top`` coefficients ``[-1, +1]`` the bottom
    level's component is minimised and the top level's is maximised
    (CURIOSITY.md "Defining property": test the maximising part). The novelty
    check compares ``+1 * mean(δ_1^2)`` as computed in the agent's step: a
    novel frame leaves a residual the top level has not learned to predict.
    """
    check_curiosity_contract(
        ContractSetup(_traced(MetaPlugin, "last_components"), observation_spec=VECTORS),
        _top_level,
    )


# The replay-windows regime's small sizes: 16 new steps per call, 4 windows of 8 steps.
REPLAY: dict[str, Any] = {
    "regime": "replay-windows",
    "replay_size": 64,
    "train_every": 16,
    "windows": 4,
    "window_length": 8,
    "windows_per_step": 2,
}


@pytest.mark.parametrize("name", ["adversarial", "delta-minimize", "meta"])
def test_contract_under_replay_windows(name: str) -> None:
    """Every check but "repeated updates on one batch lower the loss".

    Under ``replay-windows`` an update trains only once new steps were scored,
    so updating on one batch again trains nothing; ``test_fd_replay.py`` shows
    the loss and the rewards falling as steps arrive.
    """
    plugin, options = PLUGINS[name]
    reward_fn = {"delta-minimize": _surprise, "meta": _top_level}.get(name)
    attribute = {"delta-minimize": "last_error", "meta": "last_components"}.get(name)
    traced = plugin if attribute is None else _traced(plugin, attribute)
    setup = ContractSetup(traced, options(**SMALL, **REPLAY), observation_spec=VECTORS)
    check_reward_shape(setup)
    check_no_gradient_leak(setup)
    check_state_round_trip(setup)
    check_device(setup)
    check_novelty(setup, reward_fn=reward_fn)


# -- formulas ---------------------------------------------------------------------------------


def test_imagination_weights_for_three_steps() -> None:
    # w = exp(-1/3); weights w^(k-1) / (1 + w + w^2).
    expected = torch.tensor([0.4484408637990408, 0.3213219198527688, 0.23023721634819053])
    assert torch.allclose(imagination_weights(3), expected, atol=1e-7)
    assert torch.allclose(imagination_weights(1), torch.tensor([1.0]))
    assert float(imagination_weights(5).sum()) == pytest.approx(1.0)


def test_combine_errors_weighs_the_first_predictions_by_their_own_count() -> None:
    # Three steps; the first world has 2 predictions, the second 1, the third all 3.
    errors = torch.tensor([[1.0, 1.0, 1.0], [4.0, 4.0, 4.0], [9.0, 9.0, 9.0]])
    valid = torch.tensor([[True, True, True], [True, False, True], [False, False, True]])
    combined = combine_errors(errors, valid)
    # n = 2 available: the reference's average_exponentially of 2 values, w = exp(-1/2).
    w2 = math.exp(-1 / 2)
    expected_two = (1 * 1 + w2 * 4) / (1 + w2)
    # n = 3: w = exp(-1/3), the K-step weights.
    w3 = math.exp(-1 / 3)
    expected_three = (1 + w3 * 4 + w3**2 * 9) / (1 + w3 + w3**2)
    assert combined.tolist() == pytest.approx([expected_two, 1.0, expected_three], rel=1e-6)
    # Not the K-step weights renormalised over the two available (the former rule).
    w = imagination_weights(3).tolist()
    assert combined[0] != pytest.approx((w[0] * 1 + w[1] * 4) / (w[0] + w[1]), rel=1e-3)


def test_meta_coefficients_and_cascade() -> None:
    assert meta_coefficients("maximize_top", 2) == [-1.0, 1.0]
    assert meta_coefficients("maximize_top", 3) == [-1.0, -1.0, 1.0]
    assert meta_coefficients("all_minimize", 2) == [-1.0, -1.0]
    assert meta_coefficients("all_maximize", 2) == [1.0, 1.0]
    assert meta_coefficients("linear", 3) == [-1.0, 0.0, 1.0]
    target = torch.randn(3, 16) * 5 + 2
    predictions = torch.zeros(2, 3, 16)
    predictions[0] = standardise(target)  # level 0 predicts perfectly
    targets, squared = meta_targets(predictions, target)
    assert torch.allclose(targets[0].mean(-1), torch.zeros(3), atol=1e-5)
    # The reference's Standardize: the unbiased std over the whole latent.
    assert torch.allclose(targets[0].std(-1, unbiased=True), torch.ones(3), atol=1e-4)
    assert torch.allclose(squared[0], torch.zeros(3), atol=1e-8)
    # Nothing left to explain: tau_1 = delta_0 = 0 standardises to 0 (eps), so delta_1 = 0.
    assert torch.allclose(squared[1], torch.zeros(3), atol=1e-8)
    predictions[0] = 0.0  # level 0 predicts nothing: the whole standardised target is left
    _, squared = meta_targets(predictions, target)
    # mean(x^2) of a vector standardised with the unbiased std is (D - 1) / D.
    assert torch.allclose(squared, torch.full((2, 3), 15 / 16), atol=1e-4)


# -- agent side -------------------------------------------------------------------------------


@pytest.mark.parametrize("name", list(PLUGINS))
def test_first_step_returns_none(name: str) -> None:
    setup = _small(name)
    curiosity = setup.build()
    frames = _familiar(setup, curiosity, torch.tensor([[0, 1], [1, 2]]))
    starts = torch.tensor([True, True])
    with torch.inference_mode():
        assert curiosity.agent_step(frames[0], None, starts) is None
        reward = curiosity.agent_step(frames[1], torch.tensor([1, 2]), ~starts)
    assert reward is not None and reward.shape == (2,) and bool(torch.isfinite(reward).all())


@pytest.mark.parametrize("core", ["gru", "qlstm", "qgru", "ttt"])
@pytest.mark.parametrize("name", list(PLUGINS))
def test_agent_side_matches_training_side_replay(name: str, core: str) -> None:
    """The per-step imagination (agent) and the sequence imagination (training) agree.

    From a first step (zero state) the rewards scored while acting equal those
    recomputed by replaying the batch through the same weights, with every core.
    """
    setup = _small(name, core=core)
    curiosity, _ = _train(setup, 3)
    batch = ContractWorld(setup, curiosity).rollout()  # a new world: starts with a first step
    assert batch.intrinsic is not None
    if isinstance(curiosity, MetaCuriosity):
        expected = curiosity.level_rewards(batch).sum(0)
    elif isinstance(curiosity, DeltaMinimizeCuriosity):
        errors = curiosity.prediction_errors(batch)
        expected = torch.cat([torch.zeros(1, 2), -(errors[1:] - errors[:-1])])
    else:
        assert isinstance(curiosity, AdversarialCuriosity)
        expected = curiosity.prediction_errors(batch)
    assert torch.allclose(batch.intrinsic, expected, atol=1e-5), batch.intrinsic - expected


@pytest.mark.parametrize("name", list(PLUGINS))
def test_episode_start_resets_agent_state(name: str) -> None:
    """At an episode start the reward is 0 and the world continues exactly like a fresh one."""
    setup = _small(name)
    trained, _ = _train(setup, 3)
    steps, reset_at = 24, 10
    index = torch.arange(steps + 1).unsqueeze(1) + torch.tensor([0, 1])
    observations = _familiar(setup, trained, index)
    actions = (index[1:] % 4).long()
    starts = torch.zeros(steps + 1, 2, dtype=torch.bool)
    starts[0] = True
    starts[reset_at, 0] = True  # world 0 starts a new episode at o_10
    rewards = _drive(trained, observations, actions, starts)
    assert float(rewards[reset_at - 1, 0]) == 0.0  # the transition into the reset observation
    assert float(rewards[reset_at - 1, 1]) != 0.0 or name == "delta-minimize"
    fresh = setup.build(seed=1)
    fresh.load_state_dict(trained.state_dict())
    again = _drive(fresh, observations[reset_at:], actions[reset_at:])
    assert torch.allclose(rewards[reset_at:, 0], again[:, 0], atol=1e-5)
    # World 1 was not reset, so its rewards differ from a fresh start (its state carries on).
    assert not torch.allclose(rewards[reset_at:, 1], again[:, 1], atol=1e-5)


@pytest.mark.parametrize("name", list(PLUGINS))
def test_mid_run_state_round_trip(name: str) -> None:
    """Agent-side state (FD state, pending predictions, e_{t-1}) survives a checkpoint."""
    setup = _small(name)
    trained, world = _train(setup, 2)
    world.rollout()  # agent side mid-run: warm state, pending predictions
    buffer = io.BytesIO()
    torch.save(trained.state_dict(), buffer)
    buffer.seek(0)
    restored = setup.build(seed=1)
    restored.load_state_dict(torch.load(buffer, weights_only=True))
    twin = ContractWorld(setup, restored)
    twin.phase, twin.prev_action, twin.first = world.phase.clone(), world.prev_action, False
    expected, got = world.rollout(novel_at=5), twin.rollout(novel_at=5)
    assert expected.intrinsic is not None and got.intrinsic is not None
    assert torch.allclose(expected.intrinsic, got.intrinsic, atol=1e-6)
    # Training continues identically too (agent/... statistics are diagnostics, not state).
    trained_metrics, restored_metrics = trained.update(expected), restored.update(got)
    assert {k: v for k, v in trained_metrics.items() if not k.startswith("agent/")} == (
        pytest.approx({k: v for k, v in restored_metrics.items() if not k.startswith("agent/")})
    )


def test_delta_minimize_scores_the_change_of_error() -> None:
    setup = ContractSetup(
        _traced(DeltaMinimizePlugin, "last_error"),
        DeltaMinimizeOptions(**SMALL),
        observation_spec=VECTORS,
    )
    curiosity, _ = _train(setup, 3)
    fresh_world = ContractWorld(setup, curiosity)
    batch = fresh_world.rollout()
    errors = torch.stack(curiosity.trace[-batch.shape[0] :])  # type: ignore[attr-defined]
    assert batch.intrinsic is not None
    assert torch.equal(batch.intrinsic[0], torch.zeros(2))  # first scored step
    assert torch.allclose(batch.intrinsic[1:], -(errors[1:] - errors[:-1]), atol=1e-6)


# -- learning and the properties each formula promises ----------------------------------------


def test_fd_one_step_error_on_the_familiar_cycle_falls() -> None:
    setup = _small("adversarial")
    curiosity = setup.build()
    world = _random_features_world(setup, curiosity)
    first_batch = world.rollout()
    first_metrics = curiosity.update(first_batch)
    first = first_metrics["error_1step"]
    for _ in range(60):
        metrics = curiosity.update(world.rollout())
    assert metrics["error_1step"] < 0.2 * first, (first, metrics["error_1step"])
    # The agent side's mean error since the previous update is reported too.
    assert 0 < metrics["agent/error"] < 0.2 * first_metrics["agent/error"]
    # The agent side follows: familiar rewards scored while acting fell as well.
    late = world.rollout()
    assert first_batch.intrinsic is not None and late.intrinsic is not None
    assert float(late.intrinsic[2:].mean()) < 0.2 * float(first_batch.intrinsic[2:].mean())


def test_a_qlstm_forward_model_learns_the_familiar_cycle() -> None:
    setup = _small("adversarial", core="qlstm")
    curiosity = setup.build()
    world = _random_features_world(setup, curiosity)
    first = curiosity.update(world.rollout())["error_1step"]
    for _ in range(60):
        metrics = curiosity.update(world.rollout())
    assert metrics["error_1step"] < 0.2 * first, (first, metrics["error_1step"])


def test_meta_levels_learn() -> None:
    setup = _small("meta")
    curiosity = setup.build()
    world = _random_features_world(setup, curiosity)
    first = curiosity.update(world.rollout())
    for _ in range(60):
        metrics = curiosity.update(world.rollout())
    assert metrics["loss_level0"] < 0.2 * first["loss_level0"], (first, metrics)
    # maximize_top: the bottom level's component is <= 0, the top level's >= 0.
    assert metrics["agent/reward_level0"] <= 0 <= metrics["agent/reward_level1"]


@pytest.fixture(scope="module")
def trained_delta() -> tuple[ContractSetup, Curiosity, ContractWorld]:
    setup = ContractSetup(
        _traced(DeltaMinimizePlugin, "last_error"),
        DeltaMinimizeOptions(**SMALL),
        observation_spec=VECTORS,
    )
    curiosity, world = _train(setup, 60)
    return setup, curiosity, world


def test_delta_minimize_novel_frame(trained_delta: Any) -> None:
    """What delta-minimize does with a novel frame: penalised on arrival, rewarded on recovery.

    The error jumps at the novel frame (reward ``-(e_t - e_{t-1}) < 0``) and
    falls again when the familiar cycle resumes (reward > 0): novelty as such is
    not rewarded, learning progress (error going down) is.
    """
    _, curiosity, world = trained_delta
    at = 16
    probe = world.rollout(novel_at=at)
    assert probe.intrinsic is not None
    errors = torch.stack(curiosity.trace[-probe.shape[0] :])
    assert float(errors[at].mean()) > 3 * float(errors[2:at].mean())  # the surprise is there
    assert float(probe.intrinsic[at].mean()) < 0  # ... and penalised
    assert float(probe.intrinsic[at + 1 :].sum(0).mean()) > 0  # recovery is rewarded


def test_delta_minimize_rewards_the_world_becoming_predictable(trained_delta: Any) -> None:
    """The property the formula promises: reward when the world becomes more predictable.

    After training on the familiar cycle (4 frames), the agent sees the cycle,
    then 8 steps of fresh random noise (unpredictable), then the cycle again.
    Summed over one cycle of steps, the rewards telescope to the fall of the
    error: positive where the cycle resumes, negative at the noise onset, and
    about 0 over a familiar cycle (the error is periodic there).
    """
    setup, curiosity, _ = trained_delta
    steps, noise_from, noise_to = 32, 8, 16
    generator = torch.Generator().manual_seed(0)
    index = torch.arange(steps + 1).unsqueeze(1) + torch.tensor([0, 1])
    observations = _familiar(setup, curiosity, index).clone()
    shape = observations[noise_from:noise_to].shape
    observations[noise_from:noise_to] = torch.randn(shape, generator=generator)
    actions = (index[1:] % 4).long()
    rewards = _drive(curiosity, observations, actions)
    # rewards[t] scores o_{t+1}: noise arrives at t = noise_from - 1, the cycle at noise_to - 1.
    onset = rewards[noise_from - 1 : noise_from + 3].sum(0)
    recovery = rewards[noise_to - 1 : noise_to + 3].sum(0)
    familiar = rewards[24:28].sum(0)
    assert bool((onset < 0).all()), onset
    assert bool((recovery > 0).all()), recovery
    assert float(recovery.min()) > 5 * float(familiar.abs().max()), (recovery, familiar)


# -- threads ----------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["adversarial", "meta"])
def test_agent_steps_while_training_in_another_thread(name: str) -> None:
    setup = _small(name)
    curiosity = setup.build()
    batch = ContractWorld(setup, curiosity).rollout()
    stop = threading.Event()
    errors: list[BaseException] = []
    updates = [0]

    def train() -> None:
        try:
            while not stop.is_set():
                curiosity.update(batch)
                updates[0] += 1
        except BaseException as error:  # noqa: BLE001 - reported by the test
            errors.append(error)

    trainer = threading.Thread(target=train)
    trainer.start()
    try:
        world = ContractWorld(setup, curiosity)
        rewards = [world.rollout().intrinsic for _ in range(10)]  # 320 agent steps
    finally:
        stop.set()
        trainer.join()
    assert not errors, errors
    assert updates[0] > 0
    assert all(r is not None and bool(torch.isfinite(r).all()) for r in rewards)
    # The inference copy ends up with the trained weights.
    for a, b in zip(
        curiosity.modules()["fd"].parameters(),
        curiosity.modules()["fd_agent"].parameters(),
        strict=True,
    ):
        assert torch.equal(a, b)


def test_update_syncs_the_inference_copy() -> None:
    setup = _small("adversarial")
    curiosity = setup.build()
    assert isinstance(curiosity, AdversarialCuriosity)
    before = copy.deepcopy(curiosity.agent_model.state_dict())
    batch = ContractWorld(setup, curiosity).rollout()
    curiosity.update(batch)
    after = curiosity.agent_model.state_dict()
    assert any(not torch.equal(before[k], after[k]) for k in before)
    for k, v in curiosity.model.state_dict().items():
        assert torch.equal(after[k], v)
    assert all(not p.requires_grad for p in curiosity.agent_model.parameters())


@pytest.mark.parametrize("name", sorted(PLUGINS))
@pytest.mark.parametrize("discrete", [True, False])
def test_one_world_scores_and_trains(name: str, discrete: bool) -> None:
    """A single world ((1,) actions while acting, (T, 1) in a batch) is not a multi-discrete row."""
    plugin, options = PLUGINS[name]
    spec = ActionSpec("discrete", (4,)) if discrete else MULTI
    setup = ContractSetup(
        plugin, options(**SMALL), observation_spec=VECTORS, action_spec=spec, envs=1, steps=8
    )
    curiosity = setup.build()
    batch = ContractWorld(setup, curiosity).rollout()
    assert batch.intrinsic is not None and batch.intrinsic.shape == (8, 1)
    assert curiosity.rewards(batch).shape == (8, 1)
    assert "loss" in curiosity.update(batch)


# -- the latents of the representation stage --------------------------------------------------

LATENT_MECHANISMS: dict[str, type[CuriosityPlugin]] = {
    "adversarial": AdversarialPlugin,
    "delta-minimize": DeltaMinimizePlugin,
    "meta": MetaPlugin,
    "hierarchical": HierarchicalPlugin,
    "unified": UnifiedPlugin,
    "ttt": TTTPlugin,
}


@pytest.mark.parametrize("name", sorted(LATENT_MECHANISMS))
def test_raw_images_are_refused_at_build_with_the_fix(name: str) -> None:
    plugin = LATENT_MECHANISMS[name]
    with pytest.raises(PluginError) as raised:
        plugin().build(plugin.Options(), BuildContext("t", 0), IMAGES, ActionSpec("discrete", (4,)))
    assert str(raised.value) == (
        f"{name} predicts latents, not pixels: set [representation] plugin = "
        '"random" (frozen random features) or "jepa", and [models.encoder] plugin = '
        '"mlp-encoder" / "token-encoder".'
    )


def test_ttt_e2e_still_takes_images() -> None:
    options = TTTE2EPlugin.Options(hidden_dim=32, ttt_dim=8, latent_dim=16, encoder_feature_dim=32)
    built = TTTE2EPlugin().build(options, BuildContext("t", 0), IMAGES, MULTI)
    assert built.policy_network({}) is not None


@pytest.mark.parametrize("spec", [VECTORS, TOKENS], ids=["vectors", "tokens"])
def test_the_latent_is_the_observation_predicted_whole(spec: ObservationSpec) -> None:
    """o_t is the stage's latent as it is (tokens flattened): the FD predicts all of it.

    With K = 1 adversarial's reward of the transition into ``o_{t+1}`` is
    ``mean((fd(o_t, a_t) - o_{t+1})^2)`` over every value of the latent.
    """
    setup = ContractSetup(
        AdversarialPlugin, AdversarialOptions(hidden_dim=16, max_imagination_steps=1), spec
    )
    curiosity = setup.build()
    assert isinstance(curiosity, AdversarialCuriosity)
    width = 1
    for size in spec.shape:
        width *= size
    assert isinstance(curiosity.model, ForwardDynamics)
    assert curiosity.model.head.out_features == width
    generator = torch.Generator().manual_seed(0)
    observations = torch.randn(5, 2, *spec.shape, generator=generator)
    actions = torch.randint(0, 4, (4, 2), generator=generator)
    rewards = _drive(curiosity, observations, actions)
    flat = observations.reshape(5, 2, width)
    hidden = torch.zeros(2, 16)
    with torch.no_grad():
        for t in range(4):
            one_hot = torch.nn.functional.one_hot(actions[t], 4).float()
            prediction, hidden = curiosity.model(flat[t], one_hot, hidden)
            expected = (prediction - flat[t + 1]).pow(2).mean(dim=-1)
            assert torch.allclose(rewards[t], expected, atol=1e-6), t


@pytest.mark.parametrize("name", list(PLUGINS))
def test_token_latents_score_and_train(name: str) -> None:
    """On (16, 8) tokens the agent side matches the training side's replay, and training learns."""
    plugin, options = PLUGINS[name]
    setup = ContractSetup(plugin, options(**SMALL), TOKENS)
    curiosity = setup.build()
    generator = torch.Generator().manual_seed(0)
    frames = standardise(torch.randn(4, 128, generator=generator)).reshape(4, 16, 8)
    steps = 16
    index = (torch.arange(steps + 1).unsqueeze(1) + torch.tensor([0, 1])) % 4
    observations, actions = frames[index], index[1:] % 4
    batch = Transitions(
        observations[:-1], observations[1:], actions, torch.zeros(steps, 2, dtype=torch.bool)
    )
    first = curiosity.update(batch)["loss"]
    for _ in range(30):
        last = curiosity.update(batch)["loss"]
    assert last < first
    fresh = setup.build()  # a fresh agent side with the trained weights
    fresh.load_state_dict(curiosity.state_dict())
    rewards = _drive(fresh, observations, actions)
    if isinstance(fresh, MetaCuriosity):
        expected = fresh.level_rewards(batch).sum(0)
    else:
        assert isinstance(fresh, ImaginationCuriosity)
        errors = fresh.prediction_errors(batch)
        expected = errors
        if isinstance(fresh, DeltaMinimizeCuriosity):
            expected = torch.cat([torch.zeros(1, 2), -(errors[1:] - errors[:-1])])
    assert torch.allclose(rewards, expected, atol=1e-5), rewards - expected


# -- in the host ------------------------------------------------------------------------------

_EXPERIMENT = """
name = "fd-latents"
seed = 0

[run]
max_steps = 64
device = "cpu"
mode = "lockstep"
checkpoint_every = 0
log_every = 32
log_dir = "{log_dir}"

[tracking]
enabled = false

[environment]
plugin = "sim-maze"
size = 16

[representation]
plugin = "random"
latent_dim = 16
channels = [8]

[models.encoder]
plugin = "mlp-encoder"
feature_dim = 16

[models.policy]
plugin = "actor-critic"
hidden = [16]

[curiosity]
plugin = "{plugin}"
hidden_dim = 16
{curiosity}

[policy]
rollout_steps = 32
minibatch_size = 32
epochs = 1
{extra}
"""


@pytest.mark.parametrize("plugin", ["meta", "hierarchical"])
def test_runs_in_the_host_on_the_random_stage(plugin: str, tmp_path: Path) -> None:
    """A lock-step run: the random stage's latents reach the mechanism and it trains."""
    from rich.console import Console

    from pamiqx.experiment import load_experiment
    from pamiqx.plugins.manager import load_plugins
    from pamiqx.runtime.session import run_experiment

    path = tmp_path / "exp.toml"
    extra = "sequence_length = 8" if plugin == "hierarchical" else ""
    path.write_text(
        _EXPERIMENT.format(log_dir=tmp_path / "logs", plugin=plugin, curiosity="", extra=extra)
    )
    manager = load_plugins()
    emitted: list[dict[str, float]] = []

    class Recorder:
        @hookimpl
        def pamiqx_metrics_emitted(self, step: int, metrics: dict[str, float]) -> None:
            emitted.append(dict(metrics))

    manager.register_module(Recorder(), "test-recorder", "0", "recorder")
    resolved = load_experiment(path, [], manager)
    assert run_experiment(resolved, manager, console=Console(file=io.StringIO())) == 0
    keys = set().union(*emitted)
    wanted = "curiosity/loss" if plugin == "meta" else "loss/aux"
    assert wanted in keys, sorted(keys)


@pytest.fixture(scope="module")
def manager() -> Any:
    from pamiqx.plugins.manager import load_plugins

    return load_plugins()


@pytest.mark.parametrize("line", ["latent_dim = 64", "encoder_channels = [16, 32]"])
@pytest.mark.parametrize("plugin", sorted(LATENT_MECHANISMS))
def test_the_encoder_options_are_gone(plugin: str, line: str, manager: Any, tmp_path: Path) -> None:
    """An experiment file still setting the old encoder's options fails validation, naming it."""
    from pamiqx.api.errors import ExperimentError
    from pamiqx.experiment import load_experiment

    path = tmp_path / "exp.toml"
    path.write_text(_EXPERIMENT.format(log_dir=tmp_path, plugin=plugin, curiosity=line, extra=""))
    key = line.split()[0]
    with pytest.raises(ExperimentError, match=rf"curiosity\.{key}\b.*unknown key"):
        load_experiment(path, [], manager)
    path.write_text(_EXPERIMENT.format(log_dir=tmp_path, plugin=plugin, curiosity="", extra=""))
    assert load_experiment(path, [], manager).curiosity.entry.name == plugin
