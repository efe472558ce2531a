"""Mechanisms whose curiosity lives inside the acting network (``unified``, ``ttt``, ...).

Such a mechanism hands the host its network through
:meth:`~pamiqx.api.Curiosity.policy_network`. The host acts with it, takes the
intrinsic reward it scores at each step (:attr:`~pamiqx.api.PolicyStep.intrinsic`)
and trains it with PPO plus the prediction loss it returns
(:attr:`~pamiqx.api.PolicyStep.aux_loss`): one trainer for the whole network.
:class:`OwnedPolicyCuriosity` is the :class:`~pamiqx.api.Curiosity` side of that:
rewards travel with the transitions, and :meth:`agent_step` scores observations
with the network on its own (for the contract checks and for scoring recorded
sequences outside a run).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar, Literal

import torch
from torch import Tensor, nn

from pamiqx.api import Curiosity, PolicyNetwork, Transitions

# Internal actions feed only the network itself, so nothing but this clamp stops
# PPO's entropy bonus from widening their Gaussian forever.
INTERNAL_LOG_STD_RANGE = (-5.0, 0.5)


class OwnedPolicyCuriosity(Curiosity):
    """The curiosity side of a mechanism that owns the policy network.

    Attributes:
        network: The network (the host's policy for the whole run).
    """

    style: ClassVar[Literal["batch", "online"]] = "online"

    def __init__(self, network: PolicyNetwork, device: str) -> None:
        """Move the network to ``device``."""
        self.device = torch.device(device)
        self.network = network.to(self.device)
        # The state of standalone scoring (agent_step); the host keeps its own.
        self._hidden: Tensor | None = None
        self._internal: Tensor | None = None

    def policy_network(self, built: Mapping[str, nn.Module]) -> PolicyNetwork:
        """Return the network the host acts with and trains."""
        return self.network

    def modules(self) -> dict[str, nn.Module]:
        """Return nothing: the host moves and saves the network as the policy."""
        return {}

    def rewards(self, batch: Transitions) -> Tensor:
        """Return the rewards the network scored while acting."""
        if batch.intrinsic is None:
            return torch.zeros(batch.shape, device=batch.dones.device)
        return batch.intrinsic.detach().float()

    def update(self, batch: Transitions) -> dict[str, float]:
        """Train nothing here: the host's PPO step trains the network with its prediction loss."""
        return {}

    @torch.no_grad()
    def agent_step(
        self, observation: Tensor, action: Tensor | None, episode_start: Tensor
    ) -> Tensor | None:
        """Score an arriving observation with the network alone (internal actions at their mean).

        Returns:
            ``(E,)`` reward of the transition into ``observation``; None on the first step.
        """
        envs = observation.shape[0]
        first = self._hidden is None or self._hidden.shape[0] != envs or action is None
        if first:
            hidden = self.network.initial_state(envs, observation.device)
        else:
            assert self._hidden is not None
            hidden = self.network.fold_action(self._hidden, action, self._internal)  # type: ignore[arg-type]
        out = self.network(observation, hidden, reset=episode_start)
        self._hidden = out.hidden
        self._internal = None if out.internal is None else out.internal.mean
        return None if first else out.intrinsic

    def state_dict(self) -> dict[str, Any]:
        """Return the network's weights and the standalone scoring state."""
        return {
            "network": self.network.state_dict(),
            "hidden": None if self._hidden is None else self._hidden.clone(),
            "internal": None if self._internal is None else self._internal.clone(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state_dict`."""
        self.network.load_state_dict(state["network"])
        hidden, internal = state["hidden"], state["internal"]
        self._hidden = None if hidden is None else hidden.to(self.device)
        self._internal = None if internal is None else internal.to(self.device)


class StateLayout:
    """Named slices of a flat ``(B, width)`` recurrent state.

    Attributes:
        width: Total width.
    """

    def __init__(self, widths: dict[str, int]) -> None:
        """Lay the named parts out in the given order."""
        self._slices: dict[str, slice] = {}
        offset = 0
        for name, width in widths.items():
            self._slices[name] = slice(offset, offset + width)
            offset += width
        self.width = offset

    def slice(self, name: str) -> slice:
        """Return the columns of part ``name``."""
        return self._slices[name]

    def split(self, state: Tensor) -> dict[str, Tensor]:
        """Return each part of ``state`` by name (views)."""
        return {name: state[:, part] for name, part in self._slices.items()}

    def join(self, parts: dict[str, Tensor]) -> Tensor:
        """Concatenate parts (every name, in layout order) into one state."""
        return torch.cat([parts[name] for name in self._slices], dim=-1)
