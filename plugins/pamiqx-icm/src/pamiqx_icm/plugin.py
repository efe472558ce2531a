"""Registers the ``icm`` curiosity; import-light (torch is imported inside ``build``)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import attrs

from pamiqx.api import ActionSpec, BuildContext, CuriosityPlugin, ObservationSpec, hookimpl

if TYPE_CHECKING:
    from pamiqx_icm.mechanism import ICM


@attrs.frozen
class ICMOptions:
    """Options of ``icm``.

    Attributes:
        eta: Reward scale η in ``r = (η/2) ||φ̂(o') - φ(o')||^2`` (0.01 in the paper).
        beta: Weight β of the forward loss in ``(1-β) L_inv + β L_fwd`` (0.2 in the paper).
        feature_dim: Size of the feature vector φ(o).
        lr: Adam learning rate of the encoder, inverse and forward models (1e-3 in the paper).
        epochs: Gradient steps on the whole batch per ``update()``.
    """

    eta: float = attrs.field(default=0.01, validator=attrs.validators.gt(0.0))
    beta: float = attrs.field(
        default=0.2, validator=[attrs.validators.ge(0.0), attrs.validators.le(1.0)]
    )
    feature_dim: int = attrs.field(default=256, validator=attrs.validators.gt(0))
    lr: float = attrs.field(default=1e-3, validator=attrs.validators.gt(0.0))
    epochs: int = attrs.field(default=1, validator=attrs.validators.ge(1))


class ICMPlugin(CuriosityPlugin):
    """Intrinsic curiosity module: reward = forward-model error in inverse-dynamics features."""

    name = "icm"
    Options = ICMOptions

    def build(
        self,
        options: ICMOptions,
        context: BuildContext,
        observation_spec: ObservationSpec,
        action_spec: ActionSpec,
    ) -> ICM:
        """Build the encoder, inverse and forward models and their optimizer on ``context.device``.

        Args:
            options: The plugin's options.
            context: Device (and seed; the networks draw from torch's global RNG,
                which the host has seeded).
            observation_spec: Images get a conv encoder, vectors an MLP.
            action_spec: Sizes the inverse model's logits and the forward model's one-hot input.

        Returns:
            The mechanism.
        """
        from pamiqx_icm.mechanism import ICM

        return ICM(options, observation_spec, action_spec, context.device)


@hookimpl
def pamiqx_register_curiosities() -> list[type[CuriosityPlugin]]:
    """Return the ``icm`` curiosity."""
    return [ICMPlugin]
