"""The declared plugin API of pamiqx: everything a plugin distribution may import.

A plugin imports from ``pamiqx.api`` and nothing else of pamiqx; every other
module of pamiqx is the host's and may change in any release. The API has a
version, :data:`API_VERSION`: a plugin declares the pamiqx range it was written
for in its distribution's dependencies (``pamiqx>=0.2,<0.3``), and the host
lists a plugin whose range excludes it as a load failure instead of importing it.

What is here:

* hooks: :data:`hookimpl` and the hook specifications (:mod:`pamiqx.api.hooks`);
* plugin classes: :class:`Plugin`, :class:`EnvironmentPlugin`,
  :class:`RepresentationPlugin`, :class:`ModelPlugin`, :class:`CuriosityPlugin`,
  and what they build, :class:`Environment`, :class:`Representation` and
  :class:`Curiosity`;
* what a run exchanges with them: :class:`BuildContext`, :class:`ObservationSpec`,
  :class:`ActionSpec`, :class:`EnvStep`, :class:`Transitions`;
* the policy contract of PPO: :class:`PolicyNetwork`, :class:`PolicyStep` and its
  heads (:class:`ActionDistribution`, :class:`DiscreteHead`,
  :class:`MultiDiscreteHead`, :class:`ValueHeads`);
* the reference's recurrent cores (:class:`RecurrentStack` of QLSTM, QGRU or TTT
  blocks over :func:`linear_scan`, :class:`CoreSizes` and :data:`REFERENCE_SIZES`);
* shared building blocks: :func:`conv_trunk`, :class:`ConvEncoder`,
  :class:`MLPEncoder`, :class:`TokenEncoder`, :func:`orthogonal_init`, :func:`one_hot_actions`,
  :class:`RunningMeanStd`, :class:`ObservationNormalizer`, the locomotion action
  layout;
* search spaces a plugin declares for its options (:class:`Uniform`,
  :class:`LogUniform`, :class:`IntRange`, :class:`Choice`; read by ``pamiqx tune``);
* errors a plugin raises for problems its user can fix
  (:class:`EnvironmentUnavailableError`, :class:`PluginError`).

Importing this package is cheap: the torch building blocks are imported on
first use, so registration modules (imported by ``pamiqx list-plugins``) stay
fast. Plugin tests use :mod:`pamiqx.testing`.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from pamiqx.api.curiosity import Curiosity, CuriosityPlugin, Transitions
from pamiqx.api.environment import (
    DISCRETE_ACTIONS,
    MULTI_DISCRETE_NAMES,
    MULTI_DISCRETE_NVEC,
    Environment,
    EnvironmentPlugin,
    EnvStep,
    locomotion_action_spec,
)
from pamiqx.api.errors import EnvironmentUnavailableError, PamiqxError, PluginError
from pamiqx.api.hooks import hookimpl
from pamiqx.api.model import ModelPlugin
from pamiqx.api.plugin import (
    PLUGIN_KINDS,
    ActionSpec,
    BuildContext,
    NoOptions,
    ObservationSpec,
    Plugin,
    PluginKind,
)
from pamiqx.api.representation import Representation, RepresentationPlugin
from pamiqx.api.search import (
    Choice,
    IntRange,
    LogUniform,
    SearchDomain,
    SearchSpace,
    Uniform,
    search_space_of,
)

if TYPE_CHECKING:
    from pamiqx.api.cores import REFERENCE_SIZES, CoreSizes, RecurrentStack, TTTLayer, linear_scan
    from pamiqx.api.cores.layers import RMSNorm, SwiGLU
    from pamiqx.api.layers import (
        ConvEncoder,
        MLPEncoder,
        TokenEncoder,
        conv_trunk,
        image_batch,
        one_hot_actions,
        one_hot_width,
        orthogonal_init,
    )
    from pamiqx.api.policy import (
        ActionDistribution,
        DiscreteHead,
        MultiDiscreteHead,
        PolicyNetwork,
        PolicyStep,
        ValueHeads,
    )
    from pamiqx.api.statistics import ObservationNormalizer, RunningMeanStd

API_VERSION = "0.2"
"""The version of this API: a plugin written for 0.2 runs on every pamiqx 0.2.x."""

# Names whose modules import torch: loaded on first access (PEP 562).
_LAZY: dict[str, str] = {
    "ConvEncoder": "pamiqx.api.layers",
    "MLPEncoder": "pamiqx.api.layers",
    "TokenEncoder": "pamiqx.api.layers",
    "conv_trunk": "pamiqx.api.layers",
    "image_batch": "pamiqx.api.layers",
    "one_hot_actions": "pamiqx.api.layers",
    "one_hot_width": "pamiqx.api.layers",
    "orthogonal_init": "pamiqx.api.layers",
    "ActionDistribution": "pamiqx.api.policy",
    "DiscreteHead": "pamiqx.api.policy",
    "MultiDiscreteHead": "pamiqx.api.policy",
    "PolicyNetwork": "pamiqx.api.policy",
    "PolicyStep": "pamiqx.api.policy",
    "ValueHeads": "pamiqx.api.policy",
    "RecurrentStack": "pamiqx.api.cores",
    "CoreSizes": "pamiqx.api.cores",
    "REFERENCE_SIZES": "pamiqx.api.cores",
    "TTTLayer": "pamiqx.api.cores",
    "linear_scan": "pamiqx.api.cores",
    "RMSNorm": "pamiqx.api.cores.layers",
    "SwiGLU": "pamiqx.api.cores.layers",
    "ObservationNormalizer": "pamiqx.api.statistics",
    "RunningMeanStd": "pamiqx.api.statistics",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'pamiqx.api' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


__all__ = [
    "API_VERSION",
    "DISCRETE_ACTIONS",
    "MULTI_DISCRETE_NAMES",
    "MULTI_DISCRETE_NVEC",
    "PLUGIN_KINDS",
    "REFERENCE_SIZES",
    "ActionDistribution",
    "ActionSpec",
    "BuildContext",
    "Choice",
    "ConvEncoder",
    "CoreSizes",
    "Curiosity",
    "CuriosityPlugin",
    "DiscreteHead",
    "EnvStep",
    "Environment",
    "EnvironmentPlugin",
    "EnvironmentUnavailableError",
    "IntRange",
    "LogUniform",
    "MLPEncoder",
    "ModelPlugin",
    "MultiDiscreteHead",
    "NoOptions",
    "ObservationNormalizer",
    "ObservationSpec",
    "PamiqxError",
    "Plugin",
    "PluginError",
    "PluginKind",
    "PolicyNetwork",
    "PolicyStep",
    "RMSNorm",
    "RecurrentStack",
    "Representation",
    "RepresentationPlugin",
    "RunningMeanStd",
    "SearchDomain",
    "SearchSpace",
    "SwiGLU",
    "TTTLayer",
    "TokenEncoder",
    "Transitions",
    "Uniform",
    "ValueHeads",
    "conv_trunk",
    "hookimpl",
    "image_batch",
    "linear_scan",
    "locomotion_action_spec",
    "one_hot_actions",
    "one_hot_width",
    "orthogonal_init",
    "search_space_of",
]
