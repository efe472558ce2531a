"""Registers ``adversarial``, ``delta-minimize`` and ``meta``; import-light (torch in ``build``)."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, ClassVar, Literal

import attrs

import pamiqx
from pamiqx.api import ActionSpec, BuildContext, CuriosityPlugin, ObservationSpec

if TYPE_CHECKING:
    from pamiqx_fd_curiosity.core import ForwardDynamicsCuriosity

_positive = attrs.validators.gt(0)
_positive_float = attrs.validators.gt(0.0)
_channels: Any = attrs.validators.deep_iterable(_positive, attrs.validators.min_len(1))


@attrs.frozen
class FDOptions:
    """Options every forward-dynamics mechanism takes.

    Attributes:
        latent_dim: Size of the latent observation ``o_t`` (the frozen random encoder's output).
        hidden_dim: Size of the forward-dynamics model's GRU state.
        encoder_channels: Channels of the random encoder's convolutions (images).
        lr: Adam learning rate of the forward-dynamics model(s).
        grad_clip: Maximum gradient norm per step (0: no clipping).
        epochs: Gradient steps per ``update()`` on the whole batch.
    """

    latent_dim: int = attrs.field(default=128, validator=_positive)
    hidden_dim: int = attrs.field(default=256, validator=_positive)
    encoder_channels: tuple[int, ...] = attrs.field(default=(32, 64, 64), validator=_channels)
    lr: float = attrs.field(default=1e-3, validator=_positive_float)
    grad_clip: float = attrs.field(default=1.0, validator=attrs.validators.ge(0.0))
    epochs: int = attrs.field(default=1, validator=_positive)


@attrs.frozen
class ImaginationOptions(FDOptions):
    """Options of a mechanism scoring K-step imagined predictions.

    Attributes:
        max_imagination_steps: ``K``: each observation is scored against the
            predictions made 1..K steps before it, averaged with weights
            ``w^(k-1)``, ``w = exp(-1/K)``.
    """

    max_imagination_steps: int = attrs.field(default=3, validator=_positive)


@attrs.frozen
class AdversarialOptions(ImaginationOptions):
    """Options of ``adversarial`` (reference default K=3).

    Attributes:
        max_imagination_steps: ``K`` (3 in the reference).
    """

    max_imagination_steps: int = attrs.field(default=3, validator=_positive)


@attrs.frozen
class DeltaMinimizeOptions(ImaginationOptions):
    """Options of ``delta-minimize`` (reference default K=5).

    Attributes:
        max_imagination_steps: ``K`` (5 in the reference).
    """

    max_imagination_steps: int = attrs.field(default=5, validator=_positive)


@attrs.frozen
class MetaOptions(FDOptions):
    """Options of ``meta`` (no imagination: each level's 1-step prediction is scored).

    Attributes:
        num_meta_levels: ``L``, the forward-dynamics levels (2 in the reference).
        coefficients: Reward coefficients ``c_i``, bottom level first:
            ``maximize_top`` ``[-1, ..., -1, +1]``, ``all_minimize`` (all -1),
            ``all_maximize`` (all +1) or ``linear`` (-1 to +1).
    """

    num_meta_levels: int = attrs.field(default=2, validator=_positive)
    coefficients: Literal["maximize_top", "all_minimize", "all_maximize", "linear"] = "maximize_top"


class _FamilyPlugin(CuriosityPlugin):
    """Builds the mechanism class named by ``mechanism`` (imported only when built)."""

    mechanism: ClassVar[str]

    def build(
        self,
        options: Any,
        context: BuildContext,
        observation_spec: ObservationSpec,
        action_spec: ActionSpec,
    ) -> ForwardDynamicsCuriosity:
        """Build the encoder, the forward dynamics and the optimizer on ``context.device``.

        Args:
            options: The plugin's options.
            context: Device (the networks draw from torch's global RNG, seeded by the host).
            observation_spec: Images get a random conv encoder, vectors a random MLP.
            action_spec: Discrete or multi-discrete; actions enter the forward dynamics one-hot.

        Returns:
            The mechanism.
        """
        from pamiqx_fd_curiosity import mechanisms

        # Each mechanism class takes (options, observation spec, action spec, device).
        make: Callable[[Any, ObservationSpec, ActionSpec, str], ForwardDynamicsCuriosity]
        make = getattr(mechanisms, self.mechanism)
        return make(options, observation_spec, action_spec, context.device)


class AdversarialPlugin(_FamilyPlugin):
    """Adversarial forward dynamics: reward = the FD's imagination-averaged prediction error."""

    name = "adversarial"
    Options = AdversarialOptions
    mechanism = "AdversarialCuriosity"


class DeltaMinimizePlugin(_FamilyPlugin):
    """Learning progress: reward -(e_t - e_{t-1}), steps where the world became more predictable."""

    name = "delta-minimize"
    Options = DeltaMinimizeOptions
    mechanism = "DeltaMinimizeCuriosity"


class MetaPlugin(_FamilyPlugin):
    """Meta forward dynamics: L levels predicting residuals, reward sum_i c_i * mean(δ_i^2)."""

    name = "meta"
    Options = MetaOptions
    mechanism = "MetaCuriosity"


@pamiqx.hookimpl
def pamiqx_register_curiosities() -> list[type[CuriosityPlugin]]:
    """Return the forward-dynamics curiosity family."""
    return [AdversarialPlugin, DeltaMinimizePlugin, MetaPlugin]
