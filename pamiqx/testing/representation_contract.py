"""Contract checks every representation plugin runs in its own tests (see :mod:`pamiqx.testing`).

The checks drive a stage as the host does: a batch of raw observations is
encoded (under ``torch.inference_mode()``) and offered to the stage's buffer
with :meth:`Representation.observe`, and :meth:`Representation.update` is called
between batches; the stage decides when a training call is due. The frames are
the curiosity contract's smooth coloured frames (:mod:`pamiqx.testing.contract`).
"""

from __future__ import annotations

from typing import Any

import attrs
import torch

from pamiqx.api import BuildContext, ObservationSpec, Representation, RepresentationPlugin
from pamiqx.faults import PluginIdentity, check_latents
from pamiqx.testing.contract import _frames, _round_trip

_WHO = PluginIdentity("representation", "under test", "contract", "-")


@attrs.frozen
class RepresentationSetup:
    """How to build and feed the representation under test.

    Attributes:
        plugin: The representation plugin class.
        options: Its options (None: the defaults).
        observation_spec: Raw observations to feed.
        device: Device to build on.
        batch: Observations per :meth:`Representation.encode` call.
        frames: Distinct frames the observations cycle through.
        learns: Whether the stage trains itself (a frozen one reports no loss).
        rounds: Batches offered in the learning check (an ``update()`` after each).
    """

    plugin: type[RepresentationPlugin]
    options: Any = None
    observation_spec: ObservationSpec = attrs.field(
        factory=lambda: ObservationSpec((32, 32, 3), "uint8", "image")
    )
    device: str = "cpu"
    batch: int = 8
    frames: int = 16
    learns: bool = True
    rounds: int = 64

    def build(self, seed: int = 0) -> Representation:
        """Build a fresh stage for seed ``seed``."""
        torch.manual_seed(seed)
        options = self.options if self.options is not None else self.plugin.Options()
        context = BuildContext("contract", seed, self.device)
        return self.plugin().build(options, context, self.observation_spec)

    def observations(self, round_index: int) -> torch.Tensor:
        """Return the ``round_index``-th batch of raw observations (CPU)."""
        frames = _frames(self.observation_spec, self.frames)
        index = (torch.arange(self.batch) + round_index * self.batch) % self.frames
        return frames[index]


def _encode(setup: RepresentationSetup, stage: Representation, raw: torch.Tensor) -> torch.Tensor:
    with torch.inference_mode():
        latents = stage.encode(raw.to(setup.device))
    return check_latents(_WHO, stage.spec, latents, raw.shape[0]).detach().cpu().clone()


def _feed(setup: RepresentationSetup, stage: Representation, rounds: int) -> list[dict[str, float]]:
    """Encode and offer ``rounds`` batches, calling ``update()`` after each; return its metrics."""
    reported = []
    for round_index in range(rounds):
        raw = setup.observations(round_index)
        _encode(setup, stage, raw)
        stage.observe(raw)
        reported.append(dict(stage.update()))
    return reported


def check_latent_spec(setup: RepresentationSetup) -> None:
    """``encode`` returns ``(B, *spec.shape)`` of ``spec.dtype``, finite, for its declared spec."""
    stage = setup.build()
    assert isinstance(stage.spec, ObservationSpec), "spec must be a pamiqx.api.ObservationSpec"
    _encode(setup, stage, setup.observations(0))


def check_deterministic_encode(setup: RepresentationSetup) -> None:
    """For a fixed state, ``encode`` is a function of its input; one seed builds one stage."""
    stage = setup.build(seed=0)
    raw = setup.observations(0)
    first = _encode(setup, stage, raw)
    assert torch.equal(first, _encode(setup, stage, raw)), "encode() is not deterministic"
    again = _encode(setup, setup.build(seed=0), raw)
    assert torch.equal(first, again), "two stages built with one seed encode differently"


def check_representation_round_trip(setup: RepresentationSetup, rounds: int = 24) -> None:
    """A state saved, loaded with ``weights_only=True`` and restored continues identically.

    The restored stage must encode as the original does, and go on training exactly
    as the original (same buffer, counters, optimiser and random state).
    """
    original = setup.build(seed=0)
    _feed(setup, original, rounds)
    restored = setup.build(seed=1)
    restored.load_state_dict(_round_trip(original.state_dict()))
    raw = setup.observations(rounds)
    assert torch.equal(_encode(setup, original, raw), _encode(setup, restored, raw)), (
        "the restored stage encodes differently"
    )
    continued = [_feed(setup, stage, rounds) for stage in (original, restored)]
    assert continued[0] == continued[1], (
        f"the restored stage trains differently: {continued[0][-3:]} != {continued[1][-3:]}"
    )
    later = setup.observations(2 * rounds)
    assert torch.equal(_encode(setup, original, later), _encode(setup, restored, later)), (
        "after training on the same frames, the restored stage encodes differently"
    )


def check_training_lowers_loss(setup: RepresentationSetup) -> None:
    """A stage that learns reports ``loss`` and it falls; a frozen one never changes its output."""
    stage = setup.build()
    raw = setup.observations(0)
    before = _encode(setup, stage, raw)
    reported = _feed(setup, stage, setup.rounds)
    losses = [m["loss"] for m in reported if "loss" in m]
    if not setup.learns:
        assert not losses, f"a frozen stage reported training losses {losses[:3]}"
        assert torch.equal(before, _encode(setup, stage, raw)), "a frozen stage's output changed"
        return
    assert len(losses) >= 4, f"only {len(losses)} training calls in {setup.rounds} rounds"
    third = len(losses) // 3
    first, last = sum(losses[:third]) / third, sum(losses[-third:]) / third
    assert last < first, f"the loss did not fall: {first:.5g} -> {last:.5g} over {len(losses)}"


def check_representation_contract(setup: RepresentationSetup) -> None:
    """Run every representation contract check."""
    check_latent_spec(setup)
    check_deterministic_encode(setup)
    check_representation_round_trip(setup)
    check_training_lowers_loss(setup)
