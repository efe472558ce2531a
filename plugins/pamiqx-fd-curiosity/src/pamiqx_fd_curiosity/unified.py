"""``unified``, ``ttt`` and ``ttt-e2e``: one recurrent network predicts, acts and evaluates.

``net(o_t, a_{t-1}, z_{t-1}, h) -> (ô_{t+1}, π(a_t, z_t), V, h')``, where ``z`` is a
continuous internal action the network emits besides the world's action and feeds
back to itself. The host trains the whole network with one optimizer: PPO's loss
plus the prediction loss ``mean((ô_{t+1} - o_{t+1})^2)`` this network returns as
its aux loss (targets detached).

* ``unified``: a GRU core; reward = ``mean((ô_t - o_t)^2)``, the error of the
  previous step's prediction of the observation that arrived.
* ``ttt`` ("deep surprise"): the core is a test-time-training layer. Its state
  is a fast-weight matrix ``W`` that takes one gradient step per step on the
  self-supervised loss ``0.5 ||W k_t - v_t||^2`` (keys, values and queries are
  learned projections of the input, keys unit-normed); the per-dimension inner
  loss before the step is the surprisal vector ``s_t``. A random coefficient
  vector ``c`` (standardised, fixed at build) splits its dimensions into
  excitatory ``relu(c)`` and inhibitory ``-relu(-c)`` ones. Fatigue:
  ``m_t = mean(s_t)``, ``M_t`` a long EMA of ``m_t`` (decay 0.9999),
  ``f_t = 0.99 f_{t-1} + 0.01 m_t / M_t`` (from 0); reward
  ``r_t = mean((relu(c) - relu(-c) * f_t) * s_t)``; the network gets
  ``f_{t-1} - 0.5`` as an input.
* ``ttt-e2e``: ``ttt`` with a conv image encoder trained end to end through the
  same network and losses; it takes the world's images (the ``pixels``
  representation), while ``unified`` and ``ttt`` take the latents of the run's
  representation stage (``random`` features, or the reference's I-JEPA tokens
  ``jepa``), flattened, and predict the whole latent.

Everything runs in float32 (autocast is switched off inside the network), as the
reference runs ttt-e2e. Deviation: the reference averages the reward over K
imagination steps; here K = 1, because imagining K steps ahead would need K
copies of the whole network's state in the policy's recurrent state.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.distributions import Normal

from pamiqx.api import (
    ActionDistribution,
    ActionSpec,
    ConvEncoder,
    DiscreteHead,
    MultiDiscreteHead,
    ObservationSpec,
    PluginError,
    PolicyNetwork,
    PolicyStep,
    ValueHeads,
    one_hot_actions,
    one_hot_width,
)
from pamiqx_fd_curiosity.networks import FlatLatent, latent_width
from pamiqx_fd_curiosity.owned import (
    INTERNAL_LOG_STD_RANGE,
    OwnedPolicyCuriosity,
    StateLayout,
)


class TTTCore(nn.Module):
    """A test-time-training layer: fast weights ``W = W_0 + ΔW`` updated by one step per input.

    The recurrent state is ``ΔW`` (zero at a start, so a fresh state is the
    learned ``W_0``).

    Attributes:
        dim: ``d``, the size of keys, values and queries.
    """

    def __init__(self, input_dim: int, dim: int, output_dim: int, inner_lr: float) -> None:
        """Create the projections, the initial fast weights and the output layer."""
        super().__init__()
        self.dim = dim
        self.inner_lr = inner_lr
        self.key = nn.Linear(input_dim, dim)
        self.value = nn.Linear(input_dim, dim)
        self.query = nn.Linear(input_dim, dim)
        self.initial_weights = nn.Parameter(torch.zeros(dim, dim))
        self.norm = nn.LayerNorm(dim)
        self.out = nn.Linear(dim + input_dim, output_dim)

    def forward(self, x: Tensor, delta: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """Score, update and read the fast weights for one step.

        Args:
            x: ``(B, input_dim)`` input.
            delta: ``(B, d * d)`` fast-weight offset before the step.

        Returns:
            ``(features (B, output_dim), new delta (B, d * d), surprisal s (B, d))``.
        """
        batch = x.shape[0]
        weights = self.initial_weights + delta.view(batch, self.dim, self.dim)
        key = F.normalize(self.key(x), dim=-1)
        error = torch.bmm(weights, key.unsqueeze(-1)).squeeze(-1) - self.value(x)
        surprisal = error.pow(2)
        # One gradient step on 0.5 ||W k - v||^2; with |k| = 1 a step size in (0, 1] is stable.
        step = self.inner_lr * error.unsqueeze(-1) * key.unsqueeze(-2)
        new_delta = delta.view(batch, self.dim, self.dim) - step
        read = torch.bmm(self.initial_weights + new_delta, self.query(x).unsqueeze(-1))
        features = F.relu(self.out(torch.cat([self.norm(read.squeeze(-1)), x], dim=-1)))
        return features, new_delta.reshape(batch, -1), surprisal


class UnifiedNetwork(PolicyNetwork):
    """The acting, predicting and evaluating network of ``unified`` and ``ttt``."""

    def __init__(
        self,
        encoder: nn.Module,
        latent_dim: int,
        action_spec: ActionSpec,
        hidden_dim: int,
        internal_dim: int,
        prediction_coef: float,
        ttt: dict[str, float] | None = None,
    ) -> None:
        """Build the network.

        Args:
            encoder: Observations ``(B, ...)`` to latents ``(B, latent_dim)``.
            latent_dim: Size of the latent observation.
            action_spec: The world's action space.
            hidden_dim: Width of the core's output (and GRU state).
            internal_dim: Width of the internal action (0: none).
            prediction_coef: Weight of the prediction loss.
            ttt: None for a GRU core; else ``dim``, ``inner_lr``, ``fatigue_decay`` and
                ``long_decay`` of a test-time-training core.
        """
        super().__init__()
        self.encoder = encoder
        self.latent_dim = latent_dim
        self.nvec = action_spec.nvec
        self.discrete = action_spec.kind == "discrete"
        self.internal_action_dim = internal_dim
        self.prediction_coef = prediction_coef
        self.uses_ttt = ttt is not None
        action_width = one_hot_width(action_spec.nvec)
        input_dim = latent_dim + action_width + internal_dim + (1 if ttt else 0)
        widths = {
            "pred": latent_dim,
            "action": action_width,
            "internal": internal_dim,
            "valid": 1,
        }
        self.core: nn.Module
        if ttt is None:
            self.core = nn.GRUCell(input_dim, hidden_dim)
            widths["core"] = hidden_dim
        else:
            dim = int(ttt["dim"])
            self.core = TTTCore(input_dim, dim, hidden_dim, float(ttt["inner_lr"]))
            widths.update({"core": dim * dim, "fatigue": 1, "long_mean": 1})
            self.fatigue_decay = float(ttt["fatigue_decay"])
            self.long_decay = float(ttt["long_decay"])
            coefficients = torch.randn(dim)
            coefficients = (coefficients - coefficients.mean()) / coefficients.std()
            self.coefficients: Tensor
            self.register_buffer("coefficients", coefficients)
        self.layout = StateLayout(widths)
        self.actor: nn.Module = (
            DiscreteHead(hidden_dim, self.nvec[0])
            if action_spec.kind == "discrete"
            else MultiDiscreteHead(hidden_dim, self.nvec)
        )
        self.internal_mean = nn.Linear(hidden_dim, max(internal_dim, 1))
        self.internal_log_std = nn.Parameter(torch.zeros(max(internal_dim, 1)))
        self.values = ValueHeads(hidden_dim)
        self.predictor = nn.Linear(hidden_dim, latent_dim)

    @property
    def is_recurrent(self) -> bool:
        """Always recurrent."""
        return True

    @property
    def hidden_dim(self) -> int:
        """Width of the flat state."""
        return self.layout.width

    def excitatory_reward(self, surprisal: Tensor) -> Tensor:
        """The maximising part of ``ttt``'s reward: ``mean(relu(c) * s)``."""
        return (F.relu(self.coefficients) * surprisal).mean(dim=-1)

    def _step(self, latent: Tensor, state: Tensor) -> tuple[Tensor, dict[str, Tensor], Tensor]:
        """One step from a state whose action slots hold ``a_{t-1}``, ``z_{t-1}``.

        Returns:
            ``(features, new state parts, intrinsic reward of the transition into o_t)``.
        """
        parts = self.layout.split(state)
        valid = parts["valid"].squeeze(-1)
        inputs = [latent, parts["action"], parts["internal"]]
        new: dict[str, Tensor] = {}
        if not self.uses_ttt:
            features = self.core(torch.cat(inputs, dim=-1), parts["core"])
            new["core"] = features
            error = (parts["pred"] - latent.detach()).pow(2).mean(dim=-1)
            reward = error * valid
        else:
            inputs.append(parts["fatigue"] - 0.5)
            features, new["core"], surprisal = self.core(torch.cat(inputs, dim=-1), parts["core"])
            surprisal = surprisal.detach()
            mean = surprisal.mean(dim=-1, keepdim=True)
            long_prev = parts["long_mean"]
            # A fresh state has no long average yet: it starts at the first m_t.
            long_mean = torch.where(
                long_prev > 0,
                self.long_decay * long_prev + (1 - self.long_decay) * mean,
                mean,
            )
            ratio = mean / long_mean.clamp_min(1e-8)
            fatigue = self.fatigue_decay * parts["fatigue"] + (1 - self.fatigue_decay) * ratio
            gain = F.relu(self.coefficients) - F.relu(-self.coefficients) * fatigue
            reward = (gain * surprisal).mean(dim=-1) * valid
            new["fatigue"], new["long_mean"] = fatigue.detach(), long_mean.detach()
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
            internal = Normal(self.internal_mean(features), log_std.exp())
        return dist, values, internal

    def _encode(self, obs: Tensor) -> Tensor:
        latent: Tensor = self.encoder(obs)
        return latent.float()

    def forward(self, obs: Tensor, hidden: Tensor, reset: Tensor | None = None) -> PolicyStep:
        """Act on ``(B, ...)`` observations; the reward scores the last prediction."""
        with torch.autocast(obs.device.type, enabled=False):
            if reset is not None:
                hidden = hidden * (~reset.bool()).to(hidden.dtype).unsqueeze(-1)
            features, new, reward = self._step(self._encode(obs), hidden.float())
            dist, values, internal = self._heads(features)
            return PolicyStep(dist, values, self.layout.join(new), internal, intrinsic=reward)

    def fold_action(self, hidden: Tensor, actions: Tensor, internal: Tensor | None) -> Tensor:
        """Store ``a_t`` (one-hot) and ``z_t`` in the state for the next step."""
        parts = dict(self.layout.split(hidden))
        parts["action"] = one_hot_actions(actions, self.nvec, self.discrete).to(hidden.dtype)
        if internal is not None and self.internal_action_dim:
            parts["internal"] = internal.to(hidden.dtype)
        return self.layout.join(parts)

    def forward_sequence(
        self,
        obs: Tensor,
        hidden0: Tensor,
        resets: Tensor | None,
        actions: Tensor,
        internal: Tensor | None,
    ) -> PolicyStep:
        """Replay a window; the aux loss is the error of predictions made inside it."""
        steps, batch = obs.shape[0], obs.shape[1]
        with torch.autocast(obs.device.type, enabled=False):
            latents = self._encode(obs.reshape(steps * batch, *obs.shape[2:]))
            latents = latents.reshape(steps, batch, -1)
            state = hidden0.float()
            features, errors, masks, rewards = [], [], [], []
            for t in range(steps):
                keep = torch.ones(batch, device=obs.device)
                if resets is not None:
                    keep = (~resets[t].bool()).float()
                    state = state * keep.unsqueeze(-1)
                if t > 0:  # the prediction of o_t was made inside the window
                    pred = self.layout.split(state)["pred"]
                    errors.append((pred - latents[t].detach()).pow(2).mean(dim=-1))
                    masks.append(keep)
                feats, new, reward = self._step(latents[t], state)
                features.append(feats)
                rewards.append(reward)
                state = self.fold_action(
                    self.layout.join(new),
                    actions[t],
                    None if internal is None else internal[t],
                )
            dist, values, internal_dist = self._heads(torch.cat(features))
            metrics = {"unified/reward": float(torch.stack(rewards).mean())}
            aux = None
            if errors:
                error, mask = torch.stack(errors), torch.stack(masks)
                prediction_loss = (error * mask).sum() / mask.sum().clamp_min(1.0)
                aux = self.prediction_coef * prediction_loss
                metrics["unified/prediction_error"] = float(prediction_loss.detach())
            else:
                aux = self.predictor.weight.sum() * 0.0
            return PolicyStep(dist, values, state, internal_dist, aux_loss=aux, metrics=metrics)


class _LatentEncoder(nn.Module):
    """A trainable conv encoder projected to a layer-normed latent (``ttt-e2e``)."""

    def __init__(self, observation_spec: ObservationSpec, feature_dim: int, latent: int) -> None:
        super().__init__()
        self.conv = ConvEncoder(tuple(observation_spec.shape), feature_dim)  # type: ignore[arg-type]
        self.project = nn.Linear(feature_dim, latent)
        # No affine: a prediction loss cannot shrink the latent's scale to zero.
        self.norm = nn.LayerNorm(latent, elementwise_affine=False)

    def forward(self, obs: Tensor) -> Tensor:
        features: Tensor = self.conv(obs)
        latent: Tensor = self.norm(self.project(features))
        return latent


def _ttt_options(options: Any) -> dict[str, float]:
    return {
        "dim": options.ttt_dim,
        "inner_lr": options.inner_lr,
        "fatigue_decay": options.fatigue_decay,
        "long_decay": options.long_decay,
    }


class UnifiedCuriosity(OwnedPolicyCuriosity):
    """``unified``: a GRU network; reward = the error of its last prediction."""

    def __init__(
        self, options: Any, observation_spec: ObservationSpec, action_spec: ActionSpec, device: str
    ) -> None:
        """Build the network on ``device`` for the stage's latents (vectors or tokens)."""
        network = UnifiedNetwork(
            FlatLatent(),
            latent_width(observation_spec),
            action_spec,
            options.hidden_dim,
            options.internal_dim,
            options.prediction_coef,
            ttt=self._ttt(options),
        )
        super().__init__(network, device)
        self.unified: UnifiedNetwork = network

    def _ttt(self, options: Any) -> dict[str, float] | None:
        return None


class TTTCuriosity(UnifiedCuriosity):
    """``ttt``: a test-time-training core; reward from its surprisal, with fatigue."""

    def _ttt(self, options: Any) -> dict[str, float] | None:
        return _ttt_options(options)


class TTTE2ECuriosity(OwnedPolicyCuriosity):
    """``ttt-e2e``: ``ttt`` with a conv encoder trained end to end through the network."""

    def __init__(
        self, options: Any, observation_spec: ObservationSpec, action_spec: ActionSpec, device: str
    ) -> None:
        """Build the trainable encoder and the network on ``device``."""
        if observation_spec.kind != "image":
            raise PluginError(
                f"ttt-e2e trains its own image encoder but is handed {observation_spec.kind} of "
                f'shape {observation_spec.shape}: set [representation] plugin = "pixels".'
            )
        encoder = _LatentEncoder(observation_spec, options.encoder_feature_dim, options.latent_dim)
        network = UnifiedNetwork(
            encoder,
            options.latent_dim,
            action_spec,
            options.hidden_dim,
            options.internal_dim,
            options.prediction_coef,
            ttt=_ttt_options(options),
        )
        super().__init__(network, device)
        self.unified: UnifiedNetwork = network
