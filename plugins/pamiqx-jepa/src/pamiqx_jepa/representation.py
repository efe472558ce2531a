"""The built ``jepa`` stage: encodes with the EMA target encoder and trains itself online."""

from __future__ import annotations

import contextlib
import copy
import itertools
import threading
from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from pamiqx.api import BuildContext, ObservationSpec, Representation
from pamiqx_jepa.buffer import FrameBuffer, replace_probability
from pamiqx_jepa.masks import BlockMasker
from pamiqx_jepa.networks import Encoder, Predictor
from pamiqx_jepa.preprocess import resize_crop, standardise

if TYPE_CHECKING:
    from pamiqx_jepa.plugin import JEPAOptions

_AUTOCAST_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


def _stream_seeds(seed: int, count: int) -> list[int]:
    """Derive ``count`` independent seeds from the experiment's seed."""
    master = torch.Generator().manual_seed(seed)
    return [int(s) for s in torch.randint(2**62, (count,), generator=master)]


def pool_tokens(latents: Tensor, grid: int, pool_size: int) -> Tensor:
    """Per-token LayerNorm, then average-pool the patch grid into output tokens.

    Args:
        latents: ``(B, grid * grid, D)`` encoder output, row-major.
        grid: Patches per side.
        pool_size: Side (and stride) of the pooling window.

    Returns:
        ``(B, (grid / pool_size)^2, D)`` float32 tokens, row-major.
    """
    x = F.layer_norm(latents.float(), latents.shape[-1:])
    batch, _, width = x.shape
    x = x.transpose(1, 2).reshape(batch, width, grid, grid)
    x = F.avg_pool2d(x, pool_size)
    return x.flatten(2).transpose(1, 2).contiguous()


class JEPARepresentation(Representation):
    """Online I-JEPA: a context encoder and predictor trained against an EMA target encoder.

    ``encode`` runs ``agent_encoder``, an inference copy of the target encoder,
    and pools its normalised patch latents into ``spec.shape`` tokens.
    ``observe`` offers frames to the buffer; every ``train_every`` new frames
    make one shuffled epoch over the buffer due, which ``update`` runs.

    Threads: ``encode`` (inference thread) reads ``agent_encoder`` under
    ``lock``; ``update`` (training thread) trains the other modules and copies
    the target encoder into ``agent_encoder`` under ``lock`` at its end.
    ``observe`` and ``update`` share the buffer and counters under
    ``buffer_lock``; ``update`` trains on a snapshot of the buffer.

    Attributes:
        options: The plugin's options.
        device: Where the modules live.
        grid: Patches per side.
        context_encoder: Sees masked frames; trained.
        target_encoder: EMA of ``context_encoder``; provides the targets.
        agent_encoder: Inference copy of ``target_encoder`` used by ``encode``.
        predictor: Predicts target latents at the target patches; trained.
        optimizer: AdamW over the context encoder and the predictor.
        masker: Draws the masks.
        buffer: The training frames.
        frames_seen: Frames observed so far.
        new_frames: Frames observed since the last epoch that was due.
        steps: Optimiser steps so far.
        epochs: Training epochs so far.
    """

    def __init__(
        self, options: JEPAOptions, observation_spec: ObservationSpec, context: BuildContext
    ) -> None:
        """Build everything from ``options`` for frames of ``observation_spec``."""
        self.options = options
        self.device = torch.device(context.device)
        self.channels = int(observation_spec.shape[2])
        self.grid = options.input_size // options.patch_size
        tokens = (self.grid // options.pool_size) ** 2
        self.spec = ObservationSpec((tokens, options.output_width), "float32", "tokens")

        init_seed, buffer_seed, train_seed = _stream_seeds(context.seed, 3)
        init = torch.Generator().manual_seed(init_seed)
        self.context_encoder = Encoder(
            channels=self.channels,
            grid=self.grid,
            patch_size=options.patch_size,
            width=options.width,
            depth=options.depth,
            heads=options.heads,
            output_width=options.output_width,
            generator=init,
        ).to(self.device)
        self.predictor = Predictor(
            grid=self.grid,
            output_width=options.output_width,
            width=options.predictor_width,
            depth=options.predictor_depth,
            heads=options.predictor_heads,
            generator=init,
        ).to(self.device)
        self.target_encoder = copy.deepcopy(self.context_encoder).requires_grad_(False)
        self.agent_encoder = copy.deepcopy(self.context_encoder).requires_grad_(False)
        self.optimizer = torch.optim.AdamW(
            itertools.chain(self.context_encoder.parameters(), self.predictor.parameters()),
            lr=options.lr,
            weight_decay=options.weight_decay,
        )

        cuda = self.device.type == "cuda"
        self.autocast_dtype = _AUTOCAST_DTYPES.get(options.precision) if cuda else None
        # fp16 gradients underflow without loss scaling; bf16 has float32's range.
        self.scaler = torch.amp.GradScaler("cuda") if self.autocast_dtype == torch.float16 else None

        self.masker = BlockMasker(
            self.grid,
            options.mask_blocks,
            options.mask_scale,
            options.mask_aspect_ratio,
            options.min_patches,
        )
        self.buffer = FrameBuffer(
            options.buffer_size,
            (self.channels, options.input_size, options.input_size),
            replace_probability(options.buffer_size, options.survival_frames),
            torch.Generator().manual_seed(buffer_seed),
        )
        self.train_generator = torch.Generator().manual_seed(train_seed)
        self.frames_seen = 0
        self.new_frames = 0
        self.steps = 0
        self.epochs = 0
        self.lock = threading.Lock()
        self.buffer_lock = threading.Lock()

    # -- the Representation interface ------------------------------------------------------

    def modules(self) -> dict[str, nn.Module]:
        """Return the encoders (context, target, inference copy) and the predictor."""
        return {
            "context_encoder": self.context_encoder,
            "target_encoder": self.target_encoder,
            "agent_encoder": self.agent_encoder,
            "predictor": self.predictor,
        }

    def encode(self, observations: Tensor) -> Tensor:
        """Return ``(B, *spec.shape)`` float32 tokens of ``(B, H, W, C)`` uint8 frames."""
        images = standardise(resize_crop(observations.to(self.device), self.options.input_size))
        with self.lock, self._autocast():
            latents = self.agent_encoder(images)
        return pool_tokens(latents, self.grid, self.options.pool_size)

    def observe(self, observations: Tensor) -> None:
        """Offer ``(B, H, W, C)`` uint8 frames to the buffer and count them as new."""
        with self.buffer_lock:
            slots = [self.buffer.slot() for _ in range(observations.shape[0])]
            chosen = [i for i, slot in enumerate(slots) if slot is not None]
            if chosen:
                frames = resize_crop(observations[chosen].cpu(), self.options.input_size)
                for frame, index in zip(frames, chosen, strict=True):
                    self.buffer.put(int(slots[index]), frame)  # type: ignore[arg-type]
            self.frames_seen += len(slots)
            self.new_frames += len(slots)

    def update(self) -> dict[str, float]:
        """Run the epochs that are due: one per ``train_every`` new frames, at most a few.

        Returns:
            ``loss`` (mean over the steps), the latents' spread (``target_std``,
            ``context_std``: std over the batch, mean over patches and features),
            ``steps``, ``epochs`` and ``buffer_frames``; empty when nothing was due.
        """
        options = self.options
        with self.buffer_lock:
            due = self.new_frames // options.train_every
            if due == 0:
                return {}
            # A backlog beyond max_epochs_per_update is dropped, not trained on late.
            self.new_frames %= options.train_every
            frames = self.buffer.snapshot()
        epochs = min(due, options.max_epochs_per_update)
        totals: list[Tensor] = []
        steps = 0
        for _ in range(epochs):
            order = torch.randperm(frames.shape[0], generator=self.train_generator)
            for start in range(0, frames.shape[0] - options.batch_size + 1, options.batch_size):
                totals.append(self.train_batch(frames[order[start : start + options.batch_size]]))
                steps += 1
            self.epochs += 1
        self.sync_agent_encoder()
        metrics = {"steps": float(steps), "epochs": float(epochs)}
        metrics["buffer_frames"] = float(frames.shape[0])
        if totals:
            loss, target_std, context_std = torch.stack(totals).mean(0).tolist()
            metrics.update(loss=loss, target_std=target_std, context_std=context_std)
        return metrics

    # -- training --------------------------------------------------------------------------

    def train_batch(self, frames: Tensor) -> Tensor:
        """Take one optimiser step on ``(B, C, S, S)`` uint8 preprocessed frames, then the EMA.

        Returns:
            ``[loss, target_std, context_std]`` (detached, on the device).
        """
        masks, targets = self.masker.batch(frames.shape[0], self.train_generator)
        masks, targets = masks.to(self.device), targets.to(self.device)
        images = standardise(frames.to(self.device))
        with torch.no_grad(), self._autocast():
            target = self.target_encoder(images)
        target = F.layer_norm(target.float(), target.shape[-1:])
        with self._autocast():
            context = self.context_encoder(images, masks)
            prediction = self.predictor(context, targets)
        per_patch = F.smooth_l1_loss(prediction.float(), target, reduction="none").mean(-1)
        weights = targets.float()
        loss = (per_patch * weights).sum() / weights.sum()
        self.optimizer.zero_grad(set_to_none=True)
        if self.scaler is not None:
            self.scaler.scale(loss).backward()  # type: ignore[no-untyped-call]
            self.scaler.step(self.optimizer)
            self.scaler.update()
        else:
            loss.backward()  # type: ignore[no-untyped-call]
            self.optimizer.step()
        self._ema_step()
        self.steps += 1
        with torch.no_grad():
            spread = [target.std(0).mean(), context.float().std(0).mean()]
        return torch.stack([loss.detach(), *spread])

    def _ema_step(self) -> None:
        """Move the target encoder towards the context encoder by ``1 - ema``."""
        with torch.no_grad():
            targets: list[Tensor] = list(self.target_encoder.parameters())
            sources: list[Tensor] = list(self.context_encoder.parameters())
            torch._foreach_lerp_(targets, sources, 1.0 - self.options.ema)

    def sync_agent_encoder(self) -> None:
        """Copy the target encoder's weights into the inference copy (under the lock)."""
        with torch.no_grad(), self.lock:
            copies: list[Tensor] = list(self.agent_encoder.parameters())
            sources: list[Tensor] = list(self.target_encoder.parameters())
            torch._foreach_copy_(copies, sources)

    def _autocast(self) -> contextlib.AbstractContextManager[Any]:
        if self.autocast_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast("cuda", dtype=self.autocast_dtype)

    # -- checkpoints -----------------------------------------------------------------------

    def state_dict(self) -> dict[str, Any]:
        """Return weights, optimiser, loss scaler, buffer, generators and counters."""
        with self.buffer_lock:
            buffer = self.buffer.state_dict()
            counters = {"frames_seen": self.frames_seen, "new_frames": self.new_frames}
        counters.update(steps=self.steps, epochs=self.epochs)
        return {
            "context_encoder": self.context_encoder.state_dict(),
            "target_encoder": self.target_encoder.state_dict(),
            "predictor": self.predictor.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scaler": None if self.scaler is None else self.scaler.state_dict(),
            "buffer": buffer,
            "train_generator": self.train_generator.get_state(),
            "counters": counters,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state_dict`; the inference copy gets the restored target encoder."""
        self.context_encoder.load_state_dict(state["context_encoder"])
        self.target_encoder.load_state_dict(state["target_encoder"])
        self.predictor.load_state_dict(state["predictor"])
        self.optimizer.load_state_dict(state["optimizer"])
        if self.scaler is not None and state["scaler"] is not None:
            self.scaler.load_state_dict(state["scaler"])
        self.train_generator.set_state(state["train_generator"])
        counters = state["counters"]
        with self.buffer_lock:
            self.buffer.load_state_dict(state["buffer"])
            self.frames_seen = int(counters["frames_seen"])
            self.new_frames = int(counters["new_frames"])
        self.steps = int(counters["steps"])
        self.epochs = int(counters["epochs"])
        self.sync_agent_encoder()
