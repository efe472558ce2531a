"""The frozen random-feature encoder behind the built-in ``random`` representation."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from pamiqx.api import ObservationSpec

_FRAME_EPS = 1e-5
_POOLED_SIZE = 4


class RandomEncoder(nn.Module):
    """A frozen random-feature encoder: observations to ``(latent_dim,)`` vectors.

    Images ``(H, W, C)`` (uint8) are standardised per frame, passed through
    random ReLU convolutions (stride 2 while the map is at least 8 pixels),
    average-pooled to 4x4 and projected to ``latent_dim``; vectors and tokens
    (flattened) go through a random two-layer MLP. The output is layer-normed
    (no affine), so every latent dimension has unit scale and prediction errors
    are comparable across worlds. Nothing here trains.

    Attributes:
        obs_shape: Shape of one observation.
        latent_dim: Size of the latent.
    """

    def __init__(
        self,
        observation_spec: ObservationSpec,
        latent_dim: int,
        channels: tuple[int, ...] = (32, 64, 64),
        hidden: int = 256,
        generator: torch.Generator | None = None,
    ) -> None:
        """Build the encoder.

        Args:
            observation_spec: What the environment observes.
            latent_dim: Size of the latent observation.
            channels: Channels of the convolutions (images).
            hidden: Width of the MLP's hidden layer (vectors and tokens).
            generator: Draws the random weights (torch's global generator when None).
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
            width = 1
            for size in self.obs_shape:
                width *= size
            layers += [
                nn.Flatten(),
                nn.Linear(width, hidden),
                nn.ReLU(),
                nn.Linear(hidden, latent_dim),
            ]
        self.net = nn.Sequential(*layers)
        self.norm = nn.LayerNorm(latent_dim, elementwise_affine=False)
        if generator is not None:
            self._redraw(generator)
        self.requires_grad_(False)

    def _redraw(self, generator: torch.Generator) -> None:
        """Draw every weight from ``generator`` with torch's default (Kaiming-uniform) bounds."""
        for module in self.net:
            if isinstance(module, nn.Conv2d | nn.Linear):
                fan_in = module.weight[0].numel()
                bound = fan_in**-0.5
                with torch.no_grad():
                    module.weight.uniform_(-bound, bound, generator=generator)
                    if module.bias is not None:
                        module.bias.uniform_(-bound, bound, generator=generator)

    def forward(self, observations: Tensor) -> Tensor:
        """Encode ``(B, *obs_shape)`` observations to ``(B, latent_dim)`` latents."""
        x = observations.detach().float()
        if self.image:
            x = x.permute(0, 3, 1, 2)
            mean = x.mean(dim=(1, 2, 3), keepdim=True)
            std = x.std(dim=(1, 2, 3), keepdim=True, unbiased=False)
            x = (x - mean) / (std + _FRAME_EPS)
        latent: Tensor = self.norm(self.net(x))
        return latent
