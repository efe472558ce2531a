"""The I-JEPA encoder (context and target) and predictor."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from pamiqx_jepa.positional import sincos_2d
from pamiqx_jepa.transformer import INIT_STD, Transformer, init_weights


class Encoder(nn.Module):
    """Patch embedding, fixed position embedding, a pre-LN ViT and a linear output.

    Masked patches are *replaced* by a learned mask token before the position
    embedding is added (the reference's encoder does not drop them).
    """

    def __init__(
        self,
        *,
        channels: int,
        grid: int,
        patch_size: int,
        width: int,
        depth: int,
        heads: int,
        output_width: int,
        generator: torch.Generator,
    ) -> None:
        super().__init__()
        self.patch_embed = nn.Conv2d(channels, width, kernel_size=patch_size, stride=patch_size)
        self.mask_token = nn.Parameter(torch.empty(width))
        self.register_buffer("position", sincos_2d(width, grid)[None], persistent=False)
        self.transformer = Transformer(width, depth, heads)
        self.out = nn.Linear(width, output_width)
        init_weights(self, generator)
        nn.init.trunc_normal_(self.mask_token, std=INIT_STD, generator=generator)

    def forward(self, images: Tensor, mask: Tensor | None = None) -> Tensor:
        """Encode ``(B, C, S, S)`` standardised images.

        Args:
            images: The frames.
            mask: ``(B, N)`` bool, True where a patch is hidden, or None.

        Returns:
            ``(B, N, output_width)`` patch latents, row-major over the grid.
        """
        x = self.patch_embed(images).flatten(2).transpose(1, 2)
        if mask is not None:
            x = torch.where(mask[..., None], self.mask_token.to(x.dtype), x)
        x = x + self.position
        return self.out(self.transformer(x))  # type: ignore[no-any-return]


class Predictor(nn.Module):
    """Predicts the target encoder's latents at the target patches from the context latents."""

    def __init__(
        self,
        *,
        grid: int,
        output_width: int,
        width: int,
        depth: int,
        heads: int,
        generator: torch.Generator,
    ) -> None:
        super().__init__()
        self.input_proj = nn.Linear(output_width, width)
        self.target_token = nn.Parameter(torch.empty(width))
        self.register_buffer("position", sincos_2d(width, grid)[None], persistent=False)
        self.transformer = Transformer(width, depth, heads)
        self.out = nn.Linear(width, output_width)
        init_weights(self, generator)
        nn.init.trunc_normal_(self.target_token, std=INIT_STD, generator=generator)

    def forward(self, latents: Tensor, targets: Tensor) -> Tensor:
        """Predict every patch; the loss reads the target patches.

        Args:
            latents: ``(B, N, output_width)`` context-encoder output.
            targets: ``(B, N)`` bool, True at the patches to predict (they get the
                learned target token added).

        Returns:
            ``(B, N, output_width)`` predictions.
        """
        x = self.input_proj(latents)
        x = x + targets[..., None].to(x.dtype) * self.target_token.to(x.dtype)
        x = x + self.position
        return self.out(self.transformer(x))  # type: ignore[no-any-return]
