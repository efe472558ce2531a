"""Registers the ``jepa`` representation; import-light (torch is imported inside ``build``)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal

import attrs

from pamiqx.api import (
    BuildContext,
    ObservationSpec,
    PluginError,
    RepresentationPlugin,
    hookimpl,
)

if TYPE_CHECKING:
    from pamiqx_jepa.representation import JEPARepresentation

_POSITIVE = attrs.validators.gt(0)


def _multiple_of_four(instance: Any, attribute: attrs.Attribute[int], value: int) -> None:
    # The 2-D sin-cos embedding splits the width into (row, column) x (sin, cos).
    if value % 4:
        raise ValueError(f"'{attribute.name}' must be a multiple of 4 (sin-cos embedding): {value}")


def _divides(other: str) -> Any:
    """Return a validator: ``getattr(instance, other)`` must be a multiple of the value."""

    def check(instance: Any, attribute: attrs.Attribute[int], value: int) -> None:
        total = getattr(instance, other)  # AttributeError while only this field is checked
        if total % value:
            raise ValueError(
                f"'{other}' ({total}) must be a multiple of '{attribute.name}' ({value})"
            )

    return check


def _grid_divides(instance: Any, attribute: attrs.Attribute[int], value: int) -> None:
    grid = instance.input_size // instance.patch_size
    if grid % value:
        raise ValueError(
            f"'{attribute.name}' ({value}) must divide the patch grid side "
            f"input_size/patch_size = {grid}"
        )


def _fits_grid(instance: Any, attribute: attrs.Attribute[int], value: int) -> None:
    patches = (instance.input_size // instance.patch_size) ** 2
    if value > patches:
        raise ValueError(f"'{attribute.name}' ({value}) exceeds the {patches} patches of a frame")


def _fits_buffer(instance: Any, attribute: attrs.Attribute[int], value: int) -> None:
    if value > instance.buffer_size:
        raise ValueError(
            f"'{attribute.name}' ({value}) exceeds 'buffer_size' ({instance.buffer_size}): "
            "no batch could ever be drawn"
        )


def _interval(low: float, high: float | None) -> Any:
    """Return a validator for a ``(lo, hi)`` pair with ``low < lo <= hi (<= high)``."""

    def check(instance: Any, attribute: attrs.Attribute[Any], value: tuple[float, float]) -> None:
        lo, hi = value
        if not (low < lo <= hi and (high is None or hi <= high)):
            upper = "" if high is None else f" <= {high}"
            raise ValueError(
                f"'{attribute.name}' must be [lo, hi] with {low} < lo <= hi{upper}: {list(value)}"
            )

    return check


@attrs.frozen
class JEPAOptions:
    """Options of ``jepa``; the defaults are the reference's (pamiq-curiosity-exp).

    Attributes:
        input_size: Side of the square crop the frames are resized to (keeping their
            aspect ratio) and centre-cropped to.
        patch_size: Side of a patch; ``input_size / patch_size`` patches per side.
        width: Width of the context and target encoders.
        depth: Transformer layers of the encoders.
        heads: Attention heads of the encoders.
        predictor_width: Width of the predictor.
        predictor_depth: Transformer layers of the predictor.
        predictor_heads: Attention heads of the predictor.
        output_width: Width of the encoders' output and of each output token.
        pool_size: Side of the average pooling over the patch grid that makes the
            output tokens: ``(input_size / patch_size / pool_size)^2`` tokens.
        mask_blocks: Rectangular blocks masked per frame (their union is hidden
            from the context encoder; one of them is the predictor's target).
        mask_scale: Range of the fraction of the patches each block covers.
        mask_aspect_ratio: Range of a block's width/height ratio.
        min_patches: Fewest patches per block, and fewest patches left visible.
        buffer_size: Frames kept for training.
        survival_frames: Expected number of frames a stored frame survives once the
            buffer is full; sets the replacement probability (0.097 by default).
        train_every: New frames per training epoch.
        batch_size: Frames per optimiser step (the last incomplete batch is dropped).
        max_epochs_per_update: Most epochs one ``update()`` runs; a larger backlog of
            new frames is dropped rather than trained on late.
        lr: AdamW learning rate of the context encoder and the predictor.
        weight_decay: AdamW weight decay.
        ema: Momentum of the target encoder after every optimiser step.
        precision: Autocast dtype on CUDA (``"bf16"``, ``"fp16"``) or ``"fp32"``;
            always float32 on CPU.
    """

    input_size: int = attrs.field(default=144, validator=_POSITIVE)
    patch_size: int = attrs.field(default=12, validator=[_POSITIVE, _divides("input_size")])
    width: int = attrs.field(default=432, validator=[_POSITIVE, _multiple_of_four])
    depth: int = attrs.field(default=6, validator=_POSITIVE)
    heads: int = attrs.field(default=3, validator=[_POSITIVE, _divides("width")])
    predictor_width: int = attrs.field(default=216, validator=[_POSITIVE, _multiple_of_four])
    predictor_depth: int = attrs.field(default=6, validator=_POSITIVE)
    predictor_heads: int = attrs.field(
        default=1, validator=[_POSITIVE, _divides("predictor_width")]
    )
    output_width: int = attrs.field(default=128, validator=_POSITIVE)
    pool_size: int = attrs.field(default=3, validator=[_POSITIVE, _grid_divides])
    mask_blocks: int = attrs.field(default=4, validator=_POSITIVE)
    mask_scale: tuple[float, float] = attrs.field(
        default=(0.025, 0.125), validator=_interval(0.0, 1.0)
    )
    mask_aspect_ratio: tuple[float, float] = attrs.field(
        default=(0.75, 1.5), validator=_interval(0.0, None)
    )
    min_patches: int = attrs.field(default=7, validator=[_POSITIVE, _fits_grid])
    buffer_size: int = attrs.field(default=512, validator=_POSITIVE)
    survival_frames: int = attrs.field(default=36_000, validator=_POSITIVE)
    train_every: int = attrs.field(default=128, validator=_POSITIVE)
    batch_size: int = attrs.field(default=32, validator=[_POSITIVE, _fits_buffer])
    max_epochs_per_update: int = attrs.field(default=8, validator=_POSITIVE)
    lr: float = attrs.field(default=1e-4, validator=attrs.validators.gt(0.0))
    weight_decay: float = attrs.field(default=0.01, validator=attrs.validators.ge(0.0))
    ema: float = attrs.field(
        default=0.996, validator=[attrs.validators.ge(0.0), attrs.validators.le(1.0)]
    )
    precision: Literal["fp32", "bf16", "fp16"] = attrs.field(
        default="fp32", validator=attrs.validators.in_(("fp32", "bf16", "fp16"))
    )

    @classmethod
    def small(cls, **changes: Any) -> JEPAOptions:
        """Return the small configuration (64x64 input, 8x8 patches, width 96, depth 2).

        It keeps the reference's ``(16, 128)`` output and its schedule, and trains
        at a useful rate on a 2-core CPU (README: "The small configuration").

        Args:
            changes: Options to change on top of the small configuration.
        """
        return attrs.evolve(cls(), **{**SMALL, **changes})


SMALL: dict[str, Any] = {
    "input_size": 64,
    "patch_size": 8,
    "width": 96,
    "depth": 2,
    "heads": 3,
    "predictor_width": 48,
    "predictor_depth": 2,
    "predictor_heads": 1,
    "pool_size": 2,
}
"""The options :meth:`JEPAOptions.small` changes from the reference's."""


class JEPAPlugin(RepresentationPlugin):
    """Online I-JEPA image encoder: (16, 128) tokens from an EMA target encoder it trains."""

    name = "jepa"
    Options = JEPAOptions

    def build(
        self, options: JEPAOptions, context: BuildContext, observation_spec: ObservationSpec
    ) -> JEPARepresentation:
        """Build the encoders, the predictor, the optimiser and the buffer on ``context.device``.

        Args:
            options: The plugin's options.
            context: Device and seed (initial weights, masks and buffer draws derive
                their own generators from it).
            observation_spec: The world's raw observations; must be images.

        Returns:
            The stage.

        Raises:
            PluginError: When the world does not observe images.
        """
        if observation_spec.kind != "image" or len(observation_spec.shape) != 3:
            raise PluginError(
                f"the 'jepa' representation encodes images (H, W, C); this world observes "
                f"{observation_spec.kind} of shape {observation_spec.shape}"
            )
        from pamiqx_jepa.representation import JEPARepresentation

        return JEPARepresentation(options, observation_spec, context)


@hookimpl
def pamiqx_register_representations() -> list[type[RepresentationPlugin]]:
    """Return the ``jepa`` representation."""
    return [JEPAPlugin]
