"""Registers the ``rnd`` curiosity; import-light (torch is imported inside ``build``)."""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

import attrs

from pamiqx.api import (
    ActionSpec,
    BuildContext,
    CuriosityPlugin,
    IntRange,
    LogUniform,
    ObservationSpec,
    SearchSpace,
    Uniform,
    hookimpl,
)

if TYPE_CHECKING:
    from pamiqx_rnd.mechanism import RND


@attrs.frozen
class RNDOptions:
    """Options of ``rnd``.

    Attributes:
        feature_dim: Output size of the target and predictor networks.
        lr: Adam learning rate of the predictor (1e-4 in the paper).
        update_proportion: Fraction of each batch the predictor trains on, drawn
            afresh for every gradient step (0.25 in the paper).
        epochs: Gradient steps per ``update()``, each on a new random fraction.
        obs_clip: Whitened observations are clipped to ``[-obs_clip, obs_clip]``.
    """

    # What `pamiqx tune` searches: the predictor's step size and how hard it trains.
    search_space: ClassVar[SearchSpace] = {
        "lr": LogUniform(1e-5, 1e-3),
        "epochs": IntRange(1, 8),
        "update_proportion": Uniform(0.1, 1.0),
    }
    feature_dim: int = attrs.field(default=128, validator=attrs.validators.gt(0))
    lr: float = attrs.field(default=1e-4, validator=attrs.validators.gt(0.0))
    update_proportion: float = attrs.field(
        default=0.25, validator=[attrs.validators.gt(0.0), attrs.validators.le(1.0)]
    )
    epochs: int = attrs.field(default=1, validator=attrs.validators.ge(1))
    obs_clip: float = attrs.field(default=5.0, validator=attrs.validators.gt(0.0))


class RNDPlugin(CuriosityPlugin):
    """Random network distillation: reward = error of a predictor distilling a random network."""

    name = "rnd"
    Options = RNDOptions

    def build(
        self,
        options: RNDOptions,
        context: BuildContext,
        observation_spec: ObservationSpec,
        action_spec: ActionSpec,
    ) -> RND:
        """Build the target, the predictor and its optimizer on ``context.device``.

        Args:
            options: The plugin's options.
            context: Device (and seed; the networks draw from torch's global RNG,
                which the host has seeded).
            observation_spec: Images get conv networks, vectors get MLPs.
            action_spec: Unused: RND scores observations only.

        Returns:
            The mechanism.
        """
        from pamiqx_rnd.mechanism import RND

        return RND(options, observation_spec, context.device)


@hookimpl
def pamiqx_register_curiosities() -> list[type[CuriosityPlugin]]:
    """Return the ``rnd`` curiosity."""
    return [RNDPlugin]
