"""Self-supervised exploration via disagreement (Pathak et al., 2019, arXiv:1906.04161).

An ensemble of N forward models ``f_i(φ(o), a) -> φ̂_i(o')`` predicts the next
observation's features, each trained on its own bootstrap resample of every
batch. Where the data pins the answer down the members agree; where they have
seen little, their guesses scatter. The reward is that scatter::

    r = mean_k Var_i[ f_i(φ(o), a)_k ]      (population variance over the N members)

It depends on the observation and the action, not on the observation that
followed, so it rewards *going towards* the unknown and stays low for
transitions whose outcome is merely noisy. ``φ`` is a fixed random encoder (the
paper's random-features variant), so the prediction targets never move.
Transitions that end an episode are left out of the bootstraps: there
``next_observations`` is the next episode's first frame, not the action's outcome.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

from pamiqx.api import (
    ActionSpec,
    Curiosity,
    ObservationSpec,
    Transitions,
    conv_trunk,
    one_hot_actions,
    orthogonal_init,
)
from pamiqx_disagreement.plugin import DisagreementOptions

__all__ = ["Disagreement", "Ensemble", "EnsembleLinear", "build_random_features"]

_CHANNELS: tuple[int, ...] = (32, 64, 64)
# Hidden width of each forward model and of the vector feature encoder.
_HIDDEN = 256
_MLP_HIDDEN = 128


def _init(module: nn.Module) -> None:
    """Orthogonal weights with gain sqrt(2) and zero biases: random features of unit scale."""
    orthogonal_init(module, math.sqrt(2))


def build_random_features(spec: ObservationSpec, feature_dim: int) -> nn.Sequential:
    """Build the fixed random encoder ``φ``: a Nature-CNN-like stack or an MLP.

    Images are expected channel-first and scaled to [0, 1]. The encoder ends in a
    parameter-free layer norm, so the prediction targets have the same scale
    whatever the frames' brightness.

    Args:
        spec: The observations it will see.
        feature_dim: Size of ``φ(o)``.

    Returns:
        The encoder, frozen (no parameter requires grad).
    """
    layers: list[nn.Module] = []
    if spec.kind == "image":
        trunk, flat = conv_trunk(spec.shape, _CHANNELS, nn.LeakyReLU)
        layers += [*trunk, nn.Linear(flat, feature_dim)]
    else:
        layers += [
            nn.Linear(spec.shape[0], _MLP_HIDDEN),
            nn.LeakyReLU(),
            nn.Linear(_MLP_HIDDEN, feature_dim),
        ]
    layers.append(nn.LayerNorm(feature_dim, elementwise_affine=False))
    net = nn.Sequential(*layers)
    net.apply(_init)
    net.requires_grad_(False)
    return net


class EnsembleLinear(nn.Module):
    """N independent linear layers applied in one batched matrix product.

    Attributes:
        weight: ``(N, in_features, out_features)``.
        bias: ``(N, 1, out_features)``.
    """

    def __init__(self, members: int, in_features: int, out_features: int) -> None:
        """Initialise each member as :class:`torch.nn.Linear` would, independently.

        Args:
            members: Number of members N.
            in_features: Input size.
            out_features: Output size.
        """
        super().__init__()
        bound = 1.0 / math.sqrt(in_features)
        self.weight = nn.Parameter(torch.empty(members, in_features, out_features))
        self.bias = nn.Parameter(torch.empty(members, 1, out_features))
        nn.init.uniform_(self.weight, -bound, bound)
        nn.init.uniform_(self.bias, -bound, bound)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Map ``(N, B, in_features)`` to ``(N, B, out_features)``, member by member."""
        return torch.baddbmm(self.bias, x, self.weight)


class Ensemble(nn.Sequential):
    """N forward models (two hidden ReLU layers each) evaluated together."""

    def __init__(self, members: int, in_features: int, out_features: int) -> None:
        """Build the members.

        Args:
            members: Number of forward models N.
            in_features: Size of the input (features plus one-hot action).
            out_features: Size of the predicted features.
        """
        super().__init__(
            EnsembleLinear(members, in_features, _HIDDEN),
            nn.ReLU(),
            EnsembleLinear(members, _HIDDEN, _HIDDEN),
            nn.ReLU(),
            EnsembleLinear(members, _HIDDEN, out_features),
        )
        self.members = members


class Disagreement(Curiosity):
    """Variance of an ensemble of forward models, in a fixed random feature space.

    Attributes:
        options: The plugin's options.
        spec: The observations scored.
        nvec: Choices of each sub-action (one entry for a discrete action).
        features: The fixed random encoder ``φ``.
        ensemble: The N forward models.
        optimizer: Adam over the ensemble.
    """

    style = "batch"

    def __init__(
        self,
        options: DisagreementOptions,
        spec: ObservationSpec,
        action_spec: ActionSpec,
        device: str,
    ) -> None:
        """Build the encoder, the ensemble and the optimizer on ``device``.

        Args:
            options: The plugin's options.
            spec: The observations scored.
            action_spec: The action space.
            device: Where the networks live.
        """
        self.options = options
        self.spec = spec
        self.nvec = tuple(action_spec.nvec)
        self.discrete = action_spec.kind == "discrete"
        self.device = torch.device(device)
        dim = options.feature_dim
        self.features = build_random_features(spec, dim).to(self.device).eval()
        self.ensemble = Ensemble(options.ensemble_size, dim + sum(self.nvec), dim).to(self.device)
        self.optimizer = torch.optim.Adam(self.ensemble.parameters(), lr=options.lr)

    def modules(self) -> dict[str, nn.Module]:
        """Return the random encoder and the ensemble."""
        return {"features": self.features, "ensemble": self.ensemble}

    def encode(self, observations: torch.Tensor) -> torch.Tensor:
        """Return ``φ(o)`` for ``(N, *obs_shape)`` observations, without gradients."""
        if self.spec.kind == "image":
            x = observations.permute(0, 3, 1, 2).float() / 255.0
        else:
            x = observations.float()
        with torch.no_grad():
            encoded: torch.Tensor = self.features(x)
        return encoded

    def _inputs(self, observations: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        """Return ``(N, feature_dim + sum(nvec))``: features and one-hot (sub-)actions."""
        return torch.cat(
            [self.encode(observations), one_hot_actions(actions, self.nvec, self.discrete)], dim=-1
        )

    def predictions(self, observations: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        """Return every member's prediction of the next features, ``(members, N, feature_dim)``.

        Args:
            observations: ``(N, *obs_shape)``.
            actions: ``(N,)`` or ``(N, K)`` int64.
        """
        x = self._inputs(observations, actions)
        predicted: torch.Tensor = self.ensemble(x.expand(self.ensemble.members, -1, -1))
        return predicted

    def rewards(self, batch: Transitions) -> torch.Tensor:
        """Return the mean over features of the variance across the ensemble, ``(T, E)``."""
        steps, envs = batch.shape
        observations, _, actions, _ = batch.flattened()
        with torch.no_grad():
            spread = self.predictions(observations, actions).var(dim=0, correction=0)
        return spread.mean(dim=-1).reshape(steps, envs).float()

    def bootstrap_indices(self, valid: torch.Tensor) -> torch.Tensor:
        """Draw one bootstrap resample of the usable transitions per member.

        Args:
            valid: ``(V,)`` indices of the transitions that did not end an episode.

        Returns:
            ``(members, V)`` indices, drawn with replacement from ``valid``.
        """
        draws = torch.randint(
            0, valid.numel(), (self.ensemble.members, valid.numel()), device=valid.device
        )
        return valid[draws]

    def update(self, batch: Transitions) -> dict[str, float]:
        """Train each member on its own bootstrap of the batch, ``epochs`` times.

        Returns:
            ``loss`` (the members' mean squared error, averaged over the steps) and
            ``valid_fraction`` (transitions that did not end an episode).
        """
        observations, next_observations, actions, dones = batch.flattened()
        count = observations.shape[0]
        valid = torch.nonzero(~dones).squeeze(-1).to(observations.device)
        if valid.numel() == 0:
            return {"loss": 0.0, "valid_fraction": 0.0}
        inputs = self._inputs(observations, actions)
        targets = self.encode(next_observations)
        losses: list[float] = []
        for _ in range(self.options.epochs):
            chosen = self.bootstrap_indices(valid)
            predicted: torch.Tensor = self.ensemble(inputs[chosen])
            loss = (predicted - targets[chosen]).pow(2).mean()
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()  # type: ignore[no-untyped-call]
            self.optimizer.step()
            losses.append(float(loss.item()))
        return {"loss": sum(losses) / len(losses), "valid_fraction": valid.numel() / count}

    def state_dict(self) -> dict[str, Any]:
        """Return the encoder, the ensemble and the optimizer."""
        return {**super().state_dict(), "optimizer": self.optimizer.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what :meth:`state_dict` returned."""
        super().load_state_dict(state)
        self.optimizer.load_state_dict(state["optimizer"])
