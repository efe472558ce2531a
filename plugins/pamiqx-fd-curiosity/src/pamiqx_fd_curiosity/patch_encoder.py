"""``ttt-e2e``'s reference image encoder: raw patches read by a transformer decoder.

As the reference's ttt_e2e model (src/configs/models/ttt_e2e.yaml,
src/exp/models/components/vit_encoder.py ``TransformerEncoder`` with no encoder
layers): each frame is standardised as a whole (src/exp/envs/vrchat.py), cut
into square patches whose raw values are projected to the token width with
learned position embeddings; learned query tokens pass through decoder layers
(pre-RMSNorm self-attention among the queries, pre-RMSNorm cross-attention to
the patches, pre-RMSNorm SwiGLU feed-forward, each with a residual; attention
without biases or an output projection, as there) and the first query's output,
RMS-normed, is the frame's features.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from pamiqx.api import PluginError, RMSNorm, SwiGLU

_FRAME_EPS = 1e-8  # the reference's per-frame standardisation


class _Attention(nn.Module):
    """Multi-head attention of ``x`` over ``memory`` (no biases, no output projection)."""

    def __init__(self, width: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.query = nn.Linear(width, width, bias=False)
        self.key = nn.Linear(width, width, bias=False)
        self.value = nn.Linear(width, width, bias=False)

    def forward(self, x: Tensor, memory: Tensor) -> Tensor:
        def split(t: Tensor) -> Tensor:
            return t.reshape(*t.shape[:-1], self.heads, -1).transpose(1, 2)  # (B, heads, L, d)

        out = F.scaled_dot_product_attention(
            split(self.query(x)), split(self.key(memory)), split(self.value(memory))
        )
        return out.transpose(1, 2).flatten(-2)


class _DecoderLayer(nn.Module):
    """Self-attention, cross-attention to the patches and a SwiGLU, each pre-normed."""

    def __init__(self, width: int, heads: int, ff_dim: int) -> None:
        super().__init__()
        self.norm_self = RMSNorm(width)
        self.self_attention = _Attention(width, heads)
        self.norm_cross = RMSNorm(width)
        self.cross_attention = _Attention(width, heads)
        self.norm_ff = RMSNorm(width)
        self.ff = SwiGLU(width, ff_dim)

    def forward(self, x: Tensor, patches: Tensor) -> Tensor:
        normed = self.norm_self(x)
        x = x + self.self_attention(normed, normed)
        x = x + self.cross_attention(self.norm_cross(x), patches)
        out: Tensor = x + self.ff(self.norm_ff(x))
        return out


class PatchTransformer(nn.Module):
    """``(B, H, W, C)`` frames to ``(B, width)`` features through a patch transformer decoder.

    Attributes:
        patch_size: Side of the square patches.
        width: Width of the tokens and of the features.
    """

    def __init__(
        self,
        image_shape: tuple[int, int, int],
        patch_size: int,
        width: int,
        layers: int,
        heads: int,
        ff_dim: int,
        queries: int,
    ) -> None:
        """Build the encoder.

        Args:
            image_shape: ``(H, W, C)`` of the frames.
            patch_size: Side of the square patches (divides ``H`` and ``W``).
            width: Width of the tokens (divisible by ``heads``).
            layers: Decoder layers.
            heads: Attention heads.
            ff_dim: Hidden width of the feed-forwards.
            queries: Learned query tokens.

        Raises:
            PluginError: If the sizes do not fit.
        """
        super().__init__()
        height, width_px, channels = image_shape
        if height % patch_size or width_px % patch_size:
            raise PluginError(
                f"the frame's sides ({height} x {width_px}) must be multiples of "
                f"patch_size ({patch_size})"
            )
        if width % heads:
            raise PluginError(
                f"encoder_width ({width}) must be divisible by encoder_heads ({heads})"
            )
        self.patch_size = patch_size
        self.width = width
        patches = (height // patch_size) * (width_px // patch_size)
        self.embed = nn.Linear(patch_size * patch_size * channels, width)
        self.positions = nn.Parameter(torch.randn(patches, width) * 0.02)
        self.queries = nn.Parameter(torch.randn(queries, width) * 0.02)
        self.layers = nn.ModuleList(_DecoderLayer(width, heads, ff_dim) for _ in range(layers))
        self.norm = RMSNorm(width)

    @classmethod
    def from_options(cls, options: Any, image_shape: tuple[int, ...]) -> PatchTransformer:
        """Build from ``TTTE2EOptions``."""
        return cls(
            (int(image_shape[0]), int(image_shape[1]), int(image_shape[2])),
            options.patch_size,
            options.encoder_width,
            options.encoder_layers,
            options.encoder_heads,
            options.encoder_ff_dim,
            options.encoder_queries,
        )

    def patchify(self, obs: Tensor) -> Tensor:
        """``(B, H, W, C)`` frames to standardised ``(B, N, p * p * C)`` raw patches (row-major)."""
        x = obs.to(self.embed.weight.dtype)
        flat = x.flatten(1)
        mean = flat.mean(dim=-1).view(-1, 1, 1, 1)
        std = flat.std(dim=-1).view(-1, 1, 1, 1)
        x = (x - mean) / (std + _FRAME_EPS)
        batch, height, width, channels = x.shape
        p = self.patch_size
        x = x.reshape(batch, height // p, p, width // p, p, channels).permute(0, 1, 3, 2, 4, 5)
        return x.reshape(batch, (height // p) * (width // p), p * p * channels)

    def forward(self, obs: Tensor) -> Tensor:
        """Encode frames to ``(B, width)`` features."""
        patches = self.embed(self.patchify(obs)) + self.positions
        x = self.queries.unsqueeze(0).expand(obs.shape[0], -1, -1)
        for layer in self.layers:
            x = layer(x, patches)
        features: Tensor = self.norm(x[:, 0])
        return features
