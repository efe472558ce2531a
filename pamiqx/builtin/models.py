"""Built-in model plugins: image, vector and token encoders, and the actor-critic policy.

Option classes and plugin classes live here without importing torch; the
networks (:mod:`pamiqx.api.layers`, :mod:`pamiqx.models.actor_critic`) are imported when a
model is built.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Literal

import attrs

from pamiqx.api import ActionSpec, BuildContext, ModelPlugin, ObservationSpec
from pamiqx.api.errors import PluginError
from pamiqx.api.hooks import hookimpl

if TYPE_CHECKING:
    import torch

_positive = attrs.validators.gt(0)
# The encoder built for each kind of observation the representation stage hands on.
ENCODER_FOR = {"image": "conv-encoder", "vector": "mlp-encoder", "tokens": "token-encoder"}


@attrs.frozen
class ConvEncoderOptions:
    """Options of ``conv-encoder``.

    Attributes:
        feature_dim: Size of the feature vector.
        channels: Channels of the three convolution layers.
    """

    feature_dim: int = attrs.field(default=256, validator=_positive)
    channels: tuple[int, ...] = (32, 64, 64)


class ConvEncoderPlugin(ModelPlugin):
    """Nature-CNN image encoder sized from the observation shape (RGB uint8 frames)."""

    name = "conv-encoder"
    Options = ConvEncoderOptions

    def build(
        self,
        options: ConvEncoderOptions,
        context: BuildContext,
        observation_spec: ObservationSpec,
        action_spec: ActionSpec,
        built: Mapping[str, torch.nn.Module],
    ) -> torch.nn.Module:
        """Build the encoder for ``(H, W, C)`` images."""
        from pamiqx.api.layers import ConvEncoder

        if observation_spec.kind != "image":
            raise PluginError(
                f"conv-encoder: the policy observes {observation_spec.kind} of shape "
                f"{observation_spec.shape}; use [models.encoder] plugin = "
                f'"{ENCODER_FOR[observation_spec.kind]}".'
            )
        h, w, c = observation_spec.shape
        return ConvEncoder((h, w, c), options.feature_dim, options.channels)


@attrs.frozen
class MLPEncoderOptions:
    """Options of ``mlp-encoder``.

    Attributes:
        feature_dim: Size of the feature vector.
        hidden: Widths of the hidden layers.
        activation: ``tanh``, ``relu`` or ``elu``.
    """

    feature_dim: int = attrs.field(default=64, validator=_positive)
    hidden: tuple[int, ...] = (64,)
    activation: Literal["tanh", "relu", "elu"] = "tanh"


class MLPEncoderPlugin(ModelPlugin):
    """Multi-layer perceptron encoder for vector observations."""

    name = "mlp-encoder"
    Options = MLPEncoderOptions

    def build(
        self,
        options: MLPEncoderOptions,
        context: BuildContext,
        observation_spec: ObservationSpec,
        action_spec: ActionSpec,
        built: Mapping[str, torch.nn.Module],
    ) -> torch.nn.Module:
        """Build the encoder for ``(D,)`` vectors."""
        from pamiqx.api.layers import MLPEncoder

        if observation_spec.kind != "vector":
            raise PluginError(
                f"mlp-encoder: the policy observes {observation_spec.kind} of shape "
                f"{observation_spec.shape}; use [models.encoder] plugin = "
                f'"{ENCODER_FOR[observation_spec.kind]}".'
            )
        return MLPEncoder(
            observation_spec.shape[0], options.feature_dim, options.hidden, options.activation
        )


@attrs.frozen
class TokenEncoderOptions:
    """Options of ``token-encoder``.

    Attributes:
        feature_dim: Size of the feature vector.
        token_dim: Width of each token after the shared projection.
        hidden: Widths of the MLP's hidden layers.
    """

    feature_dim: int = attrs.field(default=256, validator=_positive)
    token_dim: int = attrs.field(default=32, validator=_positive)
    hidden: tuple[int, ...] = attrs.field(
        default=(256,), validator=attrs.validators.deep_iterable(_positive)
    )


class TokenEncoderPlugin(ModelPlugin):
    """Encoder for token latents (N, D), e.g. the jepa representation's (16, 128)."""

    name = "token-encoder"
    Options = TokenEncoderOptions

    def build(
        self,
        options: TokenEncoderOptions,
        context: BuildContext,
        observation_spec: ObservationSpec,
        action_spec: ActionSpec,
        built: Mapping[str, torch.nn.Module],
    ) -> torch.nn.Module:
        """Build the encoder for ``(N, D)`` tokens."""
        from pamiqx.api.layers import TokenEncoder

        if observation_spec.kind != "tokens":
            raise PluginError(
                f"token-encoder: the policy observes {observation_spec.kind} of shape "
                f"{observation_spec.shape}; use [models.encoder] plugin = "
                f'"{ENCODER_FOR[observation_spec.kind]}".'
            )
        count, width = observation_spec.shape
        return TokenEncoder((count, width), options.feature_dim, options.token_dim, options.hidden)


@attrs.frozen
class ActorCriticOptions:
    """Options of ``actor-critic``.

    Attributes:
        hidden: Widths of the MLP torso between the features and the heads.
        recurrent_dim: Width of a GRU core over the encoder's features; 0 for none.
    """

    hidden: tuple[int, ...] = (256,)
    recurrent_dim: int = attrs.field(default=0, validator=attrs.validators.ge(0))


class ActorCriticPlugin(ModelPlugin):
    """Policy and value heads (extrinsic and intrinsic) over the encoder, optionally recurrent."""

    name = "actor-critic"
    Options = ActorCriticOptions

    def build(
        self,
        options: ActorCriticOptions,
        context: BuildContext,
        observation_spec: ObservationSpec,
        action_spec: ActionSpec,
        built: Mapping[str, torch.nn.Module],
    ) -> torch.nn.Module:
        """Build the policy around the already-built ``encoder``."""
        from pamiqx.models.actor_critic import ActorCritic

        if "encoder" not in built:
            raise PluginError("actor-critic: needs [models.encoder] to be built first.")
        return ActorCritic(
            built["encoder"],
            action=(action_spec.kind, action_spec.nvec),
            recurrent_dim=options.recurrent_dim or None,
            hidden=options.hidden,
        )


@hookimpl
def pamiqx_register_models() -> list[type[ModelPlugin]]:
    """Return the built-in models."""
    return [ConvEncoderPlugin, MLPEncoderPlugin, TokenEncoderPlugin, ActorCriticPlugin]
