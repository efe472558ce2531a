"""pamiqx-jepa: registration, options, preprocessing, masks, buffer, training and resume."""

from __future__ import annotations

import io
import math
import subprocess
import sys
import threading
from typing import Any

import attrs
import numpy as np
import pytest
import torch
from pamiqx_jepa.buffer import FrameBuffer, replace_probability
from pamiqx_jepa.masks import BlockMasker
from pamiqx_jepa.plugin import SMALL, JEPAOptions, JEPAPlugin
from pamiqx_jepa.preprocess import resize_crop, standardise
from pamiqx_jepa.representation import JEPARepresentation

from pamiqx.api import BuildContext, ObservationSpec, PluginError
from pamiqx.envs.sim_maze import SimMazePlugin
from pamiqx.testing import (
    RepresentationSetup,
    check_plugin_distribution,
    check_representation_contract,
)

FRAMES = ObservationSpec((64, 64, 3), "uint8", "image")
# A tiny configuration for the fast tests: 8x8 patches, one layer each, small batches.
TINY = JEPAOptions.small(
    width=32,
    heads=1,
    depth=1,
    predictor_width=16,
    predictor_depth=1,
    output_width=24,
    buffer_size=32,
    train_every=16,
    batch_size=8,
)


def build(options: JEPAOptions = TINY, seed: int = 0) -> JEPARepresentation:
    return JEPAPlugin().build(options, BuildContext("test", seed), FRAMES)


def random_frames(count: int, seed: int = 0, shape: tuple[int, int] = (64, 64)) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (count, *shape, 3), dtype=torch.uint8, generator=generator)


def maze_frames(count: int, seed: int = 0) -> torch.Tensor:
    """Frames of the built-in maze walked mostly forward with random turns."""
    env = SimMazePlugin().build(SimMazePlugin.Options(size=64), BuildContext("maze", seed))
    env.setup()
    rng = np.random.default_rng(seed)
    policy = [0.05, 0.45, 0.05, 0.1, 0.1, 0.125, 0.125]
    frames = []
    for _ in range(count):
        frames.append(env.observe().observation)
        env.affect(np.int64(rng.choice(7, p=policy)))
    return torch.from_numpy(np.stack(frames))


# -- registration and options ------------------------------------------------------------


def test_distribution_registers_jepa() -> None:
    entries = check_plugin_distribution("pamiqx-jepa")
    assert [(e.kind, e.name) for e in entries] == [("representation", "jepa")]


def test_registration_module_does_not_import_torch() -> None:
    code = "import sys, pamiqx_jepa.plugin; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_defaults_are_the_reference() -> None:
    o = JEPAOptions()
    assert (o.input_size, o.patch_size, o.width, o.depth, o.heads) == (144, 12, 432, 6, 3)
    assert (o.predictor_width, o.predictor_depth, o.predictor_heads) == (216, 6, 1)
    assert (o.output_width, o.pool_size, o.mask_blocks, o.min_patches) == (128, 3, 4, 7)
    assert (o.mask_scale, o.mask_aspect_ratio) == ((0.025, 0.125), (0.75, 1.5))
    assert (o.buffer_size, o.train_every, o.batch_size, o.lr, o.ema) == (512, 128, 32, 1e-4, 0.996)
    assert replace_probability(o.buffer_size, o.survival_frames) == pytest.approx(0.0969, abs=1e-4)


def test_small_configuration_keeps_the_output_shape() -> None:
    small = JEPAOptions.small()
    assert {k: getattr(small, k) for k in SMALL} == SMALL
    assert build(small).spec == ObservationSpec((16, 128), "float32", "tokens")


@pytest.mark.parametrize(
    ("changes", "key"),
    [
        ({"patch_size": 0}, "'patch_size'"),
        ({"input_size": 100}, "'patch_size'"),
        ({"width": 90, "heads": 1}, "'width'"),
        ({"heads": 5}, "'heads'"),
        ({"predictor_heads": 5}, "'predictor_heads'"),
        ({"pool_size": 5}, "'pool_size'"),
        ({"mask_scale": (0.2, 0.1)}, "'mask_scale'"),
        ({"mask_scale": (0.1, 1.5)}, "'mask_scale'"),
        ({"mask_aspect_ratio": (0.0, 1.0)}, "'mask_aspect_ratio'"),
        ({"min_patches": 145}, "'min_patches'"),
        ({"batch_size": 513}, "'batch_size'"),
        ({"ema": 1.5}, "'ema'"),
        ({"lr": 0.0}, "'lr'"),
        ({"precision": "fp8"}, "'precision'"),
    ],
)
def test_invalid_options_name_the_key(changes: dict[str, Any], key: str) -> None:
    with pytest.raises(ValueError, match=key):
        JEPAOptions(**changes)


def test_non_image_worlds_are_refused() -> None:
    with pytest.raises(PluginError, match="encodes images"):
        JEPAPlugin().build(TINY, BuildContext("t", 0), ObservationSpec((8,), "float32", "vector"))


# -- preprocessing -----------------------------------------------------------------------


def test_resize_keeps_aspect_ratio_and_crops_the_centre() -> None:
    # A wide frame with white stripes at the sides: the centre crop drops them.
    frames = torch.zeros(1, 32, 64, 3, dtype=torch.uint8)
    frames[:, :, :8] = 255
    frames[:, :, 56:] = 255
    out = resize_crop(frames, 16)
    assert out.shape == (1, 3, 16, 16) and out.dtype == torch.uint8
    assert int(out.max()) == 0
    tall = resize_crop(torch.zeros(2, 90, 30, 3, dtype=torch.uint8), 24)
    assert tall.shape == (2, 3, 24, 24)


def test_resize_is_the_identity_at_the_input_size() -> None:
    frames = random_frames(2)
    assert torch.equal(resize_crop(frames, 64), frames.permute(0, 3, 1, 2))


def test_standardise_normalises_each_whole_frame() -> None:
    images = random_frames(3).permute(0, 3, 1, 2)
    images[1] //= 4  # a darker frame standardises to the same statistics
    x = standardise(images)
    assert x.dtype == torch.float32
    assert torch.allclose(x.mean(dim=(1, 2, 3)), torch.zeros(3), atol=1e-5)
    assert torch.allclose(x.std(dim=(1, 2, 3)), torch.ones(3), atol=1e-5)
    flat = standardise(torch.full((1, 3, 4, 4), 7, dtype=torch.uint8))
    assert torch.equal(flat, torch.zeros_like(flat))  # eps keeps a blank frame finite


# -- masks -------------------------------------------------------------------------------


def test_blocks_have_the_reference_sizes_and_aspect_ratios() -> None:
    masker = BlockMasker(12, 4, (0.025, 0.125), (0.75, 1.5), 7)
    generator = torch.Generator().manual_seed(0)
    areas, ratios = [], []
    for _ in range(2000):
        top, bottom, left, right = masker.rectangle(generator)
        height, width = bottom - top, right - left
        assert 0 <= top < bottom <= 12 and 0 <= left < right <= 12
        areas.append(height * width)
        ratios.append(width / height)
    # At least 7 patches; at most 12.5% of 144 = 18 plus rounding.
    assert min(areas) >= 7 and max(areas) <= 21
    assert 8 < float(np.mean(areas)) < 16
    # Rounding small blocks to whole patches widens the range a little.
    assert min(ratios) >= 0.5 and max(ratios) <= 2.0
    assert 0.95 < float(np.median(ratios)) < 1.3


def test_large_blocks_follow_the_aspect_ratio_range() -> None:
    masker = BlockMasker(48, 1, (0.2, 0.3), (0.75, 1.5), 7)
    generator = torch.Generator().manual_seed(1)
    for _ in range(300):
        top, bottom, left, right = masker.rectangle(generator)
        height, width = bottom - top, right - left
        assert 0.7 <= width / height <= 1.6
        assert 0.19 * 48 * 48 <= height * width <= 0.31 * 48 * 48


def test_context_is_the_union_and_the_target_one_block() -> None:
    masker = BlockMasker(12, 4, (0.025, 0.125), (0.75, 1.5), 7)
    generator = torch.Generator().manual_seed(2)
    masks, targets = masker.batch(256, generator)
    assert masks.shape == targets.shape == (256, 144) and masks.dtype == torch.bool
    visible = (~masks).sum(1)
    assert int(visible.min()) >= 72  # four blocks of at most 18 patches
    assert not bool((targets & ~masks).any())  # targets are hidden from the context
    counts = targets.sum(1)
    assert int(counts.min()) >= 7 and int(counts.max()) <= 21
    # The target is a rectangle: its bounding box holds exactly its patches.
    for target in targets[:32].reshape(-1, 12, 12):
        rows, cols = target.nonzero(as_tuple=True)
        box = (int(rows.max() - rows.min()) + 1) * (int(cols.max() - cols.min()) + 1)
        assert box == int(target.sum())


def test_too_few_visible_patches_unmasks_min_patches_and_makes_them_targets() -> None:
    # Blocks covering the whole 4x4 grid leave nothing visible.
    masker = BlockMasker(4, 4, (1.0, 1.0), (1.0, 1.0), 7)
    masks, targets = masker.batch(20, torch.Generator().manual_seed(3))
    visible = ~masks
    assert torch.equal(visible.sum(1), torch.full((20,), 7))
    assert bool(targets[visible].all())
    assert torch.equal(targets, torch.ones_like(targets))


def test_masks_are_seeded() -> None:
    masker = BlockMasker(12, 4, (0.025, 0.125), (0.75, 1.5), 7)
    a = masker.batch(8, torch.Generator().manual_seed(5))
    b = masker.batch(8, torch.Generator().manual_seed(5))
    c = masker.batch(8, torch.Generator().manual_seed(6))
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    assert not torch.equal(a[0], c[0])


# -- buffer and schedule -----------------------------------------------------------------


def test_buffer_fills_then_replaces_with_the_reference_probability() -> None:
    p = replace_probability(512, 36_000)
    buffer = FrameBuffer(512, (1, 1, 1), p, torch.Generator().manual_seed(0))
    assert [buffer.slot() for _ in range(512)] == list(range(512))
    slots = [buffer.slot() for _ in range(20_000)]
    taken = [s for s in slots if s is not None]
    assert abs(len(taken) / len(slots) - p) < 0.01
    assert min(taken) >= 0 and max(taken) < 512 and len(set(taken)) > 400


def test_update_trains_one_epoch_per_train_every_new_frames() -> None:
    rep = build()
    rep.observe(random_frames(15))
    assert rep.update() == {}
    rep.observe(random_frames(1, seed=1))
    metrics = rep.update()
    assert (metrics["epochs"], metrics["steps"], metrics["buffer_frames"]) == (1, 2, 16)
    assert math.isfinite(metrics["loss"]) and metrics["loss"] > 0
    assert rep.update() == {}
    rep.observe(random_frames(35, seed=2))  # a full buffer of 32: two epochs of 4 steps
    metrics = rep.update()
    assert (metrics["epochs"], metrics["steps"], rep.new_frames) == (2, 8, 3)


def test_a_long_backlog_is_capped() -> None:
    rep = build(attrs.evolve(TINY, max_epochs_per_update=2))
    rep.observe(random_frames(16 * 5 + 3))
    assert rep.update()["epochs"] == 2
    assert rep.new_frames == 3 and rep.update() == {}


# -- networks, EMA, encoding -------------------------------------------------------------


def test_ema_moves_the_target_after_every_step() -> None:
    rep = build()
    before = [p.detach().clone() for p in rep.target_encoder.parameters()]
    agent_before = [p.detach().clone() for p in rep.agent_encoder.parameters()]
    rep.train_batch(resize_crop(random_frames(8), 64))
    m = TINY.ema
    for old, new, context in zip(
        before, rep.target_encoder.parameters(), rep.context_encoder.parameters(), strict=True
    ):
        assert torch.allclose(new, m * old + (1 - m) * context, atol=1e-7)
    moved = sum(
        not torch.equal(a, b) for a, b in zip(before, rep.target_encoder.parameters(), strict=True)
    )
    assert moved > 0
    # The inference copy changes only when synced.
    assert all(
        torch.equal(a, b) for a, b in zip(agent_before, rep.agent_encoder.parameters(), strict=True)
    )
    rep.sync_agent_encoder()
    for a, b in zip(rep.agent_encoder.parameters(), rep.target_encoder.parameters(), strict=True):
        assert torch.equal(a, b)


def test_the_target_encoder_gets_no_gradient() -> None:
    rep = build()
    rep.train_batch(resize_crop(random_frames(8), 64))
    assert all(p.grad is None for p in rep.target_encoder.parameters())
    assert any(p.grad is not None for p in rep.context_encoder.parameters())
    assert any(p.grad is not None for p in rep.predictor.parameters())


def test_reference_output_is_16_tokens_of_128() -> None:
    rep = build(JEPAOptions())
    assert rep.spec == ObservationSpec((16, 128), "float32", "tokens")
    with torch.inference_mode():
        out = rep.encode(random_frames(2, shape=(48, 80)))
    assert out.shape == (2, 16, 128) and out.dtype == torch.float32
    assert bool(torch.isfinite(out).all())


def test_tokens_are_pooled_layer_normed_patches() -> None:
    rep = build()
    frames = random_frames(3)
    with torch.inference_mode():
        out = rep.encode(frames)
        patches = rep.agent_encoder(standardise(resize_crop(frames, 64)))
    assert out.shape == (3, 16, 24)
    normed = torch.nn.functional.layer_norm(patches, (24,))
    grid = normed.reshape(3, 8, 8, 24)
    first = grid[:, :2, :2].mean(dim=(1, 2))  # the top-left 2x2 patches make token 0
    assert torch.allclose(out[:, 0], first, atol=1e-5)
    last = grid[:, 6:, 6:].mean(dim=(1, 2))
    assert torch.allclose(out[:, 15], last, atol=1e-5)


def test_encode_is_deterministic_for_a_fixed_state_and_seeded() -> None:
    frames = random_frames(4)
    a, b, other = build(seed=3), build(seed=3), build(seed=4)
    with torch.inference_mode():
        first = a.encode(frames)
        assert torch.equal(first, a.encode(frames))
        assert torch.equal(first, b.encode(frames))
        assert not torch.allclose(first, other.encode(frames))
        # Batch composition does not change a frame's latent.
        assert torch.allclose(a.encode(frames[:1]), first[:1], atol=1e-5)


def test_encode_follows_the_target_encoder_after_an_update() -> None:
    rep = build()
    frames = random_frames(2, seed=9)
    with torch.inference_mode():
        before = rep.encode(frames)
    rep.observe(random_frames(16))
    rep.update()
    with torch.inference_mode():
        after = rep.encode(frames)
        direct = rep.target_encoder(standardise(resize_crop(frames, 64)))
    assert not torch.allclose(before, after)
    from pamiqx_jepa.representation import pool_tokens

    assert torch.equal(after, pool_tokens(direct, 8, 2))


def test_encode_runs_while_another_thread_trains() -> None:
    rep = build()
    rep.observe(random_frames(32))
    probe = random_frames(2, seed=5)
    errors: list[BaseException] = []

    def train() -> None:
        try:
            rep.update()
        except BaseException as error:  # noqa: BLE001 - re-raised in the main thread
            errors.append(error)

    thread = threading.Thread(target=train)
    thread.start()
    while thread.is_alive():
        with torch.inference_mode():
            assert bool(torch.isfinite(rep.encode(probe)).all())
        rep.observe(random_frames(1, seed=6))
    thread.join()
    assert not errors
    assert rep.steps == 8


# -- checkpoints -------------------------------------------------------------------------


def _roundtrip(state: dict[str, Any]) -> dict[str, Any]:
    data = io.BytesIO()
    torch.save(state, data)
    data.seek(0)
    loaded: dict[str, Any] = torch.load(data, weights_only=True)
    return loaded


def test_resume_gives_the_identical_next_update() -> None:
    original = build(seed=1)
    original.observe(random_frames(37, seed=1))  # the buffer fills and starts replacing
    original.update()
    state = _roundtrip(original.state_dict())
    resumed = build(seed=2)  # another seed: everything must come from the state
    resumed.load_state_dict(state)
    assert (resumed.frames_seen, resumed.new_frames, resumed.steps) == (37, 5, 8)

    later = random_frames(20, seed=7)
    probe = random_frames(2, seed=8)
    results = []
    for rep in (original, resumed):
        rep.observe(later)
        metrics = rep.update()
        with torch.inference_mode():
            results.append((metrics, rep.encode(probe), rep.buffer.snapshot()))
    assert results[0][0] == results[1][0] and results[0][0]["steps"] == 4
    assert torch.equal(results[0][1], results[1][1])
    assert torch.equal(results[0][2], results[1][2])
    for a, b in zip(original.predictor.parameters(), resumed.predictor.parameters(), strict=True):
        assert torch.equal(a, b)


# -- learning ----------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.timeout(1800)  # minutes on a loaded 2-core machine
def test_loss_falls_on_maze_frames() -> None:
    """Small configuration, ~230 steps on 2,048 maze frames (a few minutes on 2 cores)."""
    rep = build(JEPAOptions.small())
    frames = maze_frames(2048)
    losses = []
    for start in range(0, 2048, 128):
        rep.observe(frames[start : start + 128])
        losses.append(rep.update()["loss"])
    assert rep.steps > 200
    # Measured: 0.43 -> 0.22 after 136 steps, falling steadily.
    assert np.mean(losses[-3:]) < 0.6 * np.mean(losses[:2])


def test_the_host_representation_contract() -> None:
    # The checks every representation plugin runs (pamiqx.testing): spec, deterministic
    # encode, an exact round trip through a weights_only checkpoint, a falling loss.
    check_representation_contract(
        RepresentationSetup(
            JEPAPlugin,
            attrs.evolve(TINY, lr=1e-3),
            observation_spec=FRAMES,
            batch=8,
            frames=8,
            rounds=40,
        )
    )
