"""Registers the built-in curiosities ``none`` and ``random``, the two baselines.

``none`` pays no intrinsic reward and trains the experiment's policy on the
extrinsic reward alone; ``random`` pays none either and acts through a uniform
random policy that never trains, the floor every mechanism must beat.
"""

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
    from collections.abc import Mapping

    import torch

    from pamiqx.api.policy import PolicyNetwork


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


class RandomBaseline(NoCuriosity):
    """Zero intrinsic reward, and a policy that acts uniformly at random and never learns."""

    def __init__(self, device: str, action_spec: ActionSpec) -> None:
        """Remember the device and the action space the policy is sized for."""
        super().__init__(device)
        self.action_spec = action_spec

    def policy_network(self, built: Mapping[str, torch.nn.Module]) -> PolicyNetwork:
        """Return the uniform policy (the experiment's ``[models.policy]`` goes unused)."""
        # Imported here: listing plugins must not import torch.
        from pamiqx.models.uniform_policy import UniformPolicy

        return UniformPolicy(self.action_spec)


class RandomBaselinePlugin(CuriosityPlugin):
    """Uniform random actions, no training: the floor every mechanism must beat."""

    name = "random"

    def build(
        self,
        options: Any,
        context: BuildContext,
        observation_spec: ObservationSpec,
        action_spec: ActionSpec,
    ) -> RandomBaseline:
        """Build the baseline for the world's action space."""
        return RandomBaseline(context.device, action_spec)


@hookimpl
def pamiqx_register_curiosities() -> list[type[CuriosityPlugin]]:
    """Return the built-in curiosity mechanisms."""
    return [NoCuriosityPlugin, RandomBaselinePlugin]
