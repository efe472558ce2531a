"""The network of ``unified``, ``ttt`` and ``ttt-e2e``: it predicts, acts and evaluates.

``net(o_t, a_{t-1}, z_{t-1}, h) -> (ô_{t+1}, π(a_t, z_t), V, h')`` over a
:class:`~pamiqx_fd_curiosity.unified_cores.UnifiedCore`. The flat state holds
the last prediction, ``a_{t-1}`` (one-hot), ``z_{t-1}``, whether a prediction
exists, the core's state and, for ``ttt``, the fatigue and its long average.
Episode starts clear all of it but the fatigue and its long average, which
carry over (as in the reference, whose ttt agent never resets them); only a
fresh run (:meth:`UnifiedNetwork.initial_state`) starts them at 0.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, Literal

import attrs
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.distributions import Normal

from pamiqx.api import (
    ActionDistribution,
    ActionSpec,
    DiscreteHead,
    MultiDiscreteHead,
    PolicyNetwork,
    PolicyStep,
    ValueHeads,
    one_hot_actions,
    one_hot_width,
)
from pamiqx_fd_curiosity.owned import INTERNAL_LOG_STD_RANGE, StateLayout
from pamiqx_fd_curiosity.ttt_core import fatigue_step
from pamiqx_fd_curiosity.unified_cores import UnifiedCore

# Parts an episode start clears; the core clears its own, the fatigue carries over.
_EPISODIC = ("pred", "action", "internal", "valid")


@attrs.frozen
class NetworkConfig:
    """What the network computes besides its sizes.

    Attributes:
        latent_dim: Width of the flat latent ``o_t``.
        num_tokens: Tokens of the latent (1 for a vector).
        internal_dim: Width of the internal action ``z`` (0: none).
        prediction_coef: Weight of the prediction loss.
        prediction_delay: ``d``: the prediction made at ``t`` is trained on ``o_{t+d}``.
        reward_average: ``mean`` over the whole latent, or ``token-exponential``.
        internal_entropy: ``bonus``, ``penalty`` or ``none`` (see ``UnifiedOptions``).
        internal_entropy_coef: Weight of the ``penalty``.
        fatigue: ``(fatigue_decay, long_decay)`` for ``ttt``'s reward; None for ``unified``.
    """

    latent_dim: int
    num_tokens: int = 1
    internal_dim: int = 0
    prediction_coef: float = 1.0
    prediction_delay: int = 1
    reward_average: Literal["mean", "token-exponential"] = "mean"
    internal_entropy: Literal["bonus", "penalty", "none"] = "bonus"
    internal_entropy_coef: float = 0.0
    fatigue: tuple[float, float] | None = None


class _ConstantEntropyNormal(Normal):
    """A Gaussian whose entropy reaches the host's loss without a gradient.

    The host's PPO subtracts ``entropy_coef`` times the entropy of the world's and
    the internal action; returned detached, the internal part leaves the weights
    alone and the network's own term (``penalty``) alone shapes ``z``'s spread.
    """

    def entropy(self) -> Tensor:
        """The entropy, detached."""
        return gaussian_entropy(self.scale).detach()


def gaussian_entropy(scale: Tensor) -> Tensor:
    """Entropy of a Gaussian per dimension: ``0.5 log(2 pi e) + log(scale)``."""
    return 0.5 + 0.5 * math.log(2 * math.pi) + torch.log(scale)


def token_weights(num_tokens: int) -> Tensor:
    """Return the reference's exponential weights over tokens, normalised to sum 1.

    ``w^i / sum_j w^j`` for token ``i`` with ``w = exp(-1 / N)``
    (``average_exponentially`` in the reference's src/exp/utils.py).
    """
    decay = math.exp(-1.0 / num_tokens)
    weights = decay ** torch.arange(num_tokens, dtype=torch.float64)
    return (weights / weights.sum()).float()


class UnifiedNetwork(PolicyNetwork):
    """The acting, predicting and evaluating network of ``unified``, ``ttt`` and ``ttt-e2e``."""

    token_weight: Tensor

    def __init__(
        self,
        encoder: nn.Module,
        make_core: Callable[[int], UnifiedCore],
        action_spec: ActionSpec,
        config: NetworkConfig,
    ) -> None:
        """Build the network.

        Args:
            encoder: Observations ``(B, ...)`` to latents ``(B, latent_dim)``.
            make_core: The core for a given input width.
            action_spec: The world's action space.
            config: What the network computes.
        """
        super().__init__()
        self.encoder = encoder
        self.config = config
        self.latent_dim = config.latent_dim
        self.nvec = action_spec.nvec
        self.discrete = action_spec.kind == "discrete"
        self.internal_action_dim = config.internal_dim
        self.prediction_coef = config.prediction_coef
        self.uses_fatigue = config.fatigue is not None
        action_width = one_hot_width(action_spec.nvec)
        fatigue_input = 1 if self.uses_fatigue else 0  # f_{t-1} - 0.5
        input_dim = config.latent_dim + action_width + config.internal_dim + fatigue_input
        self.core = make_core(input_dim)
        widths = {
            "pred": config.latent_dim,
            "action": action_width,
            "internal": config.internal_dim,
            "valid": 1,
            "core": self.core.state_dim,
        }
        if config.fatigue is not None:
            widths.update({"fatigue": 1, "long_mean": 1})
            self.fatigue_decay, self.long_decay = config.fatigue
            coefficients = torch.randn(self.core.surprisal_dim)
            coefficients = (coefficients - coefficients.mean()) / coefficients.std()
            self.coefficients: Tensor
            self.register_buffer("coefficients", coefficients)
        self.layout = StateLayout(widths)
        self.register_buffer("token_weight", token_weights(config.num_tokens), persistent=False)
        width = self.core.width
        self.actor: nn.Module = (
            DiscreteHead(width, self.nvec[0])
            if self.discrete
            else MultiDiscreteHead(width, self.nvec)
        )
        self.internal_mean = nn.Linear(width, max(config.internal_dim, 1))
        self.internal_log_std = nn.Parameter(torch.zeros(max(config.internal_dim, 1)))
        self.values = ValueHeads(width)
        self.predictor = nn.Linear(width, config.latent_dim)

    @property
    def is_recurrent(self) -> bool:
        """Always recurrent."""
        return True

    @property
    def hidden_dim(self) -> int:
        """Width of the flat state."""
        return self.layout.width

    # --- rewards -------------------------------------------------------------------------

    def prediction_error(self, prediction: Tensor, latent: Tensor) -> Tensor:
        """``unified``'s reward: the error of ``prediction`` against ``latent``, ``(...)``.

        ``mean``: the mean squared error over the whole latent. ``token-exponential``
        (the reference): each token's mean squared error, averaged over the ``N``
        tokens with weights ``w^i``, ``w = exp(-1/N)``.
        """
        error = (prediction - latent.detach()).pow(2)
        if self.config.reward_average == "mean" or self.config.num_tokens == 1:
            return error.mean(dim=-1)
        per_token = error.reshape(*error.shape[:-1], self.config.num_tokens, -1).mean(dim=-1)
        return (per_token * self.token_weight.to(error.dtype)).sum(dim=-1)

    def excitatory_reward(self, surprisal: Tensor) -> Tensor:
        """The maximising part of ``ttt``'s reward: ``mean(relu(c) * s)``."""
        return (F.relu(self.coefficients) * surprisal).mean(dim=-1)

    def fatigued_reward(self, surprisal: Tensor, fatigue: Tensor) -> Tensor:
        """``ttt``'s reward ``mean((relu(c) - relu(-c) * f_t) * s_t)``."""
        gain = F.relu(self.coefficients) - F.relu(-self.coefficients) * fatigue
        return (gain * surprisal).mean(dim=-1)

    # --- steps ---------------------------------------------------------------------------

    def _dtype(self) -> torch.dtype:
        return self.predictor.weight.dtype

    def _encode(self, obs: Tensor) -> Tensor:
        latent: Tensor = self.encoder(obs)
        return latent.to(self._dtype())

    def _begin(self, state: Tensor, reset: Tensor | None) -> dict[str, Tensor]:
        """Split a state and clear its episodic parts where an episode starts."""
        parts = dict(self.layout.split(state.to(self._dtype())))
        if reset is not None:
            keep = 1.0 - reset.to(self._dtype()).unsqueeze(-1)
            for name in _EPISODIC:
                parts[name] = parts[name] * keep
        return parts

    def _inputs(self, latent: Tensor, parts: dict[str, Tensor]) -> Tensor:
        inputs = [latent, parts["action"], parts["internal"]]
        if self.uses_fatigue:
            inputs.append(parts["fatigue"] - 0.5)
        return torch.cat(inputs, dim=-1)

    def _step(
        self, latent: Tensor, parts: dict[str, Tensor], reset: Tensor | None
    ) -> tuple[Tensor, dict[str, Tensor], Tensor]:
        """One step from begun parts whose action slots hold ``a_{t-1}``, ``z_{t-1}``.

        Returns:
            ``(features, new state parts, intrinsic reward of the transition into o_t)``.
        """
        valid = parts["valid"].squeeze(-1)
        features, core_state, surprisal = self.core.step(
            self._inputs(latent, parts), parts["core"], reset
        )
        new = {"core": core_state}
        if self.uses_fatigue:
            assert surprisal is not None
            surprisal = surprisal.detach()
            new["fatigue"], new["long_mean"] = fatigue_step(
                surprisal, parts["fatigue"], parts["long_mean"], self.fatigue_decay, self.long_decay
            )
            reward = self.fatigued_reward(surprisal, new["fatigue"]) * valid
        else:
            reward = self.prediction_error(parts["pred"], latent) * valid
        new["pred"] = self.predictor(features)
        new["action"] = torch.zeros_like(parts["action"])
        new["internal"] = torch.zeros_like(parts["internal"])
        new["valid"] = torch.ones_like(parts["valid"])
        return features, new, reward.detach()

    def _heads(self, features: Tensor) -> tuple[ActionDistribution, dict[str, Tensor], Any]:
        dist: ActionDistribution = self.actor(features)
        values: dict[str, Tensor] = self.values(features)
        internal = None
        if self.internal_action_dim:
            log_std = self.internal_log_std.clamp(*INTERNAL_LOG_STD_RANGE).expand(
                features.shape[0], -1
            )
            mean = self.internal_mean(features)
            gaussian = Normal if self.config.internal_entropy == "bonus" else _ConstantEntropyNormal
            internal = gaussian(mean, log_std.exp())
        return dist, values, internal

    def forward(self, obs: Tensor, hidden: Tensor, reset: Tensor | None = None) -> PolicyStep:
        """Act on ``(B, ...)`` observations; the reward scores the last prediction."""
        with torch.autocast(obs.device.type, enabled=False):
            parts = self._begin(hidden, reset)
            features, new, reward = self._step(self._encode(obs), parts, reset)
            dist, values, internal = self._heads(features)
            return PolicyStep(dist, values, self.layout.join(new), internal, intrinsic=reward)

    def fold_action(self, hidden: Tensor, actions: Tensor, internal: Tensor | None) -> Tensor:
        """Store ``a_t`` (one-hot) and ``z_t`` in the state for the next step."""
        parts = dict(self.layout.split(hidden))
        parts["action"] = one_hot_actions(actions, self.nvec, self.discrete).to(hidden.dtype)
        if internal is not None and self.internal_action_dim:
            parts["internal"] = internal.to(hidden.dtype)
        return self.layout.join(parts)

    # --- windows -------------------------------------------------------------------------

    def forward_sequence(
        self,
        obs: Tensor,
        hidden0: Tensor,
        resets: Tensor | None,
        actions: Tensor,
        internal: Tensor | None,
    ) -> PolicyStep:
        """Replay a window; the aux loss is the error of predictions made inside it.

        Without fatigue inputs the core's input at ``t``, ``[o_t, a_{t-1}, z_{t-1}]``,
        is known from the data, so the whole window goes through the core in one
        call (the reference stacks' parallel scan); ``ttt`` feeds back ``f_{t-1}``,
        which depends on the core's surprisal at ``t - 1``, so it steps.
        """
        steps, batch = obs.shape[0], obs.shape[1]
        with torch.autocast(obs.device.type, enabled=False):
            latents = self._encode(obs.reshape(steps * batch, *obs.shape[2:]))
            latents = latents.reshape(steps, batch, -1)
            run = self._window if not self.uses_fatigue else self._stepped
            features, predictions, rewards, state = run(latents, hidden0, resets, actions, internal)
            dist, values, internal_dist = self._heads(features.flatten(0, 1))
            metrics = {"unified/reward": float(rewards.mean())}
            keep = torch.ones(steps, batch, dtype=latents.dtype, device=latents.device)
            if resets is not None:
                keep = 1.0 - resets.to(latents.dtype)
            aux = self._prediction_loss(predictions, latents, keep, metrics)
            if internal_dist is not None and self.config.internal_entropy == "penalty":
                entropy = gaussian_entropy(internal_dist.scale).sum(dim=-1)
                aux = aux + self.config.internal_entropy_coef * entropy.mean()
                metrics["unified/internal_entropy"] = float(entropy.mean().detach())
            return PolicyStep(dist, values, state, internal_dist, aux_loss=aux, metrics=metrics)

    def _prediction_loss(
        self, predictions: Tensor, latents: Tensor, keep: Tensor, metrics: dict[str, float]
    ) -> Tensor:
        """``coef * mean((ô_t - o_{t+d})^2)`` over pairs inside the window and one episode."""
        delay, steps = self.config.prediction_delay, latents.shape[0]
        if steps <= delay:
            return self.predictor.weight.sum() * 0.0
        error = (predictions[: steps - delay] - latents[delay:].detach()).pow(2).mean(dim=-1)
        # A pair counts only if no episode starts in (t, t + d].
        mask = keep[1:].unfold(0, delay, 1).prod(dim=-1)
        loss = (error * mask).sum() / mask.sum().clamp_min(1.0)
        metrics["unified/prediction_error"] = float(loss.detach())
        return self.prediction_coef * loss

    def _window(
        self,
        latents: Tensor,
        hidden0: Tensor,
        resets: Tensor | None,
        actions: Tensor,
        internal: Tensor | None,
    ) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """The whole window through the core at once, then the heads batched."""
        steps, batch = latents.shape[:2]
        keep = torch.ones(steps, batch, 1, dtype=latents.dtype, device=latents.device)
        if resets is not None:
            keep = 1.0 - resets.to(latents.dtype).unsqueeze(-1)
        first = self.layout.split(hidden0.to(latents.dtype))
        taken = one_hot_actions(actions.flatten(0, 1), self.nvec, self.discrete)
        taken = taken.to(latents.dtype).reshape(steps, batch, -1)
        previous_action = torch.cat([first["action"].unsqueeze(0), taken[:-1]]) * keep
        previous_internal = first["internal"].unsqueeze(0).expand(steps, -1, -1)
        last_internal = first["internal"]
        if internal is not None and self.internal_action_dim:
            internal = internal.to(latents.dtype)
            previous_internal = torch.cat([first["internal"].unsqueeze(0), internal[:-1]])
            last_internal = internal[-1]
        previous_internal = previous_internal * keep
        x = torch.cat([latents, previous_action, previous_internal], dim=-1)
        features, core_state, _ = self.core.window(x, first["core"], resets)
        predictions = self.predictor(features)
        previous_prediction = torch.cat([first["pred"].unsqueeze(0), predictions[:-1]])
        valid = torch.cat([first["valid"].unsqueeze(0), torch.ones_like(keep[1:])]) * keep
        rewards = self.prediction_error(previous_prediction, latents) * valid.squeeze(-1)
        state = self.layout.join(
            {
                "pred": predictions[-1],
                "action": taken[-1],
                "internal": last_internal,
                "valid": torch.ones_like(first["valid"]),
                "core": core_state,
            }
        )
        return features, predictions, rewards.detach(), state

    def _stepped(
        self,
        latents: Tensor,
        hidden0: Tensor,
        resets: Tensor | None,
        actions: Tensor,
        internal: Tensor | None,
    ) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """The window step by step, exactly as acting computes it."""
        state = hidden0.to(latents.dtype)
        features, predictions, rewards = [], [], []
        for t in range(latents.shape[0]):
            reset = None if resets is None else resets[t]
            feats, new, reward = self._step(latents[t], self._begin(state, reset), reset)
            features.append(feats)
            predictions.append(new["pred"])
            rewards.append(reward)
            state = self.fold_action(
                self.layout.join(new), actions[t], None if internal is None else internal[t]
            )
        return torch.stack(features), torch.stack(predictions), torch.stack(rewards), state
