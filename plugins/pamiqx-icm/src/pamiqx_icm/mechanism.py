"""Intrinsic curiosity module (Pathak et al., 2017, arXiv:1705.05363).

An encoder ``φ`` maps observations to features that an inverse model
``g(φ(o), φ(o')) -> a`` must be able to read the action from, so the features
keep what the agent controls and drop what it cannot affect. A forward model
``f(φ(o), a) -> φ̂(o')`` predicts the next features; its error is the reward::

    r = (η/2) ||φ̂(o') - φ(o')||^2          (sum over features)
    L = (1-β) L_inv + β L_fwd,  L_fwd = mean over the batch of (1/2) ||φ̂(o') - φ(o')||^2

``L_inv`` is a cross-entropy (a sum of cross-entropies over the sub-actions of
a multi-discrete action). The forward loss's target ``φ(o')`` is detached, so
``φ`` learns from the forward loss only through the model's input ``φ(o)``
and cannot shrink its features to make prediction trivial. ``φ`` ends in a
batch norm over the batch at hand (see :func:`build_encoder` for why). Transitions that
end an episode are left out of the loss and earn no reward: there
``next_observations`` is the next episode's first frame, not the action's outcome.
"""

from __future__ import annotations

from typing import Any

import attrs
import torch
import torch.nn.functional as F
from torch import nn

from pamiqx.api import ActionSpec, Curiosity, ObservationSpec, Transitions, one_hot_actions
from pamiqx_icm.plugin import ICMOptions

__all__ = ["ICM", "ICMLosses", "build_encoder"]

# The paper's encoder: four 3x3 stride-2 convolutions of 32 channels with ELU.
_CONV_LAYERS = 4
_CONV_CHANNELS = 32
# Hidden width of the inverse and forward models (256 in the paper) and of the vector encoder.
_HIDDEN = 256
_MLP_HIDDEN = 128


def build_encoder(spec: ObservationSpec, feature_dim: int) -> nn.Sequential:
    """Build ``φ``: the paper's conv stack for channel-first images, an MLP for vectors.

    Both end in a linear layer to ``feature_dim`` and a batch norm without affine
    parameters. With the forward target detached, only the inverse loss shapes
    ``φ``, and a cross-entropy keeps gaining from larger features: unnormalised,
    their scale (and with it the forward loss and the reward) grows without bound.
    Batch norm fixes the scale of familiar features while an unfamiliar
    observation can still land far outside it, which a layer norm would not allow.
    It always uses the statistics of the batch at hand, never running ones: the
    encoder keeps moving, running statistics lag behind it, and rewards scored
    with them came out 10-30 times the training loss in the maze.

    Args:
        spec: The observations it will see.
        feature_dim: Size of ``φ(o)``.

    Returns:
        The encoder.
    """
    if spec.kind == "vector":
        return nn.Sequential(
            nn.Linear(spec.shape[0], _MLP_HIDDEN),
            nn.ELU(),
            nn.Linear(_MLP_HIDDEN, _MLP_HIDDEN),
            nn.ELU(),
            nn.Linear(_MLP_HIDDEN, feature_dim),
            nn.BatchNorm1d(feature_dim, affine=False, track_running_stats=False),
        )
    height, width, channels = spec.shape
    layers: list[nn.Module] = []
    previous = channels
    for _ in range(_CONV_LAYERS):
        layers += [nn.Conv2d(previous, _CONV_CHANNELS, 3, stride=2, padding=1), nn.ELU()]
        previous = _CONV_CHANNELS
        height, width = (height + 1) // 2, (width + 1) // 2
    layers += [
        nn.Flatten(),
        nn.Linear(_CONV_CHANNELS * height * width, feature_dim),
        nn.BatchNorm1d(feature_dim, affine=False, track_running_stats=False),
    ]
    return nn.Sequential(*layers)


@attrs.frozen
class ICMLosses:
    """The loss terms of one batch.

    Attributes:
        total: ``(1-β) L_inv + β L_fwd``, differentiable.
        inverse: ``L_inv``.
        forward: ``L_fwd``.
        accuracy: Fraction of (sub-)actions the inverse model gets right.
        valid: Number of transitions in the loss (those that did not end an episode).
    """

    total: torch.Tensor
    inverse: torch.Tensor
    forward: torch.Tensor
    accuracy: torch.Tensor
    valid: int


class ICM(Curiosity):
    """Forward-model surprise in the feature space of an inverse-dynamics model.

    Attributes:
        options: The plugin's options.
        spec: The observations scored.
        nvec: Choices of each sub-action (one entry for a discrete action).
        encoder: ``φ``.
        inverse: ``g``, features of ``o`` and ``o'`` to action logits.
        forward_model: ``f``, features of ``o`` and the one-hot action to features of ``o'``.
        optimizer: Adam over all three.
    """

    style = "batch"

    def __init__(
        self, options: ICMOptions, spec: ObservationSpec, action_spec: ActionSpec, device: str
    ) -> None:
        """Build the three networks and the optimizer on ``device``.

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
        self.encoder = build_encoder(spec, dim).to(self.device)
        self.inverse = nn.Sequential(
            nn.Linear(2 * dim, _HIDDEN), nn.ReLU(), nn.Linear(_HIDDEN, sum(self.nvec))
        ).to(self.device)
        self.forward_model = nn.Sequential(
            nn.Linear(dim + sum(self.nvec), _HIDDEN), nn.ReLU(), nn.Linear(_HIDDEN, dim)
        ).to(self.device)
        parameters = [
            *self.encoder.parameters(),
            *self.inverse.parameters(),
            *self.forward_model.parameters(),
        ]
        self.optimizer = torch.optim.Adam(parameters, lr=options.lr)

    def modules(self) -> dict[str, nn.Module]:
        """Return the encoder, the inverse model and the forward model."""
        return {"encoder": self.encoder, "inverse": self.inverse, "forward": self.forward_model}

    def features(self, observations: torch.Tensor) -> torch.Tensor:
        """Return ``φ(o)`` for ``(N, *obs_shape)`` observations, ``N >= 2``.

        Images are scaled to [0, 1]. The final batch norm uses the statistics of
        these ``N`` observations (see :func:`build_encoder`).
        """
        if self.spec.kind == "image":
            x = observations.permute(0, 3, 1, 2).float() / 255.0
        else:
            x = observations.float()
        encoded: torch.Tensor = self.encoder(x)
        return encoded

    def _predict(
        self, observations: torch.Tensor, next_observations: torch.Tensor, actions: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Return ``φ(o)``, ``φ(o')`` and ``φ̂(o')`` (one encoder pass for both frames)."""
        both = self.features(torch.cat([observations, next_observations]))
        now, after = both.chunk(2)
        predicted: torch.Tensor = self.forward_model(
            torch.cat([now, one_hot_actions(actions, self.nvec, self.discrete)], -1)
        )
        return now, after, predicted

    def rewards(self, batch: Transitions) -> torch.Tensor:
        """Return ``(η/2) ||φ̂(o') - φ(o')||^2`` per transition, 0 where an episode ended."""
        steps, envs = batch.shape
        with torch.no_grad():
            _, after, predicted = self._predict(*batch.flattened()[:3])
            surprise = 0.5 * self.options.eta * (predicted - after).pow(2).sum(-1)
            surprise = surprise.reshape(steps, envs).float()
            return surprise.masked_fill(batch.dones.to(surprise.device), 0.0)

    def losses(self, batch: Transitions) -> ICMLosses | None:
        """Compute the loss terms on the transitions that did not end an episode.

        Args:
            batch: The transitions.

        Returns:
            The terms, or None when fewer than two transitions did not end an episode
            (the batch norm needs two samples).
        """
        observations, next_observations, actions, dones = batch.flattened()
        keep = ~dones.to(observations.device)
        valid = int(keep.sum().item())
        if valid < 2:
            return None
        observations, next_observations = observations[keep], next_observations[keep]
        actions = actions[keep]
        now, after, predicted = self._predict(observations, next_observations, actions)
        # The target is detached: φ must not learn to make its own features easy to predict.
        forward = 0.5 * (predicted - after.detach()).pow(2).sum(-1).mean()
        logits = self.inverse(torch.cat([now, after], -1)).split(list(self.nvec), dim=-1)
        columns = actions.reshape(valid, -1)
        # A multi-discrete action is several categoricals: one cross-entropy each, summed.
        inverse = torch.stack(
            [F.cross_entropy(logit, columns[:, k]) for k, logit in enumerate(logits)]
        ).sum()
        with torch.no_grad():
            hits = [(logit.argmax(-1) == columns[:, k]).float() for k, logit in enumerate(logits)]
            accuracy = torch.stack(hits).mean()
        beta = self.options.beta
        total = (1.0 - beta) * inverse + beta * forward
        return ICMLosses(total, inverse, forward, accuracy, valid)

    def update(self, batch: Transitions) -> dict[str, float]:
        """Train the encoder, inverse and forward models for ``epochs`` full-batch steps.

        Returns:
            ``loss``, ``inverse_loss``, ``forward_loss`` and ``inverse_accuracy`` (means
            over the steps) and ``valid_fraction`` (transitions that did not end an episode).
        """
        totals: dict[str, float] = {
            "loss": 0.0,
            "inverse_loss": 0.0,
            "forward_loss": 0.0,
            "inverse_accuracy": 0.0,
        }
        count = batch.shape[0] * batch.shape[1]
        valid = 0
        for _ in range(self.options.epochs):
            terms = self.losses(batch)
            if terms is None:
                return {**totals, "valid_fraction": 0.0}
            self.optimizer.zero_grad(set_to_none=True)
            terms.total.backward()  # type: ignore[no-untyped-call]
            self.optimizer.step()
            valid = terms.valid
            totals["loss"] += float(terms.total.item())
            totals["inverse_loss"] += float(terms.inverse.item())
            totals["forward_loss"] += float(terms.forward.item())
            totals["inverse_accuracy"] += float(terms.accuracy.item())
        metrics = {key: value / self.options.epochs for key, value in totals.items()}
        metrics["valid_fraction"] = valid / count
        return metrics

    def state_dict(self) -> dict[str, Any]:
        """Return the three networks and the optimizer."""
        return {**super().state_dict(), "optimizer": self.optimizer.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what :meth:`state_dict` returned."""
        super().load_state_dict(state)
        self.optimizer.load_state_dict(state["optimizer"])
