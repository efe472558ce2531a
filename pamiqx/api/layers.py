"""Torch layers plugins share: orthogonal init, the conv trunk, encoders, one-hot actions."""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

# (kernel, stride) of the Nature-CNN stack, and a gentler stack for small frames where the
# Nature strides would shrink the feature map to nothing (e.g. 32x32).
NATURE_SPEC: tuple[tuple[int, int], ...] = ((8, 4), (4, 2), (3, 1))
SMALL_SPEC: tuple[tuple[int, int], ...] = ((4, 2), (3, 2), (3, 1))

_ACTIVATIONS: dict[str, type[nn.Module]] = {"tanh": nn.Tanh, "relu": nn.ReLU, "elu": nn.ELU}


def orthogonal_init(module: nn.Module, gain: float) -> None:
    """Orthogonally initialise the weight of a linear/conv layer and zero its bias.

    Args:
        module: Module to initialise; anything but ``nn.Linear``/``nn.Conv2d`` is ignored.
        gain: Orthogonal-init gain.
    """
    if isinstance(module, nn.Linear | nn.Conv2d):
        nn.init.orthogonal_(module.weight, gain=gain)
        if module.bias is not None:
            nn.init.zeros_(module.bias)


def _conv_out(size: int, kernel: int, stride: int, padding: int) -> int:
    """Return the output length of a convolution along one spatial axis."""
    return (size + 2 * padding - kernel) // stride + 1


def _layer_specs(n_layers: int, spec: tuple[tuple[int, int], ...]) -> list[tuple[int, int, int]]:
    """Expand a (kernel, stride) spec to ``n_layers`` (kernel, stride, padding) triples.

    Layers beyond the spec are size-preserving 3x3 convolutions so that longer ``channels``
    tuples only add depth, never shrink the map further.
    """
    layers = [(k, s, 0) for k, s in spec[:n_layers]]
    layers += [(3, 1, 1)] * (n_layers - len(layers))
    return layers


def _final_size(size: int, layers: list[tuple[int, int, int]]) -> int:
    """Return the spatial length after applying ``layers`` to an axis of length ``size``."""
    for kernel, stride, padding in layers:
        size = _conv_out(size, kernel, stride, padding)
    return size


def conv_trunk(
    obs_shape: tuple[int, ...],
    channels: tuple[int, ...] = (32, 64, 64),
    activation: Callable[[], nn.Module] = nn.ReLU,
) -> tuple[nn.Sequential, int]:
    """Build the Nature-CNN conv stack for channel-first frames, ending in a flatten.

    The stack is 8x8/4, 4x4/2, 3x3/1 with ``activation`` after each convolution;
    frames too small for those strides (under ~36 px) get 4x4/2, 3x3/2, 3x3/1.
    Layers past the third are size-preserving 3x3 convolutions, so a longer
    ``channels`` only adds depth. Weights keep torch's default initialisation.

    Args:
        obs_shape: One frame as ``(H, W, C)`` (the trunk takes ``(B, C, H, W)``).
        channels: Output channels of each convolution.
        activation: Factory of the layer after each convolution.

    Returns:
        The trunk and the length of its flat output.

    Raises:
        ValueError: If the shape or ``channels`` are invalid, or the frame is too small.
    """
    if len(obs_shape) != 3 or min(obs_shape) < 1:
        raise ValueError(f"obs_shape must be (H, W, C) with positive sizes, got {obs_shape}")
    if not channels or min(channels) < 1:
        raise ValueError(f"channels must be a non-empty tuple of positives, got {channels}")
    height, width, in_channels = obs_shape
    layers = _layer_specs(len(channels), NATURE_SPEC)
    if _final_size(min(height, width), layers) < 1:
        layers = _layer_specs(len(channels), SMALL_SPEC)
        if _final_size(min(height, width), layers) < 1:
            raise ValueError(f"frames of {height}x{width} are too small for the conv trunk")
    modules: list[nn.Module] = []
    previous = in_channels
    for out, (kernel, stride, padding) in zip(channels, layers, strict=True):
        modules += [nn.Conv2d(previous, out, kernel, stride, padding), activation()]
        previous = out
    modules.append(nn.Flatten())
    flat = previous * _final_size(height, layers) * _final_size(width, layers)
    return nn.Sequential(*modules), flat


def image_batch(obs: Tensor) -> Tensor:
    """Return ``(B, H, W, C)`` frames as ``(B, C, H, W)`` float; uint8 is scaled to [0, 1]."""
    x = obs.float() / 255.0 if obs.dtype == torch.uint8 else obs.float()
    return x.permute(0, 3, 1, 2)


class ConvEncoder(nn.Module):
    """Nature-CNN encoder for channel-last RGB frames: :func:`conv_trunk`, a linear layer, ReLU.

    Attributes:
        feature_dim: Size of the output feature vector.
    """

    def __init__(
        self,
        obs_shape: tuple[int, int, int],
        feature_dim: int = 256,
        channels: tuple[int, ...] = (32, 64, 64),
    ) -> None:
        """Build the encoder (orthogonal weights with gain sqrt(2), zero biases).

        Args:
            obs_shape: Observation shape as ``(H, W, C)``.
            feature_dim: Size of the output feature vector.
            channels: Output channels of each conv layer; layers past the third are
                size-preserving 3x3 convolutions.

        Raises:
            ValueError: If the shape, ``feature_dim`` or ``channels`` are invalid, or the
                frame is too small for any conv stack.
        """
        super().__init__()
        if feature_dim < 1:
            raise ValueError(f"feature_dim must be positive, got {feature_dim}")
        self.obs_shape = obs_shape
        self.feature_dim = feature_dim
        self.convs, flat_dim = conv_trunk(obs_shape, channels, nn.ReLU)
        self.fc = nn.Sequential(nn.Linear(flat_dim, feature_dim), nn.ReLU())
        self.apply(lambda m: orthogonal_init(m, math.sqrt(2.0)))

    def forward(self, obs: Tensor) -> Tensor:
        """Encode ``(B, H, W, C)`` frames (uint8 scaled to [0, 1]) to ``(B, feature_dim)``."""
        features: Tensor = self.fc(self.convs(image_batch(obs)))
        return features


class MLPEncoder(nn.Module):
    """Multi-layer perceptron encoder for vector observations.

    Attributes:
        feature_dim: Size of the output feature vector.
    """

    def __init__(
        self,
        obs_dim: int,
        feature_dim: int = 64,
        hidden: tuple[int, ...] = (64,),
        activation: str = "tanh",
    ) -> None:
        """Build the encoder.

        Args:
            obs_dim: Length of the observation vector.
            feature_dim: Size of the output feature vector.
            hidden: Widths of the hidden layers before the output layer.
            activation: One of ``"tanh"``, ``"relu"`` or ``"elu"``, applied after every
                layer including the output one.

        Raises:
            ValueError: If ``activation`` is unknown or a size is not positive.
        """
        super().__init__()
        if activation not in _ACTIVATIONS:
            raise ValueError(
                f"unknown activation {activation!r}; expected one of {sorted(_ACTIVATIONS)}"
            )
        if obs_dim < 1 or feature_dim < 1 or any(h < 1 for h in hidden):
            raise ValueError("obs_dim, feature_dim and hidden widths must be positive")
        self.obs_dim = obs_dim
        self.feature_dim = feature_dim
        act = _ACTIVATIONS[activation]
        layers: list[nn.Module] = []
        prev = obs_dim
        for width in (*hidden, feature_dim):
            layers += [nn.Linear(prev, width), act()]
            prev = width
        self.net = nn.Sequential(*layers)
        self.apply(lambda m: orthogonal_init(m, math.sqrt(2.0)))

    def forward(self, obs: Tensor) -> Tensor:
        """Encode a batch of vectors.

        Args:
            obs: ``(B, obs_dim)`` observations.

        Returns:
            ``(B, feature_dim)`` features.
        """
        features: Tensor = self.net(obs.float())
        return features


class TokenEncoder(nn.Module):
    """Encoder for token latents ``(N, D)``, e.g. the ``(16, 128)`` output of ``jepa``.

    Each token is projected to ``token_dim`` by one shared linear layer (its
    place in the sequence is kept by the flattening that follows), then an MLP
    maps the ``N * token_dim`` flattened tokens to the feature vector.

    Attributes:
        feature_dim: Size of the output feature vector.
    """

    def __init__(
        self,
        token_shape: tuple[int, int],
        feature_dim: int = 256,
        token_dim: int = 32,
        hidden: tuple[int, ...] = (256,),
    ) -> None:
        """Build the encoder.

        Args:
            token_shape: ``(N, D)``: number of tokens and their width.
            feature_dim: Size of the output feature vector.
            token_dim: Width of each token after the shared projection.
            hidden: Widths of the MLP's hidden layers.

        Raises:
            ValueError: If a size is not positive.
        """
        super().__init__()
        count, width = token_shape
        if min(count, width, feature_dim, token_dim, *hidden) < 1:
            raise ValueError(
                "token shape, feature_dim, token_dim and hidden widths must be positive"
            )
        self.feature_dim = feature_dim
        self.project = nn.Linear(width, token_dim)
        layers: list[nn.Module] = [nn.Flatten(), nn.ReLU()]
        prev = count * token_dim
        for size in (*hidden, feature_dim):
            layers += [nn.Linear(prev, size), nn.ReLU()]
            prev = size
        self.net = nn.Sequential(*layers)
        self.apply(lambda m: orthogonal_init(m, math.sqrt(2.0)))

    def forward(self, tokens: Tensor) -> Tensor:
        """Encode ``(B, N, D)`` tokens to ``(B, feature_dim)`` features."""
        features: Tensor = self.net(self.project(tokens.float()))
        return features


def one_hot_width(nvec: tuple[int, ...]) -> int:
    """Return the width of :func:`one_hot_actions`'s encoding: the sum of ``nvec``."""
    return int(sum(nvec))


def one_hot_actions(actions: Tensor, nvec: tuple[int, ...], discrete: bool | None = None) -> Tensor:
    """One-hot encode actions, concatenating the codes of a multi-discrete action's parts.

    Args:
        actions: ``(...)`` integers for a discrete space, or ``(..., len(nvec))`` for a
            multi-discrete one (the layouts the host stores).
        nvec: Choices of each sub-action (``ActionSpec.nvec``).
        discrete: Whether the space is discrete (no sub-action axis); by default, when
            ``nvec`` has one entry. Pass False for a multi-discrete space of one sub-action.
            The layout is never guessed from the shape: ``(T, 1)`` is one world's
            discrete actions, not one multi-discrete action per step.

    Returns:
        ``(..., sum(nvec))`` float32.
    """
    if discrete is None:
        discrete = len(nvec) == 1
    if discrete:
        actions = actions.unsqueeze(-1)
    parts = [F.one_hot(actions[..., i].long(), n) for i, n in enumerate(nvec)]
    return torch.cat(parts, dim=-1).float()
