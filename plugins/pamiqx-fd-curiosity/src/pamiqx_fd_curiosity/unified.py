"""``unified``, ``ttt`` and ``ttt-e2e``: one recurrent network predicts, acts and evaluates.

``net(o_t, a_{t-1}, z_{t-1}, h) -> (ô_{t+1}, π(a_t, z_t), V, h')``, where ``z`` is a
continuous internal action the network emits besides the world's action and feeds
back to itself (:mod:`pamiqx_fd_curiosity.unified_network`). The host trains the
whole network with one optimizer: PPO's loss plus the prediction loss
``mean((ô_t - o_{t+d})^2)`` this network returns as its aux loss (targets
detached; ``d = 1`` for ``unified``). Training replays ``a_{t-1}``, as acting
feeds it (the reference's unified trainer fed ``a_t``: a mismatch not copied).

* ``unified``: a GRU core (small default) or the reference's ``qgru``/``qlstm``
  stack (:mod:`pamiqx_fd_curiosity.unified_cores`); reward = the error of the
  previous step's prediction of the observation that arrived: the mean squared
  error over the latent, or the reference's average over the latent's tokens
  (``reward_average = "token-exponential"``: per-token errors weighted
  ``w^i``, ``w = exp(-1/N)`` over the ``N`` tokens, not over imagination steps).
* ``ttt`` ("deep surprise"): the core is a test-time-training layer: the small
  stand-in ``fast-weights`` (one ``d x d`` matrix) or the reference's TTT stack
  (``ttt``); its inner losses before each update are the surprisal vector
  ``s_t``. A random coefficient vector ``c`` (standardised, fixed at build)
  splits its dimensions into excitatory ``relu(c)`` and inhibitory ``-relu(-c)``
  ones. Fatigue: ``m_t = mean(s_t)``, ``M_t`` a long EMA of ``m_t`` (decay
  0.9999), ``f_t = 0.99 f_{t-1} + 0.01 m_t / M_t`` (from 0); reward
  ``r_t = mean((relu(c) - relu(-c) * f_t) * s_t)``; the network gets
  ``f_{t-1} - 0.5`` as an input. Fatigue and ``M`` carry over episode starts.
* ``ttt-e2e``: ``ttt`` with its image encoder (conv, or the reference's patch
  transformer: :mod:`pamiqx_fd_curiosity.patch_encoder`) trained end to end
  through the same network and losses; it takes the world's images (the
  ``pixels`` representation), while ``unified`` and ``ttt`` take the latents of
  the run's representation stage (``random`` features, or the reference's I-JEPA
  tokens ``jepa``), flattened, and predict the whole latent.

Everything runs in float32 (autocast is switched off inside the network), as the
reference runs ttt-e2e. Deviation: the reference's unified agent could average
over K imagination steps (K = 3 in its experiment file, but its agent scores
only the latest prediction); here K = 1.
"""

from __future__ import annotations

from typing import Any

from torch import Tensor, nn

from pamiqx.api import (
    ActionSpec,
    ConvEncoder,
    CoreSizes,
    ObservationSpec,
    PluginError,
)
from pamiqx_fd_curiosity.networks import FlatLatent, latent_width
from pamiqx_fd_curiosity.owned import OwnedPolicyCuriosity
from pamiqx_fd_curiosity.ttt_core import TTTCore
from pamiqx_fd_curiosity.unified_cores import FastWeightsCore, GRUCore, StackCore, UnifiedCore
from pamiqx_fd_curiosity.unified_network import NetworkConfig, UnifiedNetwork

__all__ = [
    "TTTCore",
    "TTTCuriosity",
    "TTTE2ECuriosity",
    "UnifiedCuriosity",
    "UnifiedNetwork",
]


class _LatentEncoder(nn.Module):
    """A trainable image encoder projected to a layer-normed latent (``ttt-e2e``)."""

    def __init__(self, trunk: nn.Module, feature_dim: int, latent: int) -> None:
        super().__init__()
        self.trunk = trunk
        self.project = nn.Linear(feature_dim, latent)
        # No affine: a prediction loss cannot shrink the latent's scale to zero.
        self.norm = nn.LayerNorm(latent, elementwise_affine=False)

    def forward(self, obs: Tensor) -> Tensor:
        features: Tensor = self.trunk(obs)
        latent: Tensor = self.norm(self.project(features))
        return latent


def _unified_core(options: Any, input_dim: int) -> UnifiedCore:
    if options.core == "gru":
        return GRUCore(input_dim, options.hidden_dim)
    sizes = CoreSizes(
        depth=options.core_depth, width=options.hidden_dim, ff_ratio=options.core_ff_ratio
    )
    return StackCore(options.core, input_dim, sizes)


def _ttt_core(options: Any, input_dim: int) -> UnifiedCore:
    if options.core == "fast-weights":
        return FastWeightsCore(input_dim, options.ttt_dim, options.hidden_dim, options.inner_lr)
    sizes = CoreSizes(
        depth=options.ttt_depth,
        width=options.hidden_dim,
        ff_ratio=options.core_ff_ratio,
        heads=options.ttt_heads,
        inner_ratio=options.ttt_inner_ratio,
        chunk=options.ttt_chunk,
        base_lr=(options.ttt_base_lr_min, options.ttt_base_lr_max),
    )
    return StackCore("ttt", input_dim, sizes)


def _config(options: Any, latent_dim: int, num_tokens: int, ttt: bool) -> NetworkConfig:
    return NetworkConfig(
        latent_dim=latent_dim,
        num_tokens=num_tokens,
        internal_dim=options.internal_dim,
        prediction_coef=options.prediction_coef,
        prediction_delay=options.prediction_delay if ttt else 1,
        reward_average=options.reward_average,
        internal_entropy=options.internal_entropy,
        internal_entropy_coef=options.internal_entropy_coef,
        fatigue=(options.fatigue_decay, options.long_decay) if ttt else None,
    )


class UnifiedCuriosity(OwnedPolicyCuriosity):
    """``unified``: a GRU or reference-stack network; reward = the error of its last prediction."""

    ttt = False

    def __init__(
        self, options: Any, observation_spec: ObservationSpec, action_spec: ActionSpec, device: str
    ) -> None:
        """Build the network on ``device`` for the stage's latents (vectors or tokens)."""
        tokens = observation_spec.shape[0] if observation_spec.kind == "tokens" else 1
        config = _config(options, latent_width(observation_spec), tokens, self.ttt)
        make_core = _ttt_core if self.ttt else _unified_core
        network = UnifiedNetwork(
            FlatLatent(), lambda width: make_core(options, width), action_spec, config
        )
        super().__init__(network, device)
        self.unified: UnifiedNetwork = network


class TTTCuriosity(UnifiedCuriosity):
    """``ttt``: a test-time-training core; reward from its surprisal, with fatigue."""

    ttt = True


class TTTE2ECuriosity(OwnedPolicyCuriosity):
    """``ttt-e2e``: ``ttt`` with an image encoder trained end to end through the network."""

    def __init__(
        self, options: Any, observation_spec: ObservationSpec, action_spec: ActionSpec, device: str
    ) -> None:
        """Build the trainable encoder and the network on ``device``."""
        if observation_spec.kind != "image":
            raise PluginError(
                f"ttt-e2e trains its own image encoder but is handed {observation_spec.kind} of "
                f'shape {observation_spec.shape}: set [representation] plugin = "pixels".'
            )
        shape = tuple(observation_spec.shape)
        trunk: nn.Module
        if options.encoder == "conv":
            trunk = ConvEncoder(shape, options.encoder_feature_dim)  # type: ignore[arg-type]
            features = options.encoder_feature_dim
        else:
            from pamiqx_fd_curiosity.patch_encoder import PatchTransformer

            trunk = PatchTransformer.from_options(options, shape)
            features = options.encoder_width
        encoder = _LatentEncoder(trunk, features, options.latent_dim)
        config = _config(options, options.latent_dim, 1, ttt=True)
        network = UnifiedNetwork(
            encoder, lambda width: _ttt_core(options, width), action_spec, config
        )
        super().__init__(network, device)
        self.unified: UnifiedNetwork = network
