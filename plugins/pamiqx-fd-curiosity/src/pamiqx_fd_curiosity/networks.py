"""The models every forward-dynamics mechanism shares.

* :class:`RandomEncoder`: the frozen random-feature encoder giving the latent
  observation ``o_t`` (the reference trains an I-JEPA ViT online; a fixed
  random encoder is the simple option).
* :class:`ForwardDynamics`: ``fd(o_t, a_t, g_t) -> (ô_{t+1}, g_{t+1})``, a GRU cell
  over ``[o_t, one-hot(a_t)]`` and a linear head; :func:`run_sequence` runs it
  over a time-major sequence.
* :func:`standardise`: the per-world standardisation of the meta cascade.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from pamiqx.api import ObservationSpec

STANDARDISE_EPS = 1e-6
_FRAME_EPS = 1e-5
_POOLED_SIZE = 4


def standardise(x: Tensor, eps: float = STANDARDISE_EPS) -> Tensor:
    """Standardise each world's tensor as a whole: ``(x - mean) / (std + eps)`` on the last dim."""
    mean = x.mean(dim=-1, keepdim=True)
    std = x.std(dim=-1, keepdim=True, unbiased=False)
    return (x - mean) / (std + eps)


class RandomEncoder(nn.Module):
    """A frozen random-feature encoder giving the latent observation ``o_t``.

    Images ``(H, W, C)`` (uint8) are standardised per frame, passed through
    random ReLU convolutions (stride 2 while the map is at least 8 pixels),
    average-pooled to 4x4 and projected to ``latent_dim``; vectors go through a
    random two-layer MLP. The output is layer-normed (no affine), so every
    latent dimension has unit scale and prediction errors are comparable
    across worlds. Nothing here trains.

    Attributes:
        obs_shape: Shape of one observation.
        latent_dim: Size of ``o_t``.
    """

    def __init__(
        self,
        observation_spec: ObservationSpec,
        latent_dim: int,
        channels: tuple[int, ...] = (32, 64, 64),
        hidden: int = 256,
    ) -> None:
        """Build the encoder with torch's (seeded) global generator.

        Args:
            observation_spec: What the environment observes.
            latent_dim: Size of the latent observation.
            channels: Channels of the convolutions (images).
            hidden: Width of the MLP's hidden layer (vectors).
        """
        super().__init__()
        self.obs_shape = tuple(observation_spec.shape)
        self.latent_dim = latent_dim
        self.image = observation_spec.kind == "image"
        layers: list[nn.Module] = []
        if self.image:
            height, width, prev = self.obs_shape
            size = min(height, width)
            for out in channels:
                if size >= 8:
                    layers += [nn.Conv2d(prev, out, 4, 2, 1), nn.ReLU()]
                    size //= 2
                else:
                    layers += [nn.Conv2d(prev, out, 3, 1, 1), nn.ReLU()]
                prev = out
            layers += [
                nn.AdaptiveAvgPool2d(_POOLED_SIZE),
                nn.Flatten(),
                nn.Linear(prev * _POOLED_SIZE**2, latent_dim),
            ]
        else:
            layers += [
                nn.Linear(self.obs_shape[0], hidden),
                nn.ReLU(),
                nn.Linear(hidden, latent_dim),
            ]
        self.net = nn.Sequential(*layers)
        self.norm = nn.LayerNorm(latent_dim, elementwise_affine=False)
        self.requires_grad_(False)

    def forward(self, observations: Tensor) -> Tensor:
        """Encode ``(..., *obs_shape)`` observations to ``(..., latent_dim)`` latents."""
        lead = observations.shape[: observations.dim() - len(self.obs_shape)]
        x = observations.detach().reshape(-1, *self.obs_shape).float()
        if self.image:
            x = x.permute(0, 3, 1, 2)
            mean = x.mean(dim=(1, 2, 3), keepdim=True)
            std = x.std(dim=(1, 2, 3), keepdim=True, unbiased=False)
            x = (x - mean) / (std + _FRAME_EPS)
        latent: Tensor = self.norm(self.net(x))
        return latent.reshape(*lead, self.latent_dim)


class ForwardDynamics(nn.Module):
    """Recurrent forward dynamics ``fd(o_t, a_t, g_t) -> (ô_{t+1}, g_{t+1})``.

    A GRU cell over ``[o_t, one-hot(a_t)]`` and a linear head from the new
    hidden state to the predicted latent; deterministic (trained with MSE).

    Attributes:
        hidden_dim: Size of the recurrent state ``g``.
    """

    def __init__(self, latent_dim: int, action_dim: int, hidden_dim: int) -> None:
        """Create the cell and the head.

        Args:
            latent_dim: Size of ``o_t``.
            action_dim: Width of the one-hot action.
            hidden_dim: Size of the recurrent state.
        """
        super().__init__()
        self.hidden_dim = hidden_dim
        self.cell = nn.GRUCell(latent_dim + action_dim, hidden_dim)
        self.head = nn.Linear(hidden_dim, latent_dim)

    def forward(self, latent: Tensor, action: Tensor, hidden: Tensor) -> tuple[Tensor, Tensor]:
        """Predict the next latent for any leading batch shape.

        Args:
            latent: ``(..., D)`` current latent (real or imagined).
            action: ``(..., A)`` one-hot action taken there.
            hidden: ``(..., H)`` recurrent state.

        Returns:
            ``(..., D)`` predicted next latent and ``(..., H)`` next recurrent state.
        """
        lead = latent.shape[:-1]
        x = torch.cat([latent, action], dim=-1).reshape(-1, latent.shape[-1] + action.shape[-1])
        h = self.cell(x, hidden.reshape(-1, self.hidden_dim))
        prediction: Tensor = self.head(h)
        return prediction.reshape(*lead, -1), h.reshape(*lead, self.hidden_dim)


def run_sequence(
    model: ForwardDynamics, latents: Tensor, actions: Tensor, dones: Tensor, hidden: Tensor
) -> tuple[Tensor, Tensor, Tensor]:
    """Run the FD over a time-major sequence on the real latents.

    The recurrent state is zeroed before step ``t`` when ``dones[t-1]`` is set
    (step ``t`` starts a new episode).

    Args:
        model: The forward-dynamics model.
        latents: ``(T, E, D)`` latents ``o_t``.
        actions: ``(T, E, A)`` one-hot actions ``a_t``.
        dones: ``(T, E)`` bool, ``a_t`` ended an episode.
        hidden: ``(E, H)`` recurrent state before step 0.

    Returns:
        ``(T, E, D)`` 1-step predictions of ``o_{t+1}``, ``(T, E, H)`` the states
        after each step, and ``(E, H)`` the state to start the following sequence from.
    """
    keep = (~dones).unsqueeze(-1).to(latents.dtype)
    predictions, hiddens = [], []
    h = hidden
    for t in range(latents.shape[0]):
        if t > 0:
            h = h * keep[t - 1]
        prediction, h = model(latents[t], actions[t], h)
        predictions.append(prediction)
        hiddens.append(h)
    return torch.stack(predictions), torch.stack(hiddens), h * keep[-1]
