"""Frames to encoder input: resize keeping the aspect ratio, centre-crop, standardise."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

STANDARDISE_EPS = 1e-8


def resize_crop(frames: Tensor, size: int) -> Tensor:
    """Resize ``(B, H, W, C)`` uint8 frames so the shorter side is ``size``, then centre-crop.

    The reference resizes the uint8 frame (bilinear, antialiased) and crops it
    square; the result stays uint8 so the training buffer stores what ``encode``
    sees, bit for bit.

    Args:
        frames: ``(B, H, W, C)`` uint8 frames.
        size: Side of the square crop.

    Returns:
        ``(B, C, size, size)`` uint8 frames on the same device.
    """
    images = frames.permute(0, 3, 1, 2)
    height, width = images.shape[-2:]
    aspect = width / height
    scaled = (math.ceil(size / aspect), size) if aspect < 1.0 else (size, math.ceil(size * aspect))
    if scaled != (height, width):
        resized = F.interpolate(
            images.float(), size=scaled, mode="bilinear", align_corners=False, antialias=True
        )
        images = resized.round_().clamp_(0, 255).to(torch.uint8)
    top = round((scaled[0] - size) / 2.0)
    left = round((scaled[1] - size) / 2.0)
    return images[:, :, top : top + size, left : left + size].contiguous()


def standardise(images: Tensor) -> Tensor:
    """Scale ``(B, C, S, S)`` uint8 images to [0, 1], then standardise each whole frame.

    Returns:
        float32 images with zero mean and unit (unbiased) std per frame.
    """
    x = images.float().div_(255.0)
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    std = x.std(dim=(1, 2, 3), keepdim=True)
    return (x - mean) / (std + STANDARDISE_EPS)
