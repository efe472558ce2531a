"""Registers the ``disagreement`` curiosity; import-light (torch is imported inside ``build``)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

import attrs

from pamiqx.api import ActionSpec, BuildContext, CuriosityPlugin, ObservationSpec, hookimpl

if TYPE_CHECKING:
    from pamiqx_disagreement.mechanism import Disagreement


@attrs.frozen
class DisagreementOptions:
    """Options of ``disagreement``.

    Attributes:
        ensemble_size: Number N of forward models (5 in the paper).
        features: Feature space of the forward models; ``"random"``: a fixed,
            randomly initialised encoder (the paper's random-features variant).
        feature_dim: Size of the feature vector the models predict.
        lr: Adam learning rate of the forward models.
        epochs: Gradient steps per ``update()``, each on a new bootstrap per model.
    """

    ensemble_size: int = attrs.field(default=5, validator=attrs.validators.ge(2))
    features: Literal["random"] = "random"
    feature_dim: int = attrs.field(default=128, validator=attrs.validators.gt(0))
    lr: float = attrs.field(default=1e-3, validator=attrs.validators.gt(0.0))
    epochs: int = attrs.field(default=1, validator=attrs.validators.ge(1))


class DisagreementPlugin(CuriosityPlugin):
    """Ensemble disagreement: reward = variance of N forward models' next-feature predictions."""

    name = "disagreement"
    Options = DisagreementOptions

    def build(
        self,
        options: DisagreementOptions,
        context: BuildContext,
        observation_spec: ObservationSpec,
        action_spec: ActionSpec,
    ) -> Disagreement:
        """Build the feature encoder, the ensemble and its optimizer on ``context.device``.

        Args:
            options: The plugin's options.
            context: Device (and seed; the networks and bootstraps draw from torch's
                global RNG, which the host has seeded).
            observation_spec: Images get a conv encoder, vectors an MLP.
            action_spec: Sizes the forward models' one-hot action input.

        Returns:
            The mechanism.
        """
        from pamiqx_disagreement.mechanism import Disagreement

        return Disagreement(options, observation_spec, action_spec, context.device)


@hookimpl
def pamiqx_register_curiosities() -> list[type[CuriosityPlugin]]:
    """Return the ``disagreement`` curiosity."""
    return [DisagreementPlugin]
