"""The shared forward-dynamics core of the family.

Every mechanism here works on a latent observation ``o_t`` from a frozen random
encoder and predicts ``o_{t+1}`` with a recurrent forward-dynamics model
``fd(o_t, a_t, g_t) -> (ô_{t+1}, g_{t+1})``. This module holds the pieces they
share:

* :class:`RandomEncoder`: the frozen random-feature encoder (the reference
  trains an I-JEPA ViT online; a fixed random encoder is the simple option).
* :class:`ForwardDynamics`: a GRU cell over ``[o_t, one-hot(a_t)]`` and a linear head.
* :func:`imagination_weights`, :class:`Imagination` and
  :func:`imagination_errors`: the K-step imagination, on the agent side (one
  step at a time, all worlds batched) and on the training side (whole sequences).
* :class:`ForwardDynamicsCuriosity`: the online :class:`~pamiqx.api.Curiosity`
  plumbing: the inference copy of the models guarded by a lock, training,
  weight sync and checkpoint state.
"""

from __future__ import annotations

import abc
import copy
import math
import threading
from typing import Any, ClassVar, Literal

import torch
from torch import Tensor, nn

from pamiqx.api import ActionSpec, Curiosity, ObservationSpec, Transitions, one_hot_actions

STANDARDISE_EPS = 1e-6
_FRAME_EPS = 1e-5
_POOLED_SIZE = 4


def imagination_weights(steps: int) -> Tensor:
    """Return the normalised exponential weights of the k-step errors.

    ``w_k = w^(k-1) / sum_j w^(j-1)`` with ``w = exp(-1/K)``, so the 1-step
    prediction weighs most.

    Args:
        steps: ``K``, the number of imagination steps (at least 1).

    Returns:
        ``(K,)`` float32 weights summing to 1.

    Raises:
        ValueError: If ``steps`` is below 1.
    """
    if steps < 1:
        raise ValueError(f"imagination steps must be at least 1, got {steps}")
    decay = math.exp(-1.0 / steps)
    raw = torch.tensor([decay**k for k in range(steps)], dtype=torch.float64)
    return (raw / raw.sum()).float()


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


def imagination_errors(
    model: ForwardDynamics,
    latents: Tensor,
    actions: Tensor,
    next_latents: Tensor,
    dones: Tensor,
    hidden: Tensor,
    steps: int,
) -> tuple[Tensor, Tensor, Tensor]:
    """k-step prediction errors over a sequence, aligned to the transition they score.

    Step 1 starts from the data (real latent and real recurrent state); steps
    2..K feed the FD its own previous prediction together with the action
    actually taken at that step in the data. A k-step prediction started at
    ``s`` targets ``o_{s+k}`` and is valid only if no episode ended in
    ``s..s+k-1``.

    Args:
        model: The forward-dynamics model.
        latents: ``(T, E, D)`` latents ``o_t``.
        actions: ``(T, E, A)`` one-hot actions.
        next_latents: ``(T, E, D)`` latents of ``o_{t+1}``.
        dones: ``(T, E)`` bool.
        hidden: ``(E, H)`` recurrent state before step 0.
        steps: ``K``.

    Returns:
        ``(K, T, E)`` errors, where ``[k-1, t]`` is the MSE (mean over latent
        dimensions) of the k-step prediction of ``o_{t+1}``, ``(K, T, E)`` their
        validity, and the ``(E, H)`` state to start the following sequence from.
    """
    alive = ~dones
    time, envs = dones.shape
    predictions, hiddens, last = run_sequence(model, latents, actions, dones, hidden)
    errors = [(predictions - next_latents).pow(2).mean(dim=-1)]
    valid = [alive]
    mask = alive
    for k in range(2, steps + 1):
        n = time - k + 1
        pad = dones.new_zeros((min(k - 1, time), envs))
        if n <= 0:
            errors.append(pad.to(latents.dtype))
            valid.append(pad)
            continue
        predictions, hiddens = model(predictions[:n], actions[k - 1 :], hiddens[:n])
        mask = mask[:n] & alive[k - 1 :]
        error = (predictions - next_latents[k - 1 :]).pow(2).mean(dim=-1)
        errors.append(torch.cat([pad.to(error.dtype), error]))
        valid.append(torch.cat([pad, mask]))
    return torch.stack(errors), torch.stack(valid), last


def weighted_loss(errors: Tensor, valid: Tensor, weights: Tensor) -> tuple[Tensor, list[float]]:
    """Combine the per-step masked MSEs with the imagination weights.

    Steps without a single valid prediction (a batch shorter than K, or cut
    by episode ends) drop out of both sums.

    Args:
        errors: ``(K, T, E)`` from :func:`imagination_errors`.
        valid: ``(K, T, E)`` bool.
        weights: ``(K,)`` from :func:`imagination_weights`.

    Returns:
        The scalar loss and the per-step mean errors (nan where a step had no data).
    """
    total = errors.new_zeros(())
    norm = errors.new_zeros(())
    per_step: list[float] = []
    for k in range(errors.shape[0]):
        count = valid[k].sum()
        if int(count) == 0:
            per_step.append(math.nan)
            continue
        step_loss = (errors[k] * valid[k]).sum() / count
        per_step.append(float(step_loss.detach()))
        total = total + weights[k] * step_loss
        norm = norm + weights[k]
    return total / norm.clamp_min(1e-12), per_step


def combine_errors(errors: Tensor, valid: Tensor, weights: Tensor) -> Tensor:
    """Exponentially average the available k-step errors of each transition.

    Args:
        errors: ``(K, ...)`` k-step errors.
        valid: ``(K, ...)`` which exist.
        weights: ``(K,)`` imagination weights.

    Returns:
        ``(...)`` ``sum_k w_k e_k / sum_k w_k`` over the valid ``k`` (0 where none is).
    """
    w = weights.view(-1, *([1] * (errors.dim() - 1))) * valid.to(errors.dtype)
    return (w * errors).sum(dim=0) / w.sum(dim=0).clamp_min(1e-12)


class Imagination:
    """Agent-side imagination: the FD's real recurrent state and its pending predictions.

    At each step the FD is run once, batched over ``K`` branches and ``E``
    worlds: branch 1 starts from the last real latent ``o_{t-1}`` and the real
    state ``g_{t-1}``; branch ``k`` continues an imagined rollout started
    ``k-1`` steps earlier, fed its own previous prediction. Every branch uses
    the action actually taken, ``a_{t-1}`` (it only becomes known when ``o_t``
    arrives, which is why the predictions are made then rather than at ``t-1``;
    the values are the same). All ``K`` predictions target ``o_t`` and are
    scored against it; the deepest branch is dropped.

    Attributes:
        steps: ``K``.
        weights: ``(K,)`` imagination weights.
    """

    def __init__(self, steps: int, weights: Tensor) -> None:
        """Start empty (the first observation initialises the state)."""
        self.steps = steps
        self.weights = weights
        self.latent: Tensor | None = None
        self.hidden: Tensor | None = None
        self.branch_latent: Tensor | None = None
        self.branch_hidden: Tensor | None = None
        self.branch_valid: Tensor | None = None

    def ready(self, num_envs: int) -> bool:
        """Return True when the state exists for ``num_envs`` worlds."""
        return self.latent is not None and self.latent.shape[0] == num_envs

    def start(self, latent: Tensor, hidden_dim: int) -> None:
        """Begin from ``latent`` with a zero recurrent state and no pending predictions."""
        envs, dim = latent.shape
        depth = self.steps - 1
        self.latent = latent.clone()
        self.hidden = latent.new_zeros(envs, hidden_dim)
        self.branch_latent = latent.new_zeros(depth, envs, dim)
        self.branch_hidden = latent.new_zeros(depth, envs, hidden_dim)
        self.branch_valid = torch.zeros(depth, envs, dtype=torch.bool, device=latent.device)

    def step(
        self, model: ForwardDynamics, latent: Tensor, action: Tensor, starts: Tensor
    ) -> Tensor:
        """Score the arriving latent against every prediction that targeted it.

        Args:
            model: The FD (the agent's inference copy).
            latent: ``(E, D)`` the latent ``o_t`` that just arrived.
            action: ``(E, A)`` one-hot ``a_{t-1}``.
            starts: ``(E,)`` bool, ``o_t`` starts an episode: its world's state
                is reset afterwards and its error is meaningless.

        Returns:
            ``(E,)`` the imagination-averaged error of ``o_t``.
        """
        assert self.latent is not None and self.hidden is not None
        assert self.branch_latent is not None and self.branch_hidden is not None
        assert self.branch_valid is not None
        envs = latent.shape[0]
        inputs = torch.cat([self.latent.unsqueeze(0), self.branch_latent])
        hidden = torch.cat([self.hidden.unsqueeze(0), self.branch_hidden])
        valid = torch.cat([self.branch_valid.new_ones(1, envs), self.branch_valid])
        actions = action.unsqueeze(0).expand(self.steps, *action.shape)
        predictions, hidden = model(inputs, actions, hidden)
        errors = (predictions - latent.unsqueeze(0)).pow(2).mean(dim=-1)
        error = combine_errors(errors, valid, self.weights)
        keep = (~starts).to(latent.dtype).unsqueeze(-1)
        depth = self.steps - 1
        self.latent = latent.clone()
        # The 1-step branch consumed the real o_{t-1}: its new state is the real g_t.
        self.hidden = hidden[0] * keep
        self.branch_latent = predictions[:depth] * keep
        self.branch_hidden = hidden[:depth] * keep
        self.branch_valid = valid[:depth] & ~starts
        return error

    def state_dict(self) -> dict[str, Tensor | None]:
        """Return copies of the state (tensors or None)."""
        return {
            "latent": _clone(self.latent),
            "hidden": _clone(self.hidden),
            "branch_latent": _clone(self.branch_latent),
            "branch_hidden": _clone(self.branch_hidden),
            "branch_valid": _clone(self.branch_valid),
        }

    def load_state_dict(self, state: dict[str, Any], device: torch.device) -> None:
        """Restore :meth:`state_dict` onto ``device``."""
        self.latent = _to(state["latent"], device)
        self.hidden = _to(state["hidden"], device)
        self.branch_latent = _to(state["branch_latent"], device)
        self.branch_hidden = _to(state["branch_hidden"], device)
        self.branch_valid = _to(state["branch_valid"], device)


def _clone(x: Tensor | None) -> Tensor | None:
    return None if x is None else x.detach().clone()


def _to(x: Tensor | None, device: torch.device) -> Tensor | None:
    # clone() also turns inference-mode tensors into ordinary ones.
    return None if x is None else x.to(device).clone()


class ForwardDynamicsCuriosity(Curiosity, abc.ABC):
    """Online curiosity built on forward dynamics: the plumbing every family member shares.

    Threads: :meth:`agent_step` runs in the inference thread and only touches
    the inference copy ``agent_model`` and the agent-side state;
    :meth:`update` runs in the training thread and trains ``model``, then
    copies its weights into ``agent_model``. ``lock`` guards the inference
    copy and the agent-side state. The encoder is frozen, so both threads
    may run it concurrently.

    Training starts each batch from the recurrent state the previous batch
    ended in (the batches of a run are consecutive per world; a batch with a
    different number of worlds starts from zeros).

    Attributes:
        encoder: The frozen latent encoder.
        model: The trained forward-dynamics model(s).
        agent_model: The agent's inference copy of ``model``.
        optimizer: Adam over ``model``.
        lock: Guards ``agent_model`` and the agent-side state.
    """

    style: ClassVar[Literal["batch", "online"]] = "online"

    def __init__(
        self,
        encoder: RandomEncoder,
        model: nn.Module,
        action_spec: ActionSpec,
        device: str,
        lr: float,
        grad_clip: float,
        epochs: int,
    ) -> None:
        """Move the models to ``device`` and create the optimizer and the inference copy.

        Args:
            encoder: The frozen encoder.
            model: The FD model (or a module holding several).
            action_spec: The action space (for the one-hot encoding).
            device: Where everything lives.
            lr: Adam learning rate.
            grad_clip: Maximum gradient norm (0: no clipping).
            epochs: Gradient steps per :meth:`update`.
        """
        self.device = torch.device(device)
        self.encoder = encoder.to(self.device)
        self.model = model.to(self.device)
        self.agent_model = copy.deepcopy(self.model).requires_grad_(False)
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=lr)
        self.action_spec = action_spec
        self.grad_clip = grad_clip
        self.epochs = epochs
        self.lock = threading.Lock()
        self.train_hidden: Tensor | None = None
        # Agent-side sums and counts since the last update, reported as ``agent/<name>``.
        self._agent_stats: dict[str, tuple[Tensor, Tensor]] = {}

    # -- what subclasses provide ----------------------------------------------------------

    @abc.abstractmethod
    def _agent_ready(self, num_envs: int) -> bool:
        """Return True when the agent-side state exists for ``num_envs`` worlds."""

    @abc.abstractmethod
    def _agent_start(self, latent: Tensor) -> None:
        """Reset the agent-side state to begin at ``latent`` (the first step)."""

    @abc.abstractmethod
    def _agent_reward(self, latent: Tensor, action: Tensor, starts: Tensor) -> Tensor:
        """Score the arriving latent, advance the agent-side state, return ``(E,)`` rewards."""

    @abc.abstractmethod
    def _agent_state(self) -> dict[str, Any]:
        """Return copies of the agent-side state."""

    @abc.abstractmethod
    def _load_agent_state(self, state: dict[str, Any]) -> None:
        """Restore :meth:`_agent_state`."""

    @abc.abstractmethod
    def _zero_train_hidden(self, num_envs: int) -> Tensor:
        """Return the zero recurrent state of the training side for ``num_envs`` worlds."""

    @abc.abstractmethod
    def _loss(
        self,
        latents: Tensor,
        actions: Tensor,
        next_latents: Tensor,
        dones: Tensor,
        hidden: Tensor,
    ) -> tuple[Tensor, dict[str, float], Tensor]:
        """Return the training loss, metrics and the state to start the next batch from."""

    # -- the Curiosity interface ----------------------------------------------------------

    def modules(self) -> dict[str, nn.Module]:
        """Return the encoder, the trained FD and its inference copy."""
        return {"encoder": self.encoder, "fd": self.model, "fd_agent": self.agent_model}

    def encode_actions(self, actions: Tensor) -> Tensor:
        """One-hot encode actions for the FD."""
        spec = self.action_spec
        return one_hot_actions(actions.to(self.device), spec.nvec, spec.kind == "discrete")

    def rewards(self, batch: Transitions) -> Tensor:
        """Return the rewards scored while acting (``batch.intrinsic``), ``(T, E)``."""
        if batch.intrinsic is None:
            # Only when driven like a batch mechanism; there is nothing to score with.
            return torch.zeros(batch.shape, device=batch.dones.device)
        return batch.intrinsic.detach().float()

    def agent_step(
        self, observation: Tensor, action: Tensor | None, episode_start: Tensor
    ) -> Tensor | None:
        """Score the observation that just arrived against the FD's predictions of it.

        Args:
            observation: ``(E, *obs_shape)`` ``o_t``.
            action: ``(E, ...)`` ``a_{t-1}``, None on the first step.
            episode_start: ``(E,)`` ``o_t`` starts an episode (reward 0 there,
                and the FD's state and pending predictions are reset).

        Returns:
            ``(E,)`` reward of the transition into ``o_t``, or None on the first step.
        """
        with torch.no_grad():
            latent = self.encoder(observation.to(self.device))
            starts = episode_start.to(self.device, torch.bool).reshape(-1)
            with self.lock:
                if action is None or not self._agent_ready(latent.shape[0]):
                    self._agent_start(latent)
                    return None
                return self._agent_reward(latent, self.encode_actions(action), starts)

    def update(self, batch: Transitions) -> dict[str, float]:
        """Train the FD on the batch's sequences, then refresh the agent's inference copy.

        Returns:
            ``loss``, mechanism-specific training metrics, and ``agent/...`` means
            of what the agent side scored since the previous update.
        """
        with torch.no_grad():
            latents = self.encoder(batch.observations.to(self.device))
            next_latents = self.encoder(batch.next_observations.to(self.device))
        actions = self.encode_actions(batch.actions)
        dones = batch.dones.to(self.device, torch.bool)
        num_envs = int(dones.shape[1])
        hidden = self.train_hidden
        if hidden is None or hidden.shape[-2] != num_envs:
            hidden = self._zero_train_hidden(num_envs)
        metrics: dict[str, float] = {}
        last = hidden
        for _ in range(self.epochs):
            loss, metrics, last = self._loss(latents, actions, next_latents, dones, hidden)
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()  # type: ignore[no-untyped-call]
            if self.grad_clip > 0:
                norm = nn.utils.clip_grad_norm_(self.model.parameters(), self.grad_clip)
                metrics["grad_norm"] = float(norm)
            self.optimizer.step()
        self.train_hidden = last.detach()
        self._sync_agent_model()
        with self.lock:
            stats, self._agent_stats = self._agent_stats, {}
        for name, (total, count) in stats.items():
            if float(count) > 0:
                metrics[f"agent/{name}"] = float(total) / float(count)
        return metrics

    def _record(self, name: str, values: Tensor, mask: Tensor) -> None:
        """Add the agent step's ``values`` where ``mask`` to the statistics of ``name``.

        Called under the lock; the sums stay tensors so that acting never waits
        on a device synchronisation.
        """
        weight = mask.to(values.dtype)
        total, count = self._agent_stats.get(name, (values.new_zeros(()), values.new_zeros(())))
        self._agent_stats[name] = (total + (values * weight).sum(), count + weight.sum())

    def _sync_agent_model(self) -> None:
        """Copy the trained weights into the inference copy (under the lock)."""
        with torch.no_grad(), self.lock:
            for target, source in zip(
                self.agent_model.parameters(), self.model.parameters(), strict=True
            ):
                target.copy_(source.detach())

    def state_dict(self) -> dict[str, Any]:
        """Return models, optimizer, training and agent-side state (tensors and plain values)."""
        with self.lock:
            agent = self._agent_state()
        return {
            "encoder": self.encoder.state_dict(),
            "fd": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "train_hidden": _clone(self.train_hidden),
            "agent": agent,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state_dict`; the inference copy gets the restored weights."""
        self.encoder.load_state_dict(state["encoder"])
        self.model.load_state_dict(state["fd"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.train_hidden = _to(state["train_hidden"], self.device)
        self._sync_agent_model()
        with self.lock:
            self._load_agent_state(state["agent"])
