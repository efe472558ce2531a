"""Representation plugins: the stage that turns a raw observation into what everyone else sees.

Every observation a world produces goes through the run's representation once,
on the acting path; the policy, the curiosity, the rollout and the checkpoints
all hold its output (the *latent*), never the raw frame. The stage declares the
latent's :class:`~pamiqx.api.ObservationSpec` (an image, a vector, or
``kind = "tokens"``: ``(N, D)`` float32 tokens), and the models and mechanisms
are built for that spec.

A representation may train itself on its own objective (I-JEPA, an
autoencoder...): the host offers it each new raw frame with :meth:`observe`
and calls :meth:`update` in the training phase of lock-step runs and in the
training thread of real-time runs; the representation decides from its own
counters whether a training call is due. No policy or curiosity gradient
reaches it: :meth:`encode` runs under ``torch.inference_mode()``.

Threads. In lock-step runs every call comes from one thread. In real-time runs
:meth:`encode` and :meth:`observe` run in the inference thread (which keeps the
world's control rate) while :meth:`update` runs in the training thread *at the
same time*; :meth:`state_dict` runs while both are paused. A representation that
trains therefore encodes with an inference copy of its weights and copies the
trained weights into it under a lock of its own, briefly, as
:class:`pamiqx.api.Curiosity` documents for mechanisms.
"""

from __future__ import annotations

import abc
from typing import TYPE_CHECKING, Any, ClassVar

from pamiqx.api.plugin import BuildContext, ObservationSpec, Plugin, PluginKind

if TYPE_CHECKING:
    import torch


class Representation(abc.ABC):
    """A built representation stage: encodes observations and (optionally) trains itself.

    Attributes:
        spec: What :meth:`encode` returns per observation: the observation spec the
            policy and the curiosity are built for.
    """

    spec: ObservationSpec

    @abc.abstractmethod
    def modules(self) -> dict[str, torch.nn.Module]:
        """Return the stage's modules by name (the host moves them to the device)."""

    @abc.abstractmethod
    def encode(self, observations: torch.Tensor) -> torch.Tensor:
        """Turn ``(B, *raw_shape)`` raw observations into ``(B, *spec.shape)`` latents.

        Called under ``torch.inference_mode()`` on the run's device, once per
        observation. For a fixed state the output must be a deterministic function
        of the input (no dropout, no sampling): rollouts, checkpoints and the
        curiosity's targets rely on it.

        Args:
            observations: Raw observations as the world produced them (uint8 images
                ``(B, H, W, C)`` or float32 vectors), on the run's device.

        Returns:
            Latents of ``spec.shape`` and ``spec.dtype``, on the same device.
        """

    def observe(self, observations: torch.Tensor) -> None:  # noqa: B027 - optional hook
        """Offer new raw observations ``(B, *raw_shape)`` (CPU) to the stage's own buffer.

        Called once per new observation, right after :meth:`encode`, in the acting
        thread: keep it cheap (store, do not train). The default keeps nothing.
        """

    def update(self) -> dict[str, float]:
        """Train on the stage's own schedule when a training call is due.

        Returns:
            Metrics of the training done (logged under ``representation/``), or an
            empty dict when nothing was due.
        """
        return {}

    def state_dict(self) -> dict[str, Any]:
        """Return everything needed to resume exactly (weights, optimiser, buffer, counters)."""
        return {name: module.state_dict() for name, module in self.modules().items()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what :meth:`state_dict` returned."""
        for name, module in self.modules().items():
            module.load_state_dict(state[name])


class RepresentationPlugin(Plugin, abc.ABC):
    """A representation plugin builds a :class:`Representation` for the world's raw observations."""

    kind: ClassVar[PluginKind] = "representation"

    @abc.abstractmethod
    def build(
        self, options: Any, context: BuildContext, observation_spec: ObservationSpec
    ) -> Representation:
        """Build the stage on ``context.device``.

        Args:
            options: An instance of the plugin's ``Options`` class.
            context: Seed, device, run directory and number of worlds.
            observation_spec: The world's raw observations.

        Returns:
            The stage, whose ``spec`` describes its output.
        """
