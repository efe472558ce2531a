"""Numeric precision of forward passes: bf16 autocast on CUDA when an experiment asks for it."""

from __future__ import annotations

import contextlib
from typing import Any

import torch


def autocast_context(
    device: torch.device, precision: str
) -> contextlib.AbstractContextManager[Any]:
    """Return bf16 autocast on CUDA when asked for, else a no-op context."""
    if precision == "bf16" and device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()
