"""Built-in recurrent-core policy models (``qlstm``, ``qgru``, ``ttt``).

Each builds a :class:`pamiqx.models.core_policy.CorePolicy` around the
``[models.encoder]`` it is given. Sizes start from a preset (``small``, for a
CPU, or ``reference``, the reference experiments' cores) and any size set in
the table overrides the preset's. Nothing here imports torch until a model is built.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, ClassVar, Literal

import attrs

from pamiqx.api import ActionSpec, BuildContext, ModelPlugin, ObservationSpec
from pamiqx.api.cores.sizes import REFERENCE_SIZES, SMALL_SIZES, CoreKind, CoreSizes
from pamiqx.api.errors import PluginError
from pamiqx.api.hooks import hookimpl

if TYPE_CHECKING:
    import torch

_positive_int = attrs.validators.optional(attrs.validators.gt(0))
_positive = attrs.validators.optional(attrs.validators.gt(0.0))
_dropout = attrs.validators.optional([attrs.validators.ge(0.0), attrs.validators.lt(1.0)])


def _base_lr(
    instance: object, attribute: attrs.Attribute[Any], value: tuple[float, float] | None
) -> None:
    if value is not None and not 0 < value[0] <= value[1] <= 1:
        raise ValueError(f"must be [low, high] with 0 < low <= high <= 1, got {list(value)}")


@attrs.frozen
class CoreOptions:
    """Options of ``qlstm`` and ``qgru`` (sizes left out come from ``preset``).

    Attributes:
        preset: ``small`` (2 blocks of width 128, no dropout) or ``reference``
            (8 blocks of width 1024, feed-forward x4, dropout 0.1).
        depth: Number of blocks.
        width: Width of the blocks.
        ff_ratio: Hidden width of each SwiGLU feed-forward over the width.
        dropout: Dropout rate of models that train with it; the policy never applies it.
    """

    preset: Literal["small", "reference"] = "small"
    depth: int | None = attrs.field(default=None, validator=_positive_int)
    width: int | None = attrs.field(default=None, validator=_positive_int)
    ff_ratio: float | None = attrs.field(default=None, validator=_positive)
    dropout: float | None = attrs.field(default=None, validator=_dropout)

    def sizes(self, kind: CoreKind) -> CoreSizes:
        """Return the preset's sizes with the ones set here in their place."""
        base = SMALL_SIZES if self.preset == "small" else REFERENCE_SIZES[kind]
        fields = attrs.fields_dict(CoreSizes)
        chosen = {
            name: value
            for name, value in attrs.asdict(self).items()
            if name in fields and value is not None
        }
        return attrs.evolve(base, **chosen)


@attrs.frozen
class TTTOptions(CoreOptions):
    """Options of ``ttt`` (sizes left out come from ``preset``).

    Attributes:
        preset: ``small`` (2 blocks of width 128, 4 heads, chunk 16) or ``reference``
            (16 blocks of width 1024, 32 heads, fast MLP x4, chunk 64, dropout 0.1).
        heads: Heads of each TTT layer (must divide the width).
        inner_ratio: Hidden width of a head's fast MLP over the head width.
        chunk: Steps per chunkwise inner update.
        base_lr: ``[low, high]``: the heads' initial inner learning rates, log-spaced.
    """

    heads: int | None = attrs.field(default=None, validator=_positive_int)
    inner_ratio: float | None = attrs.field(default=None, validator=_positive)
    chunk: int | None = attrs.field(default=None, validator=_positive_int)
    base_lr: tuple[float, float] | None = attrs.field(default=None, validator=_base_lr)


class _CorePolicyPlugin(ModelPlugin):
    """Builds a :class:`CorePolicy` of this plugin's core kind around the encoder."""

    core: ClassVar[CoreKind]

    def build(
        self,
        options: CoreOptions,
        context: BuildContext,
        observation_spec: ObservationSpec,
        action_spec: ActionSpec,
        built: Mapping[str, torch.nn.Module],
    ) -> torch.nn.Module:
        """Build the policy around the already-built ``encoder``."""
        from pamiqx.api.cores import RecurrentStack
        from pamiqx.models.core_policy import CorePolicy

        encoder = built.get("encoder")
        if encoder is None:
            raise PluginError(f"{self.name}: needs [models.encoder] to be built first.")
        sizes = options.sizes(self.core)
        if self.core == "ttt" and sizes.width % sizes.heads:
            raise PluginError(
                f"ttt: width {sizes.width} must be divisible by heads {sizes.heads}; "
                "set [models.policy] width or heads."
            )
        feature_dim = getattr(encoder, "feature_dim", None)
        if not isinstance(feature_dim, int):
            raise PluginError(f"{self.name}: the encoder must have an integer feature_dim.")
        core = RecurrentStack(self.core, feature_dim, sizes)
        return CorePolicy(encoder, core, (action_spec.kind, action_spec.nvec))


class QLSTMPlugin(_CorePolicyPlugin):
    """Policy with a QLSTM core (input-gated LSTM computed by a parallel scan)."""

    name = "qlstm"
    core = "qlstm"
    Options = CoreOptions


class QGRUPlugin(_CorePolicyPlugin):
    """Policy with a QGRU core (input-gated GRU computed by a parallel scan)."""

    name = "qgru"
    core = "qgru"
    Options = CoreOptions


class TTTPlugin(_CorePolicyPlugin):
    """Policy with a TTT core (multi-head MLP fast weights updated chunkwise)."""

    name = "ttt"
    core = "ttt"
    Options = TTTOptions


@hookimpl
def pamiqx_register_models() -> list[type[ModelPlugin]]:
    """Return the recurrent-core policy models."""
    return [QLSTMPlugin, QGRUPlugin, TTTPlugin]
