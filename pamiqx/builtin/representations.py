"""Built-in representations: ``pixels`` (the identity) and ``random`` (frozen random features).

``pixels`` is the default: the policy and the curiosity see what the world
observes, as before the representation stage existed. ``random`` is the
frozen random-feature encoder the forward-dynamics mechanisms used to build
each for themselves, now one stage that the policy and the curiosity share.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import attrs

from pamiqx.api import BuildContext, ObservationSpec, Representation, RepresentationPlugin
from pamiqx.api.hooks import hookimpl

if TYPE_CHECKING:
    import torch

_positive = attrs.validators.gt(0)
_channels: Any = attrs.validators.deep_iterable(_positive, attrs.validators.min_len(1))
# The random stage draws its weights from its own generator, apart from the models'.
_RANDOM_STREAM = 0x5EED_0F_1A7E


class PixelsRepresentation(Representation):
    """The identity: everyone sees the world's own observations."""

    def __init__(self, spec: ObservationSpec) -> None:
        """Pass observations of ``spec`` through unchanged."""
        self.spec = spec

    def modules(self) -> dict[str, torch.nn.Module]:
        """Return no modules: nothing is learnt or saved."""
        return {}

    def encode(self, observations: torch.Tensor) -> torch.Tensor:
        """Return the observations themselves."""
        return observations


class PixelsPlugin(RepresentationPlugin):
    """The world's observations as they are (the default representation)."""

    name = "pixels"

    def build(
        self, options: object, context: BuildContext, observation_spec: ObservationSpec
    ) -> Representation:
        """Build the identity stage."""
        return PixelsRepresentation(observation_spec)


@attrs.frozen
class RandomOptions:
    """Options of ``random``.

    Attributes:
        latent_dim: Size of the latent vector.
        channels: Channels of the random convolutions (images).
        hidden: Width of the random MLP's hidden layer (vectors and tokens).
    """

    latent_dim: int = attrs.field(default=128, validator=_positive)
    channels: tuple[int, ...] = attrs.field(default=(32, 64, 64), validator=_channels)
    hidden: int = attrs.field(default=256, validator=_positive)


class RandomRepresentation(Representation):
    """A frozen random encoder; its weights are saved so a resumed run keeps the same features."""

    def __init__(self, encoder: torch.nn.Module, latent_dim: int) -> None:
        """Wrap a built :class:`~pamiqx.models.random_encoder.RandomEncoder`."""
        self.encoder = encoder
        self.spec = ObservationSpec((latent_dim,), "float32", "vector")

    def modules(self) -> dict[str, torch.nn.Module]:
        """Return the encoder."""
        return {"encoder": self.encoder}

    def encode(self, observations: torch.Tensor) -> torch.Tensor:
        """Return ``(B, latent_dim)`` layer-normed random features."""
        latent: torch.Tensor = self.encoder(observations)
        return latent


class RandomPlugin(RepresentationPlugin):
    """Frozen random features (conv for images, MLP for vectors), layer-normed; never trains."""

    name = "random"
    Options = RandomOptions

    def build(
        self, options: RandomOptions, context: BuildContext, observation_spec: ObservationSpec
    ) -> Representation:
        """Draw the encoder from a generator seeded with the experiment's seed."""
        import torch

        from pamiqx.models.random_encoder import RandomEncoder

        generator = torch.Generator().manual_seed(context.seed ^ _RANDOM_STREAM)
        encoder = RandomEncoder(
            observation_spec, options.latent_dim, options.channels, options.hidden, generator
        )
        return RandomRepresentation(encoder.to(context.device), options.latent_dim)


@hookimpl
def pamiqx_register_representations() -> list[type[RepresentationPlugin]]:
    """Return the built-in representations."""
    return [PixelsPlugin, RandomPlugin]
