"""Random network distillation (Burda et al., 2018, arXiv:1810.12894).

A fixed, randomly initialised target network ``f`` maps an observation to a
feature vector; a predictor ``f̂`` is trained to reproduce it. The intrinsic
reward of a transition is the predictor's error on the observation that
followed, ``r = mean_k (f̂(o')_k - f(o')_k)^2`` (the mean over the
``feature_dim`` features, as in the authors' code): observations the predictor
has trained on often are predicted well and earn little.

Both networks see whitened observations: running per-element mean and std
(updated in :meth:`RND.update`), clipped to ``[-obs_clip, obs_clip]``. The host
divides the rewards by a running std of their discounted return and never
subtracts a mean, as in the paper.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

from pamiqx.api import (
    Curiosity,
    ObservationNormalizer,
    ObservationSpec,
    Transitions,
    conv_trunk,
    orthogonal_init,
)
from pamiqx_rnd.plugin import RNDOptions

__all__ = ["RND", "build_predictor", "build_target"]

_CHANNELS: tuple[int, ...] = (32, 64, 64)
# Width of the predictor's extra fully connected layers (512 in the paper, for 512 features).
_HEAD_HIDDEN = 256
# Width of the MLPs used for vector observations.
_MLP_HIDDEN = 128
# Frames per chunk when merging observation statistics: bounds the float64 CPU copy, and
# a 64x64x3 chunk of 128 frames (12 MiB in float64) is about 25% faster to reduce than a
# whole 512-frame rollout at once (cache); the merge is exact for any split.
_STATS_CHUNK = 128


def _conv_trunk(shape: tuple[int, ...]) -> tuple[nn.Sequential, int]:
    """Return the Nature-CNN trunk for ``(H, W, C)`` frames and its flat output size."""
    # Leaky ReLU as in the authors' networks: no dead units in a network never trained.
    return conv_trunk(shape, _CHANNELS, nn.LeakyReLU)


def _init(module: nn.Module) -> None:
    """Orthogonal weights with gain sqrt(2) and zero biases, as in the paper's code."""
    orthogonal_init(module, math.sqrt(2))


def build_target(spec: ObservationSpec, feature_dim: int) -> nn.Sequential:
    """Build the fixed random target network ``f`` (channel-first images, or flat vectors/tokens).

    Args:
        spec: The observations it will see.
        feature_dim: Size of its output.

    Returns:
        The network, frozen (no parameter requires grad).
    """
    if spec.kind == "image":
        trunk, flat = _conv_trunk(spec.shape)
        net = nn.Sequential(trunk, nn.Linear(flat, feature_dim))
    else:
        net = nn.Sequential(
            nn.Linear(math.prod(spec.shape), _MLP_HIDDEN),
            nn.LeakyReLU(),
            nn.Linear(_MLP_HIDDEN, _MLP_HIDDEN),
            nn.LeakyReLU(),
            nn.Linear(_MLP_HIDDEN, feature_dim),
        )
    net.apply(_init)
    net.requires_grad_(False)
    return net


def build_predictor(spec: ObservationSpec, feature_dim: int) -> nn.Sequential:
    """Build the trained predictor ``f̂``: the target's shape plus extra fully connected layers.

    Args:
        spec: The observations it will see.
        feature_dim: Size of its output (the target's).

    Returns:
        The network.
    """
    if spec.kind == "image":
        trunk, flat = _conv_trunk(spec.shape)
        hidden = _HEAD_HIDDEN
        net = nn.Sequential(
            trunk,
            nn.Linear(flat, hidden),
            nn.ReLU(),
            nn.Linear(hidden, hidden),
            nn.ReLU(),
            nn.Linear(hidden, feature_dim),
        )
    else:
        hidden = _MLP_HIDDEN
        net = nn.Sequential(
            nn.Linear(math.prod(spec.shape), hidden),
            nn.LeakyReLU(),
            nn.Linear(hidden, hidden),
            nn.LeakyReLU(),
            nn.Linear(hidden, hidden),
            nn.ReLU(),
            nn.Linear(hidden, feature_dim),
        )
    net.apply(_init)
    return net


class RND(Curiosity):
    """Random network distillation over the observation that follows each action.

    Attributes:
        options: The plugin's options.
        spec: The observations scored.
        target: The fixed random network ``f``.
        predictor: The trained network ``f̂``.
        optimizer: Adam over the predictor.
        obs_normalizer: Running whitening (and clipping) of the networks' input.
    """

    style = "batch"

    def __init__(self, options: RNDOptions, spec: ObservationSpec, device: str) -> None:
        """Build both networks and the optimizer on ``device``.

        Args:
            options: The plugin's options.
            spec: The observations scored.
            device: Where the networks live.
        """
        self.options = options
        self.spec = spec
        self.device = torch.device(device)
        self.target = build_target(spec, options.feature_dim).to(self.device).eval()
        self.predictor = build_predictor(spec, options.feature_dim).to(self.device)
        self.optimizer = torch.optim.Adam(self.predictor.parameters(), lr=options.lr)
        self.obs_normalizer = ObservationNormalizer(spec.shape, clip=options.obs_clip)

    def modules(self) -> dict[str, nn.Module]:
        """Return the target and the predictor."""
        return {"target": self.target, "predictor": self.predictor}

    def normalize_observations(self, observations: torch.Tensor) -> torch.Tensor:
        """Whiten and clip observations as the networks see them.

        Before the first :meth:`update` there are no running statistics; the paper
        initialises them from a random agent's steps, and here the batch being scored
        plays that role (its own mean and std, nothing stored).

        Args:
            observations: ``(N, *obs_shape)`` raw observations.

        Returns:
            ``(N, *obs_shape)`` float32 in ``[-obs_clip, obs_clip]``.
        """
        if self.obs_normalizer.rms.count > 0:
            return self.obs_normalizer.normalize(observations)
        x = observations.float()
        var, mean = torch.var_mean(x, dim=0, correction=0)
        clip = self.options.obs_clip
        return ((x - mean) / var.sqrt().clamp_min(self.obs_normalizer.eps)).clamp(-clip, clip)

    def _network_input(self, normalized: torch.Tensor) -> torch.Tensor:
        """Return channel-first frames for the conv networks, vectors and flattened tokens."""
        if self.spec.kind == "image":
            return normalized.permute(0, 3, 1, 2)
        return normalized.flatten(1)

    def prediction_error(self, normalized: torch.Tensor) -> torch.Tensor:
        """Return ``mean_k (f̂(x)_k - f(x)_k)^2`` per observation, differentiable in ``f̂``.

        Args:
            normalized: ``(N, *obs_shape)`` whitened observations.

        Returns:
            ``(N,)`` errors.
        """
        x = self._network_input(normalized)
        with torch.no_grad():
            target: torch.Tensor = self.target(x)
        prediction: torch.Tensor = self.predictor(x)
        return (prediction - target).pow(2).mean(dim=-1)

    def rewards(self, batch: Transitions) -> torch.Tensor:
        """Return the predictor's error on each next observation, ``(T, E)`` float32."""
        steps, envs = batch.shape
        with torch.no_grad():
            observed = batch.next_observations.reshape(steps * envs, *self.spec.shape)
            errors = self.prediction_error(self.normalize_observations(observed))
        return errors.reshape(steps, envs).float()

    def update(self, batch: Transitions) -> dict[str, float]:
        """Merge the batch into the observation statistics, then train the predictor.

        Each of the ``epochs`` gradient steps trains on a fresh random
        ``update_proportion`` of the batch (the paper's mask, which keeps the
        predictor from learning as fast as the number of parallel worlds grows).

        All the steps' rows are drawn first, so that only the rows some step uses
        are whitened and the fixed target's features of each are computed once
        (not once per step); with ``update_proportion = 1`` every step takes the
        whole batch as it is (the loss is a mean, so the order does not matter).

        Returns:
            ``loss`` (mean predictor loss over the steps), ``trained_fraction`` and
            ``obs_std`` (mean running std of the observation elements).
        """
        steps, envs = batch.shape
        observed = batch.next_observations.reshape(steps * envs, *self.spec.shape)
        for chunk in torch.split(observed, _STATS_CHUNK):
            self.obs_normalizer.update(chunk)
        count = observed.shape[0]
        take = max(1, round(count * self.options.update_proportion))
        draws: list[torch.Tensor | None]
        if take == count:
            draws, used = [None] * self.options.epochs, observed
        else:
            device = observed.device
            chosen = [
                torch.randperm(count, device=device)[:take] for _ in range(self.options.epochs)
            ]
            rows = torch.unique(torch.cat(chosen))
            # Row of the batch -> its row in ``used``.
            where = torch.empty(count, dtype=torch.long, device=device)
            where[rows] = torch.arange(rows.shape[0], device=device)
            draws, used = [where[c] for c in chosen], observed[rows]
        inputs = self.obs_normalizer.normalize(used)
        with torch.no_grad():
            targets: torch.Tensor = self.target(self._network_input(inputs))
        losses: list[torch.Tensor] = []
        for draw in draws:
            x, target = (inputs, targets) if draw is None else (inputs[draw], targets[draw])
            prediction: torch.Tensor = self.predictor(self._network_input(x))
            loss = (prediction - target).pow(2).mean(dim=-1).mean()
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()  # type: ignore[no-untyped-call]
            self.optimizer.step()
            losses.append(loss.detach())
        return {
            "loss": float(torch.stack(losses).mean().item()),
            "trained_fraction": take / count,
            "obs_std": float(self.obs_normalizer.rms.std.mean().item()),
        }

    def state_dict(self) -> dict[str, Any]:
        """Return both networks, the optimizer and the observation statistics."""
        return {
            "target": self.target.state_dict(),
            "predictor": self.predictor.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "obs_normalizer": self.obs_normalizer.state_dict(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what :meth:`state_dict` returned."""
        self.target.load_state_dict(state["target"])
        self.predictor.load_state_dict(state["predictor"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.obs_normalizer.load_state_dict(state["obs_normalizer"])
