"""Model plugins: torch modules the host builds for a role (``encoder``, ``policy``, ...)."""

from __future__ import annotations

import abc
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, ClassVar

from pamiqx.api.plugin import ActionSpec, BuildContext, ObservationSpec, Plugin, PluginKind

if TYPE_CHECKING:
    import torch


class ModelPlugin(Plugin, abc.ABC):
    """A model plugin builds a torch module sized from the environment's specs."""

    kind: ClassVar[PluginKind] = "model"

    @abc.abstractmethod
    def build(
        self,
        options: Any,
        context: BuildContext,
        observation_spec: ObservationSpec,
        action_spec: ActionSpec,
        built: Mapping[str, torch.nn.Module],
    ) -> torch.nn.Module:
        """Build the module.

        Args:
            options: An instance of the plugin's ``Options`` class.
            context: Seed, device and run directory.
            observation_spec: What the environment observes.
            action_spec: The environment's action space.
            built: Modules of the roles built before this one, by role (the
                ``encoder`` is built first, then ``policy``, then the others).

        Returns:
            The module; the host moves it to ``context.device``.
        """
