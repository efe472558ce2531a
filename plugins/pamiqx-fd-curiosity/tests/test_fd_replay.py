"""The forward models' replay-windows regime (the reference's): memory, windows, losses.

Checked against hand computations of what the reference's trainers do
(``trainers/forward_dynamics.py``: ``HiddenStateFDTrainer`` for adversarial and
delta-minimize, ``HiddenStateFDTrainerExplicitTarget`` for meta).
"""

from __future__ import annotations

import io
import math
from typing import Any

import pytest
import torch
from pamiqx_fd_curiosity.base import ForwardDynamicsCuriosity
from pamiqx_fd_curiosity.meta import MetaCuriosity, meta_targets
from pamiqx_fd_curiosity.networks import CoreForwardDynamics, ForwardModel, standardise
from pamiqx_fd_curiosity.plugin import (
    AdversarialOptions,
    AdversarialPlugin,
    DeltaMinimizeOptions,
    MetaOptions,
    MetaPlugin,
)
from pamiqx_fd_curiosity.replay import StepMemory

from pamiqx.api import CoreSizes, ObservationSpec
from pamiqx.testing import ContractSetup, ContractWorld

VECTORS = ObservationSpec((32,), "float32", "vector")
# Small windows: 16 new steps per training call, 4 windows of 8 steps, 2 per gradient step.
REPLAY: dict[str, Any] = {
    "hidden_dim": 32,
    "regime": "replay-windows",
    "replay_size": 64,
    "train_every": 16,
    "windows": 4,
    "window_length": 8,
    "windows_per_step": 2,
}


def _setup(plugin: Any, options: Any, steps: int = 16) -> ContractSetup:
    return ContractSetup(plugin, options, observation_spec=VECTORS, steps=steps)


def _dense_world(setup: ContractSetup, curiosity: Any) -> ContractWorld:
    """The contract world with dense unit-scale frames (a fixed random projection)."""
    world = ContractWorld(setup, curiosity)
    projection = torch.randn(32, 32, generator=torch.Generator().manual_seed(0))
    world.frames = standardise(world.frames @ projection)
    return world


# -- the memory ------------------------------------------------------------------------------


def test_memory_keeps_the_newest_steps_in_order_and_gathers_windows() -> None:
    memory = StepMemory(5)
    for t in range(8):  # steps 0..7 of two worlds; 3..7 are kept
        memory.add({"x": torch.tensor([[t, 100 + t], [t, 100 + t]]).T.float()})
    assert memory.size == 5 and memory.added == 8 and memory.num_envs == 2
    windows = memory.windows(torch.tensor([0, 2]), torch.tensor([1, 0]), 3)["x"]
    assert windows.shape == (3, 2, 2)
    assert windows[:, 0, 0].tolist() == [103.0, 104.0, 105.0]  # world 1 from the oldest
    assert windows[:, 1, 0].tolist() == [5.0, 6.0, 7.0]  # world 0, ending at the newest
    with pytest.raises(ValueError, match="does not fit"):
        memory.windows(torch.tensor([3]), torch.tensor([0]), 3)


def test_memory_round_trips_and_starts_over_for_other_worlds() -> None:
    memory = StepMemory(4)
    for t in range(6):
        memory.add({"x": torch.full((1, 2), float(t))})
    restored = StepMemory(4)
    restored.load_state_dict(memory.state_dict(), torch.device("cpu"))
    assert restored.added == 6 and restored.size == 4
    start, world = torch.tensor([0]), torch.tensor([0])
    torch.testing.assert_close(restored.windows(start, world, 4), memory.windows(start, world, 4))
    memory.add({"x": torch.zeros(3, 2)})  # three worlds now
    assert memory.size == 1 and memory.num_envs == 3


# -- the scan path ---------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["qlstm", "qgru"])
def test_a_stack_forward_model_runs_a_window_with_the_scan_as_it_steps(kind: Any) -> None:
    torch.manual_seed(0)
    model = CoreForwardDynamics(6, 3, kind, CoreSizes(depth=2, width=8, ff_ratio=2.0)).double()
    steps, envs = 29, 3
    latents = torch.randn(steps, envs, 6, dtype=torch.float64)
    actions = torch.randn(steps, envs, 3, dtype=torch.float64)
    dones = torch.rand(steps, envs) < 0.2
    hidden = torch.randn(envs, model.hidden_dim, dtype=torch.float64)
    scanned = model.run_window(latents, actions, dones, hidden)
    stepped = ForwardModel.run_window(model, latents, actions, dones, hidden)
    for a, b in zip(scanned, stepped, strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-9)


# -- cadence and stored states ---------------------------------------------------------------


class _Driver:
    """Acts in the familiar cycle like the host: the first call ever scores nothing."""

    def __init__(self, curiosity: Any, world: ContractWorld) -> None:
        self.curiosity, self.world = curiosity, world
        self.t = 0
        self.previous: torch.Tensor | None = None

    def frames(self, t: int) -> torch.Tensor:
        return self.world.frames[(self.world.phase + t) % self.world.setup.frames]

    def steps(self, count: int) -> None:
        for _ in range(count):
            starts = torch.full((2,), self.t == 0)
            with torch.inference_mode():
                self.curiosity.agent_step(self.frames(self.t), self.previous, starts)
            self.previous = torch.randint(0, 4, (2,))
            self.t += 1


def test_training_waits_for_train_every_new_steps_then_takes_windows_per_step() -> None:
    setup = _setup(AdversarialPlugin, AdversarialOptions(**REPLAY))
    curiosity = setup.build()
    driver = _Driver(curiosity, _dense_world(setup, curiosity))
    driver.steps(16)  # 15 transitions scored and stored
    assert curiosity.memory.added == 15
    assert "gradient_steps" not in curiosity.update(_empty_batch())
    driver.steps(1)  # 16 new steps: one call of 4 windows, 2 per gradient step
    metrics = curiosity.update(_empty_batch())
    assert metrics["gradient_steps"] == 2.0
    assert metrics["replay_steps"] == 16.0
    assert "gradient_steps" not in curiosity.update(_empty_batch())  # nothing new since
    driver.steps(32)  # two calls' worth at once: both are paid
    assert curiosity.update(_empty_batch())["gradient_steps"] == 4.0


def _empty_batch() -> Any:
    from pamiqx.api import Transitions

    zeros = torch.zeros(0, 2)
    return Transitions(zeros.unsqueeze(-1), zeros.unsqueeze(-1), zeros.long(), zeros.bool())


def test_each_stored_state_is_the_acting_model_state_before_its_step() -> None:
    setup = _setup(AdversarialPlugin, AdversarialOptions(**REPLAY))
    curiosity = setup.build()
    _Driver(curiosity, _dense_world(setup, curiosity)).steps(13)
    steps = curiosity.memory.windows(torch.tensor([0]), torch.tensor([1]), 12)
    model = curiosity.agent_model
    assert torch.count_nonzero(steps["hidden"][0]) == 0  # the episode's first state
    assert torch.count_nonzero(steps["hidden"][1]) > 0
    for t in range(11):
        _, after = model(steps["latent"][t], steps["action"][t], steps["hidden"][t])
        torch.testing.assert_close(steps["hidden"][t + 1], after)
        torch.testing.assert_close(steps["next_latent"][t], steps["latent"][t + 1])


# -- the losses, by hand ---------------------------------------------------------------------


def test_the_window_loss_is_the_references_imagination_rollout_loss() -> None:
    options = AdversarialOptions(**REPLAY)  # K = 3, L = 8: windows of 10 steps
    setup = _setup(AdversarialPlugin, options)
    curiosity = setup.build()
    _Driver(curiosity, _dense_world(setup, curiosity)).steps(21)
    window = curiosity.memory.windows(torch.tensor([3, 9]), torch.tensor([0, 1]), 10)
    loss, metrics = curiosity._window_loss(window)
    # The reference: depth i (0-based) predicts o_{s+i+1} for the L starts s = 0..L-1, fed
    # its own previous prediction from depth 1 on; per-depth MSE, then the exponential
    # average with w = exp(-1/K).
    model, K, L = curiosity.model, 3, 8
    with torch.no_grad():
        per_depth = []
        states = [window["hidden"][0]]
        for t in range(L + K - 1):
            _, h = model(window["latent"][t], window["action"][t], states[-1])
            states.append(h)
        for i in range(K):
            errors = []
            for s in range(L):
                latent, h = window["latent"][s], states[s]
                for j in range(i + 1):
                    latent, h = model(latent, window["action"][s + j], h)
                errors.append((latent - window["next_latent"][s + i]).pow(2).mean())
            per_depth.append(torch.stack(errors).mean())
    w = math.exp(-1 / K)
    expected = sum(w**i * e for i, e in enumerate(per_depth)) / sum(w**i for i in range(K))
    assert float(loss.detach()) == pytest.approx(float(expected), rel=1e-5)
    for i in range(K):
        assert metrics[f"error_{i + 1}step"] == pytest.approx(float(per_depth[i]), rel=1e-5)


def test_meta_trains_on_the_targets_stored_at_acting_time() -> None:
    setup = _setup(MetaPlugin, MetaOptions(**REPLAY))
    curiosity: MetaCuriosity = setup.build()  # type: ignore[assignment]
    driver = _Driver(curiosity, _dense_world(setup, curiosity))
    driver.steps(17)  # 16 stored: the first training call
    window = curiosity.memory.windows(torch.tensor([2]), torch.tensor([0]), 8)
    # Stored: the cascade of the acting predictions (agent copy, states before the step).
    levels = curiosity._levels(curiosity.agent_model)
    with torch.no_grad():
        for t in range(7):
            predictions = torch.stack(
                [
                    level(window["latent"][t], window["action"][t], window["hidden"][t][:, i])[0]
                    for i, level in enumerate(levels)
                ]
            )
            expected, _ = meta_targets(predictions, window["latent"][t + 1])
            torch.testing.assert_close(window["targets"][t].transpose(0, 1), expected)
    assert curiosity.update(_empty_batch())["gradient_steps"] == 2.0
    # The trained models would now compute other upper-level targets; training reads the
    # stored ones: level i's MSE of its window prediction against them.
    loss, metrics = curiosity._window_loss(window)
    manual = 0.0
    with torch.no_grad():
        trained: list[torch.Tensor] = []
        for i, level in enumerate(curiosity._levels(curiosity.model)):
            prediction, _, _ = level.run_window(
                window["latent"], window["action"], window["done"], window["hidden"][0][:, i]
            )
            trained.append(prediction)
            level_loss = (prediction - window["targets"][:, :, i]).pow(2).mean()
            assert metrics[f"loss_level{i}"] == pytest.approx(float(level_loss), rel=1e-5)
            manual += float(level_loss)
        recomputed, _ = meta_targets(torch.stack(trained)[:, :7], window["latent"][1:])
    assert float(loss.detach()) == pytest.approx(manual, rel=1e-5)
    assert not torch.allclose(recomputed[1], window["targets"][:7, :, 1], atol=1e-4)


# -- learning, contract, checkpoint ----------------------------------------------------------


def _familiar_error(curiosity: Any, world: ContractWorld) -> float:
    batch = world.rollout()
    assert batch.intrinsic is not None
    return float(batch.intrinsic[4:].mean())


@pytest.mark.parametrize("train_every", [16, 100_000])
def test_replayed_windows_teach_the_forward_model_the_familiar_cycle(train_every: int) -> None:
    # train_every beyond the run: the same run with no training call, the baseline that fails.
    options = AdversarialOptions(
        **{**REPLAY, "train_every": train_every, "replay_size": 100_000, "windows": 8}
    )
    setup = _setup(AdversarialPlugin, options)
    curiosity = setup.build()
    world = _dense_world(setup, curiosity)
    first = _familiar_error(curiosity, world)
    for _ in range(40):
        curiosity.update(world.rollout())
    last = _familiar_error(curiosity, world)
    if train_every == 16:
        assert last < 0.2 * first, (first, last)
    else:
        assert last > 0.8 * first, (first, last)


def test_a_restored_mechanism_draws_the_same_windows_and_trains_alike() -> None:
    setup = _setup(AdversarialPlugin, AdversarialOptions(**REPLAY))
    curiosity = setup.build()
    world = _dense_world(setup, curiosity)
    driver = _Driver(curiosity, world)
    driver.steps(21)
    curiosity.update(_empty_batch())
    driver.steps(18)
    twin: ForwardDynamicsCuriosity = setup.build(seed=1)  # type: ignore[assignment]
    # Through bytes, as a checkpoint file (a loaded optimizer would share its moments).
    buffer = io.BytesIO()
    torch.save(curiosity.state_dict(), buffer)
    buffer.seek(0)
    twin.load_state_dict(torch.load(buffer, weights_only=True))
    assert twin.memory is not None and twin.memory.added == curiosity.memory.added
    # The agent side's running means are diagnostics of this process, not state.
    trained = {k: v for k, v in curiosity.update(_empty_batch()).items() if "agent/" not in k}
    assert trained["gradient_steps"] == 2.0
    assert trained == twin.update(_empty_batch())


def test_a_window_that_cannot_fit_is_refused_naming_the_keys() -> None:
    with pytest.raises(ValueError, match=r"window_length \(63\) plus 4 imagination steps"):
        DeltaMinimizeOptions(**{**REPLAY, "window_length": 63})
