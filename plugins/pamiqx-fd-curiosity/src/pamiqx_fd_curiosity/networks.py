"""The latent observation and the models every forward-dynamics mechanism shares.

* :func:`latent_width` and :func:`flatten_latents`: the latent ``o_t`` is what the
  host's representation stage hands the mechanism (``[representation]``: the
  frozen ``random`` features, the reference's online I-JEPA tokens ``jepa``...);
  vectors are used as they are, ``(N, D)`` tokens flattened to ``N * D``, so the
  prediction target is always the full latent. Raw images are refused at build
  (:func:`pamiqx_fd_curiosity.plugin.require_latents`).
* :class:`ForwardModel`: ``fd(o_t, a_t, g_t) -> (ô_{t+1}, g_{t+1})`` over
  ``[o_t, one-hot(a_t)]`` with a linear head; :class:`ForwardDynamics` has a GRU
  cell for its core, :class:`CoreForwardDynamics` one of the reference's
  recurrent stacks (``qlstm``, ``qgru``: :mod:`pamiqx.api.cores`), and
  :func:`build_forward_model` picks one from the options' ``core``.
  :meth:`ForwardModel.run_window` runs a model over a time-major window (the stacks
  with their parallel scan).
* :func:`standardise`: the per-world standardisation of the meta cascade.
"""

from __future__ import annotations

import abc
from typing import TYPE_CHECKING, Literal

import torch
from torch import Tensor, nn

from pamiqx.api import CoreSizes, ObservationSpec, RecurrentStack

if TYPE_CHECKING:
    from pamiqx_fd_curiosity.fd_options import FDOptions

STANDARDISE_EPS = 1e-6


def standardise(x: Tensor, eps: float = STANDARDISE_EPS) -> Tensor:
    """Standardise each world's tensor as a whole: ``(x - mean) / (std + eps)`` on the last dim.

    The std is the unbiased one over the whole flat latent (all tokens), as the
    reference's ``Standardize`` (``envs/transforms/common.py``) computes it.
    """
    mean = x.mean(dim=-1, keepdim=True)
    std = x.std(dim=-1, keepdim=True, unbiased=True)
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


class ForwardModel(nn.Module, abc.ABC):
    """Recurrent forward dynamics ``fd(o_t, a_t, g_t) -> (ô_{t+1}, g_{t+1})``.

    Deterministic (trained with MSE); one step at a time for any leading batch
    shape, with the recurrent state ``g`` a flat ``(..., hidden_dim)`` tensor.

    Attributes:
        hidden_dim: Size of the flat recurrent state ``g``.
    """

    hidden_dim: int

    def forward(self, latent: Tensor, action: Tensor, hidden: Tensor) -> tuple[Tensor, Tensor]:
        """Predict the next latent for any leading batch shape.

        Args:
            latent: ``(..., D)`` current latent (real or imagined).
            action: ``(..., A)`` one-hot action taken there.
            hidden: ``(..., hidden_dim)`` recurrent state.

        Returns:
            ``(..., D)`` predicted next latent and ``(..., hidden_dim)`` next state.
        """
        lead = latent.shape[:-1]
        x = torch.cat([latent, action], dim=-1).reshape(-1, latent.shape[-1] + action.shape[-1])
        prediction, h = self.step(x, hidden.reshape(-1, self.hidden_dim))
        return prediction.reshape(*lead, -1), h.reshape(*lead, self.hidden_dim)

    @abc.abstractmethod
    def step(self, x: Tensor, hidden: Tensor) -> tuple[Tensor, Tensor]:
        """One step on ``(B, D + A)`` inputs from a ``(B, hidden_dim)`` state.

        Returns:
            ``(B, D)`` predicted next latents and ``(B, hidden_dim)`` next states.
        """

    def run_window(
        self, latents: Tensor, actions: Tensor, dones: Tensor, hidden: Tensor
    ) -> tuple[Tensor, Tensor, Tensor]:
        """Run the model over a time-major window of real latents, step by step.

        The recurrent state is zeroed before step ``t`` when ``dones[t-1]`` is set
        (step ``t`` starts a new episode).

        Args:
            latents: ``(T, E, D)`` latents ``o_t``.
            actions: ``(T, E, A)`` one-hot actions ``a_t``.
            dones: ``(T, E)`` bool, ``a_t`` ended an episode.
            hidden: ``(E, H)`` recurrent state before step 0.

        Returns:
            ``(T, E, D)`` 1-step predictions of ``o_{t+1}``, ``(T, E, H)`` the states
            after each step, and ``(E, H)`` the state to start the following window from.
        """
        keep = (~dones).unsqueeze(-1).to(latents.dtype)
        predictions, hiddens = [], []
        h = hidden
        for t in range(latents.shape[0]):
            if t > 0:
                h = h * keep[t - 1]
            prediction, h = self(latents[t], actions[t], h)
            predictions.append(prediction)
            hiddens.append(h)
        return torch.stack(predictions), torch.stack(hiddens), h * keep[-1]


class ForwardDynamics(ForwardModel):
    """A GRU cell over ``[o_t, one-hot(a_t)]`` and a linear head from its new state."""

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

    def step(self, x: Tensor, hidden: Tensor) -> tuple[Tensor, Tensor]:
        """One GRU step, then the head on the new state."""
        h = self.cell(x, hidden)
        prediction: Tensor = self.head(h)
        return prediction, h


class CoreForwardDynamics(ForwardModel):
    """A reference recurrent stack over ``[o_t, one-hot(a_t)]`` and a linear head.

    The stack (input projection, pre-RMSNorm blocks with the input-gated
    recurrence, SwiGLU feed-forwards, residuals: :class:`pamiqx.api.cores.RecurrentStack`)
    is the reference's forward-dynamics core; its flat state is ``g``. Dropout is
    never applied: the same forward pass scores the agent's steps and trains.

    Attributes:
        core: The recurrent stack.
        head: Its output to the predicted latent.
    """

    def __init__(
        self,
        latent_dim: int,
        action_dim: int,
        kind: Literal["qlstm", "qgru", "ttt"],
        sizes: CoreSizes,
    ) -> None:
        """Create the stack and the head.

        Args:
            latent_dim: Size of ``o_t``.
            action_dim: Width of the one-hot action.
            kind: ``qlstm``, ``qgru`` or ``ttt``.
            sizes: The stack's depth, width and feed-forward ratio.
        """
        super().__init__()
        self.core = RecurrentStack(kind, latent_dim + action_dim, sizes)
        self.hidden_dim = self.core.state_dim
        self.head = nn.Linear(self.core.width, latent_dim)

    def step(self, x: Tensor, hidden: Tensor) -> tuple[Tensor, Tensor]:
        """One step of the stack (the recurrence, not the window scan), then the head."""
        y, h = self.core.step(x, hidden)
        prediction: Tensor = self.head(y)
        return prediction, h

    def run_window(
        self, latents: Tensor, actions: Tensor, dones: Tensor, hidden: Tensor
    ) -> tuple[Tensor, Tensor, Tensor]:
        """Run a window with the stack's parallel scan (see :meth:`ForwardModel.run_window`).

        The inputs of every step are data, so the whole window is one scan; the
        state after every step comes with it, for imagination branches to start from.
        A ``ttt`` stack steps through the window instead: its state (the fast weights)
        is too large to keep for every step.
        """
        if self.core.kind == "ttt":
            return super().run_window(latents, actions, dones, hidden)
        resets = torch.zeros_like(dones)
        resets[1:] = dones[:-1]
        x = torch.cat([latents, actions], dim=-1)
        y, states = self.core.forward_window_states(x, hidden, resets)
        keep = (~dones[-1]).unsqueeze(-1).to(states.dtype)
        return self.head(y), states, states[-1] * keep


def build_forward_model(options: FDOptions, latent_dim: int, action_dim: int) -> ForwardModel:
    """Build the forward model the options' ``core`` names.

    ``gru``: a GRU cell of ``hidden_dim`` units. ``qlstm``, ``qgru``: a stack of
    ``core_depth`` blocks of width ``hidden_dim`` with feed-forward ratio
    ``core_ff_ratio`` (the reference's: 8 x 1024, ratio 4).

    Args:
        options: A forward-dynamics mechanism's options.
        latent_dim: Size of ``o_t``.
        action_dim: Width of the one-hot action.
    """
    if options.core == "gru":
        return ForwardDynamics(latent_dim, action_dim, options.hidden_dim)
    sizes = CoreSizes(
        depth=options.core_depth, width=options.hidden_dim, ff_ratio=options.core_ff_ratio
    )
    return CoreForwardDynamics(latent_dim, action_dim, options.core, sizes)
