"""The online curiosity plumbing every forward-dynamics mechanism shares.

:class:`ForwardDynamicsCuriosity` holds the trained FD model(s) and their
inference copy guarded by a lock; it trains, syncs the weights into the agent's
copy and saves the checkpoint state. The latent ``o_t`` is the observation the
host hands over: the output of the run's representation stage, flattened
(:func:`~pamiqx_fd_curiosity.networks.flatten_latents`). Subclasses
(:mod:`pamiqx_fd_curiosity.mechanisms`, :mod:`pamiqx_fd_curiosity.meta`) provide
the agent-side scoring and the training loss.
"""

from __future__ import annotations

import abc
import copy
import threading
from typing import Any, ClassVar, Literal

import torch
from torch import Tensor, nn

from pamiqx.api import ActionSpec, Curiosity, ObservationSpec, Transitions, one_hot_actions
from pamiqx_fd_curiosity.networks import flatten_latents, latent_width


class ForwardDynamicsCuriosity(Curiosity, abc.ABC):
    """Online curiosity built on forward dynamics: the plumbing every family member shares.

    Threads: :meth:`agent_step` runs in the inference thread and only touches
    the inference copy ``agent_model`` and the agent-side state;
    :meth:`update` runs in the training thread and trains ``model``, then
    copies its weights into ``agent_model``. ``lock`` guards the inference
    copy and the agent-side state.

    Training starts each batch from the recurrent state the previous batch
    ended in (the batches of a run are consecutive per world; a batch with a
    different number of worlds starts from zeros).

    Attributes:
        observation_spec: The latents the representation stage hands over.
        latent_dim: Width of the flat latent ``o_t`` (``N * D`` for tokens).
        model: The trained forward-dynamics model(s).
        agent_model: The agent's inference copy of ``model``.
        optimizer: Adam over ``model``.
        lock: Guards ``agent_model`` and the agent-side state.
    """

    style: ClassVar[Literal["batch", "online"]] = "online"

    def __init__(
        self,
        observation_spec: ObservationSpec,
        model: nn.Module,
        action_spec: ActionSpec,
        device: str,
        lr: float,
        grad_clip: float,
        epochs: int,
    ) -> None:
        """Move the models to ``device`` and create the optimizer and the inference copy.

        Args:
            observation_spec: The latents the representation stage hands over.
            model: The FD model (or a module holding several).
            action_spec: The action space (for the one-hot encoding).
            device: Where everything lives.
            lr: Adam learning rate.
            grad_clip: Maximum gradient norm (0: no clipping).
            epochs: Gradient steps per :meth:`update`.
        """
        self.device = torch.device(device)
        self.observation_spec = observation_spec
        self.latent_dim = latent_width(observation_spec)
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
        """Return the trained FD and its inference copy."""
        return {"fd": self.model, "fd_agent": self.agent_model}

    def latents(self, observations: Tensor) -> Tensor:
        """Return float32 ``(..., latent_dim)`` latents ``o_t`` of ``(..., *obs_shape)`` ones."""
        return flatten_latents(observations.to(self.device), self.observation_spec)

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
            observation: ``(E, *obs_shape)`` the latent ``o_t``.
            action: ``(E, ...)`` ``a_{t-1}``, None on the first step.
            episode_start: ``(E,)`` ``o_t`` starts an episode (reward 0 there,
                and the FD's state and pending predictions are reset).

        Returns:
            ``(E,)`` reward of the transition into ``o_t``, or None on the first step.
        """
        with torch.no_grad():
            latent = self.latents(observation)
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
            latents = self.latents(batch.observations)
            next_latents = self.latents(batch.next_observations)
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
        train_hidden = self.train_hidden
        return {
            "fd": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "train_hidden": None if train_hidden is None else train_hidden.detach().clone(),
            "agent": agent,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state_dict`; the inference copy gets the restored weights."""
        self.model.load_state_dict(state["fd"])
        self.optimizer.load_state_dict(state["optimizer"])
        hidden = state["train_hidden"]
        # clone() also turns inference-mode tensors into ordinary ones.
        self.train_hidden = None if hidden is None else hidden.to(self.device).clone()
        self._sync_agent_model()
        with self.lock:
            self._load_agent_state(state["agent"])
