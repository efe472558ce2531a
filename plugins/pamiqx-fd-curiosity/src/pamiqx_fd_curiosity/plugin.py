"""Registers the family's seven mechanisms; import-light (torch is imported in ``build``).

``adversarial``, ``delta-minimize`` and ``meta`` score rewards beside the host's
policy; ``hierarchical``, ``unified``, ``ttt`` and ``ttt-e2e`` own the policy
network (see :mod:`pamiqx_fd_curiosity.owned`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from pamiqx.api import (
    ActionSpec,
    BuildContext,
    CuriosityPlugin,
    ObservationSpec,
    PluginError,
    hookimpl,
)
from pamiqx_fd_curiosity.fd_options import (
    AdversarialOptions,
    DeltaMinimizeOptions,
    FDOptions,
    ImaginationOptions,
    MetaOptions,
)
from pamiqx_fd_curiosity.owned_options import (
    HierarchicalOptions,
    TTTE2EOptions,
    TTTOptions,
    UnifiedOptions,
)

if TYPE_CHECKING:
    from pamiqx.api import Curiosity

# The option classes live by family in their own modules; importing them from here
# keeps working (experiment files and plugin authors' tests do).
__all__ = [
    "AdversarialOptions",
    "DeltaMinimizeOptions",
    "FDOptions",
    "HierarchicalOptions",
    "ImaginationOptions",
    "MetaOptions",
    "TTTE2EOptions",
    "TTTOptions",
    "UnifiedOptions",
    "pamiqx_register_curiosities",
    "require_latents",
]


def require_latents(mechanism: str, observation_spec: ObservationSpec) -> None:
    """Refuse raw images: a mechanism predicting latents needs a representation stage.

    Args:
        mechanism: The plugin's name.
        observation_spec: What the representation stage hands the mechanism.

    Raises:
        PluginError: If it hands on images (the ``pixels`` representation).
    """
    if observation_spec.kind == "image":
        raise PluginError(
            f"{mechanism} predicts latents, not pixels: set [representation] plugin = "
            '"random" (frozen random features) or "jepa", and [models.encoder] plugin = '
            '"mlp-encoder" / "token-encoder".'
        )


class _FamilyPlugin(CuriosityPlugin):
    """Builds the mechanism class named by ``mechanism`` (imported only when built)."""

    mechanism: ClassVar[str]
    # What the mechanism observes: the stage's latents, or the world's own images.
    observes: ClassVar[Literal["latents", "images"]] = "latents"

    def build(
        self,
        options: Any,
        context: BuildContext,
        observation_spec: ObservationSpec,
        action_spec: ActionSpec,
    ) -> Curiosity:
        """Build the networks and the optimizer on ``context.device``.

        Args:
            options: The plugin's options.
            context: Device (the networks draw from torch's global RNG, seeded by the host).
            observation_spec: The representation stage's latents: ``(D,)`` vectors or
                ``(N, D)`` tokens (flattened to ``N * D``); ``ttt-e2e`` takes images.
            action_spec: Discrete or multi-discrete; actions enter the forward dynamics one-hot.

        Returns:
            The mechanism.

        Raises:
            PluginError: If a mechanism predicting latents is handed raw images.
        """
        import importlib

        if self.observes == "latents":
            require_latents(self.name, observation_spec)

        module_name, _, class_name = self.mechanism.rpartition(".")
        module = importlib.import_module(f"pamiqx_fd_curiosity.{module_name}")
        # Each mechanism class takes (options, observation spec, action spec, device).
        make: Callable[[Any, ObservationSpec, ActionSpec, str], Curiosity]
        make = getattr(module, class_name)
        return make(options, observation_spec, action_spec, context.device)


class AdversarialPlugin(_FamilyPlugin):
    """Adversarial forward dynamics: reward = the FD's imagination-averaged prediction error."""

    name = "adversarial"
    Options = AdversarialOptions
    mechanism = "mechanisms.AdversarialCuriosity"


class DeltaMinimizePlugin(_FamilyPlugin):
    """Learning progress: reward -(e_t - e_{t-1}), steps where the world became more predictable."""

    name = "delta-minimize"
    Options = DeltaMinimizeOptions
    mechanism = "mechanisms.DeltaMinimizeCuriosity"


class MetaPlugin(_FamilyPlugin):
    """Meta forward dynamics: L levels predicting residuals, reward sum_i c_i * mean(δ_i^2)."""

    name = "meta"
    Options = MetaOptions
    mechanism = "meta.MetaCuriosity"


class HierarchicalPlugin(_FamilyPlugin):
    """Layers of FD + policy at timescales 1, 8, ...: surprise minimised below, sought above."""

    name = "hierarchical"
    Options = HierarchicalOptions
    mechanism = "hierarchical.HierarchicalCuriosity"


class UnifiedPlugin(_FamilyPlugin):
    """One recurrent network predicts, acts (plus an internal action); reward: its error."""

    name = "unified"
    Options = UnifiedOptions
    mechanism = "unified.UnifiedCuriosity"


class TTTPlugin(_FamilyPlugin):
    """Deep surprise: a test-time-training core; reward from its surprisal, with fatigue."""

    name = "ttt"
    Options = TTTOptions
    mechanism = "unified.TTTCuriosity"


class TTTE2EPlugin(_FamilyPlugin):
    """``ttt`` with the image encoder trained end to end through the same network and losses."""

    name = "ttt-e2e"
    Options = TTTE2EOptions
    mechanism = "unified.TTTE2ECuriosity"
    observes = "images"


@hookimpl
def pamiqx_register_curiosities() -> list[type[CuriosityPlugin]]:
    """Return the forward-dynamics curiosity family."""
    return [
        AdversarialPlugin,
        DeltaMinimizePlugin,
        MetaPlugin,
        HierarchicalPlugin,
        UnifiedPlugin,
        TTTPlugin,
        TTTE2EPlugin,
    ]
