"""The run's representation stage, called through the host's checks.

Every call into the representation plugin is made here: :meth:`Stage.encode`
(once per new observation, on the acting path), :meth:`Stage.update` (in the
training phase or thread) and its state. A representation that raises or
returns latents that break its declared spec stops the run with a
:class:`~pamiqx.faults.PluginFault` naming it.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt
import torch

from pamiqx.api.plugin import ObservationSpec
from pamiqx.api.representation import Representation
from pamiqx.faults import PluginIdentity, blame, check_latents, check_metrics

UNNAMED_REPRESENTATION = PluginIdentity("representation", "stage", "unregistered", "-")


class Stage:
    """Encodes raw observations once each and lets the representation train on them.

    Attributes:
        representation: The plugin's built stage.
        spec: What the policy, the curiosity and the rollout hold per observation.
    """

    def __init__(
        self,
        representation: Representation,
        device: torch.device,
        who: PluginIdentity = UNNAMED_REPRESENTATION,
    ) -> None:
        """Wrap a built representation running on ``device``."""
        self.representation = representation
        self.device = device
        self.who = who
        with blame(who, "spec"):
            spec = representation.spec
        if not isinstance(spec, ObservationSpec):
            raise who.fault("spec", f"is a {type(spec).__name__}, not a pamiqx.api.ObservationSpec")
        self.spec = spec

    def encode(self, observations: npt.NDArray[Any], offer: bool = True) -> torch.Tensor:
        """Encode ``(E, ...)`` raw observations, offer them to the stage's buffer, return latents.

        Args:
            observations: What the worlds observed.
            offer: Also offer them to the stage's buffer (:meth:`offer`); the acting
                process of a real-time run encodes without, the training side offers.

        Returns:
            ``(E, *spec.shape)`` latents on the CPU (the rollout's side).
        """
        raw = torch.from_numpy(np.ascontiguousarray(observations))
        with torch.inference_mode(), blame(self.who, "encode()"):
            latents = self.representation.encode(raw.to(self.device))
        checked = check_latents(self.who, self.spec, latents, raw.shape[0]).cpu()
        if offer:
            self.offer(observations)
        return checked

    def offer(self, observations: npt.NDArray[Any]) -> None:
        """Offer ``(E, ...)`` raw observations to the stage's training buffer."""
        raw = torch.from_numpy(np.ascontiguousarray(observations))
        with blame(self.who, "observe()"):
            self.representation.observe(raw)

    def update(self) -> dict[str, float]:
        """Let the representation train if a call is due; its metrics under ``representation/``."""
        with blame(self.who, "update()"):
            metrics = self.representation.update()
        checked = check_metrics(self.who, "update()", metrics)
        return {f"representation/{k}": v for k, v in checked.items()}

    def modules(self) -> dict[str, torch.nn.Module]:
        """Return the representation's modules."""
        with blame(self.who, "modules()"):
            return dict(self.representation.modules())

    def state_dict(self) -> dict[str, Any]:
        """Return the representation's state."""
        with blame(self.who, "state_dict()"):
            return self.representation.state_dict()

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state_dict`."""
        self.representation.load_state_dict(state)
