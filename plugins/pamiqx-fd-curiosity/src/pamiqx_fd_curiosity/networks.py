"""The latent observation and the models every forward-dynamics mechanism shares.

* :func:`latent_width` and :func:`flatten_latents`: the latent ``o_t`` is what the
  host's representation stage hands the mechanism (``[representation]``: the
  frozen ``random`` features, the reference's online I-JEPA tokens ``jepa``...);
  vectors are used as they are, ``(N, D)`` tokens flattened to ``N * D``, so the
  prediction target is always the full latent. Raw images are refused at build
  (:func:`pamiqx_fd_curiosity.plugin.require_latents`).
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


def standardise(x: Tensor, eps: float = STANDARDISE_EPS) -> Tensor:
    """Standardise each world's tensor as a whole: ``(x - mean) / (std + eps)`` on the last dim."""
    mean = x.mean(dim=-1, keepdim=True)
    std = x.std(dim=-1, keepdim=True, unbiased=False)
    return (x - mean) / (std + eps)


def latent_width(observation_spec: ObservationSpec) -> int:
    """Return the width of the flat latent ``o_t``: ``D`` for vectors, ``N * D`` for tokens."""
    width = 1
    for size in observation_spec.shape:
        width *= size
    return width


def flatten_latents(observations: Tensor, observation_spec: ObservationSpec) -> Tensor:
    """Turn ``(..., *spec.shape)`` latents into float32 ``(..., width)`` vectors.

    Args:
        observations: Latents as the representation stage produced them.
        observation_spec: Their spec (vectors or tokens).

    Returns:
        The latents with each observation flattened (tokens in order), detached.
    """
    lead = observations.dim() - len(observation_spec.shape)
    return observations.detach().flatten(start_dim=lead).float()


class FlatLatent(nn.Module):
    """``(B, *shape)`` latents to ``(B, width)`` float32 vectors: the owned networks' input."""

    def forward(self, observations: Tensor) -> Tensor:
        """Flatten each observation of the batch (tokens in order)."""
        return observations.detach().flatten(start_dim=1).float()


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
