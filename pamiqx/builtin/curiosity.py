"""Registers the built-in curiosity ``none``: the zero-intrinsic-reward baseline."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pamiqx.api import (
    ActionSpec,
    BuildContext,
    Curiosity,
    CuriosityPlugin,
    ObservationSpec,
    Transitions,
)
from pamiqx.api.hooks import hookimpl

if TYPE_CHECKING:
    import torch


class NoCuriosity(Curiosity):
    """Zero intrinsic reward: the agent learns from extrinsic reward alone."""

    def __init__(self, device: str) -> None:
        """Remember the device the zeros are made on."""
        self.device = device

    def modules(self) -> dict[str, torch.nn.Module]:
        """Return no modules."""
        return {}

    def rewards(self, batch: Transitions) -> torch.Tensor:
        """Return zeros shaped like the batch."""
        import torch

        return torch.zeros(batch.shape, device=batch.dones.device)

    def update(self, batch: Transitions) -> dict[str, float]:
        """Train nothing."""
        return {}


class NoCuriosityPlugin(CuriosityPlugin):
    """No intrinsic reward: the baseline every curiosity is compared with."""

    name = "none"

    def build(
        self,
        options: Any,
        context: BuildContext,
        observation_spec: ObservationSpec,
        action_spec: ActionSpec,
    ) -> NoCuriosity:
        """Build the baseline."""
        return NoCuriosity(context.device)


@hookimpl
def pamiqx_register_curiosities() -> list[type[CuriosityPlugin]]:
    """Return the built-in curiosity mechanisms."""
    return [NoCuriosityPlugin]
