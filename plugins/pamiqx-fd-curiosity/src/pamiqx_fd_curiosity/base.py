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
import math
import threading
from typing import TYPE_CHECKING, Any, ClassVar, Literal

import torch
from torch import Tensor, nn

from pamiqx.api import ActionSpec, Curiosity, ObservationSpec, Transitions, one_hot_actions
from pamiqx_fd_curiosity.networks import flatten_latents, latent_width
from pamiqx_fd_curiosity.replay import StepMemory

if TYPE_CHECKING:
    from pamiqx_fd_curiosity.fd_options import FDOptions


def make_optimizer(parameters: Any, options: FDOptions) -> torch.optim.Optimizer:
    """Build the forward models' optimizer the options name.

    ``sgd-nesterov`` is the reference's (``trainers/stacked_hiddens.yaml``:
    SGD, momentum 0.9, Nesterov).
    """
    if options.optimizer == "sgd-nesterov":
        return torch.optim.SGD(
            parameters,
            lr=options.lr,
            momentum=0.9,
            nesterov=True,
            weight_decay=options.weight_decay,
        )
    if options.optimizer == "adamw":
        return torch.optim.AdamW(parameters, lr=options.lr, weight_decay=options.weight_decay)
    return torch.optim.Adam(parameters, lr=options.lr, weight_decay=options.weight_decay)


class ForwardDynamicsCuriosity(Curiosity, abc.ABC):
    """Online curiosity built on forward dynamics: the plumbing every family member shares.

    Threads: :meth:`agent_step` runs in the inference thread and only touches
    the inference copy ``agent_model`` and the agent-side state;
    :meth:`update` runs in the training thread and trains ``model``, then
    copies its weights into ``agent_model``. ``lock`` guards the inference
    copy and the agent-side state.

    Two training regimes (``options.regime``). ``rollouts``: each batch the host
    hands over is trained on, starting from the recurrent state the previous
    batch ended in (the batches of a run are consecutive per world; a batch with
    a different number of worlds starts from zeros). ``replay-windows`` (the
    reference's): the agent side stores every step it scores in ``memory``
    (:meth:`_remember`, with the state before the step), and :meth:`update`
    trains on random windows drawn from it (:meth:`_window_loss`).

    Attributes:
        observation_spec: The latents the representation stage hands over.
        latent_dim: Width of the flat latent ``o_t`` (``N * D`` for tokens).
        model: The trained forward-dynamics model(s).
        agent_model: The agent's inference copy of ``model``.
        optimizer: The optimizer over ``model``.
        lock: Guards ``agent_model`` and the agent-side state (``memory`` included).
        memory: The stored steps under ``replay-windows``, else None.
    """

    style: ClassVar[Literal["batch", "online"]] = "online"

    def __init__(
        self,
        observation_spec: ObservationSpec,
        model: nn.Module,
        action_spec: ActionSpec,
        device: str,
        options: FDOptions,
    ) -> None:
        """Move the models to ``device`` and create the optimizer and the inference copy.

        Args:
            observation_spec: The latents the representation stage hands over.
            model: The FD model (or a module holding several).
            action_spec: The action space (for the one-hot encoding).
            device: Where everything lives.
            options: The optimizer, gradient clip, epochs and training regime.
        """
        self.device = torch.device(device)
        self.observation_spec = observation_spec
        self.latent_dim = latent_width(observation_spec)
        self.model = model.to(self.device)
        self.agent_model = copy.deepcopy(self.model).requires_grad_(False)
        self.optimizer = make_optimizer(self.model.parameters(), options)
        self.action_spec = action_spec
        self.options = options
        self.grad_clip = options.grad_clip
        self.epochs = options.epochs
        self.lock = threading.Lock()
        self.memory = (
            StepMemory(options.replay_size) if options.regime == "replay-windows" else None
        )
        # Steps of ``memory.added`` already paid for by training calls.
        self._trained_through = 0
        # Window draws from the host-seeded global RNG, so a seeded run repeats.
        self._generator = torch.Generator().manual_seed(int(torch.randint(0, 2**62, ())))
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

    def _window_loss(self, window: dict[str, Tensor]) -> tuple[Tensor, dict[str, float]]:
        """Return the loss and metrics of ``(S, W, ...)`` windows drawn from ``memory``.

        Mechanisms that support ``replay-windows`` override it (and call
        :meth:`_remember` on the agent side).

        Raises:
            NotImplementedError: For a mechanism without the regime.
        """
        raise NotImplementedError(f"{type(self).__name__} has no replay-windows regime")

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
        """Train the FD (on the batch, or on replayed windows), then refresh the inference copy.

        Returns:
            ``loss``, mechanism-specific training metrics, and ``agent/...`` means
            of what the agent side scored since the previous update.
        """
        train = self._train_on_batch if self.memory is None else self._train_on_windows
        metrics = train(batch)
        self._sync_agent_model()
        with self.lock:
            stats, self._agent_stats = self._agent_stats, {}
        for name, (total, count) in stats.items():
            if float(count) > 0:
                metrics[f"agent/{name}"] = float(total) / float(count)
        return metrics

    def _train_on_batch(self, batch: Transitions) -> dict[str, float]:
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
            self._descend(loss, metrics)
        self.train_hidden = last.detach()
        return metrics

    def _train_on_windows(self, batch: Transitions) -> dict[str, float]:
        """One training call per ``train_every`` new steps, on windows drawn from ``memory``.

        The batch is not read: the agent side stored its steps as it scored them.
        Windows are gathered under the lock (a copy), trained outside it.
        """
        assert self.memory is not None
        options = self.options
        span = options.window_length + options.extra_window_steps
        sums: dict[str, float] = {}
        steps = 0
        while True:
            with self.lock:
                memory = self.memory
                if memory.added - self._trained_through < options.train_every:
                    break
                self._trained_through += options.train_every
                if memory.size < span:
                    continue  # the reference waits for a full window too
                # As the reference's sampler: never more windows than start positions.
                count = min(options.windows, memory.num_envs * (memory.size - span + 1))
                windows = memory.sample_windows(count, span, self._generator)
            for first in range(0, count, options.windows_per_step):
                part = {
                    k: v[:, first : first + options.windows_per_step] for k, v in windows.items()
                }
                loss, metrics = self._window_loss(part)
                self._descend(loss, metrics)
                for name, value in metrics.items():
                    if not math.isnan(value):
                        sums[name] = sums.get(name, 0.0) + value
                steps += 1
        metrics = {name: total / steps for name, total in sums.items()}
        metrics["replay_steps"] = float(self.memory.size)
        if steps:
            metrics["gradient_steps"] = float(steps)
        return metrics

    def _descend(self, loss: Tensor, metrics: dict[str, float]) -> None:
        """One optimizer step on ``loss`` (the gradient norm goes into ``metrics``)."""
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()  # type: ignore[no-untyped-call]
        if self.grad_clip > 0:
            norm = nn.utils.clip_grad_norm_(self.model.parameters(), self.grad_clip)
            metrics["grad_norm"] = float(norm)
        self.optimizer.step()

    def _remember(self, step: dict[str, Tensor]) -> None:
        """Store one agent step under ``replay-windows`` (called under the lock)."""
        if self.memory is not None:
            self.memory.add(step)

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
            memory = None if self.memory is None else self.memory.state_dict()
        train_hidden = self.train_hidden
        return {
            "fd": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "train_hidden": None if train_hidden is None else train_hidden.detach().clone(),
            "agent": agent,
            "memory": memory,
            "trained_through": self._trained_through,
            "generator": self._generator.get_state(),
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
            memory = state.get("memory")
            if self.memory is not None and memory is not None:
                self.memory.load_state_dict(memory, self.device)
                self._trained_through = int(state["trained_through"])
                self._generator.set_state(state["generator"])
