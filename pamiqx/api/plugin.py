"""The plugin base class, the kinds of plugins and the specs a host and its plugins exchange.

Importing this module must stay cheap (no torch): ``pamiqx list-plugins`` and
``pamiqx validate`` import every registration module.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar, Literal

import attrs

PluginKind = Literal["environment", "representation", "model", "curiosity"]
PLUGIN_KINDS: tuple[PluginKind, ...] = ("environment", "representation", "model", "curiosity")


@attrs.frozen
class NoOptions:
    """Options of a plugin that takes none."""


class Plugin:
    """Base of every plugin class.

    Attributes:
        kind: Which registry the plugin belongs to.
        name: The name experiment files use in ``plugin = "..."``.
        Options: attrs class validating the plugin's table in the experiment file.
    """

    kind: ClassVar[PluginKind]
    name: ClassVar[str]
    Options: ClassVar[type[Any]] = NoOptions

    @classmethod
    def summary(cls) -> str:
        """Return the first line of the plugin's docstring."""
        doc = (cls.__doc__ or "").strip()
        return doc.splitlines()[0] if doc else ""


@attrs.frozen
class ObservationSpec:
    """Shape and type of what an environment observes, or of a representation's latent.

    Attributes:
        shape: ``(H, W, C)`` for images, ``(D,)`` for vectors, ``(N, D)`` for tokens.
        dtype: ``"uint8"`` for images, ``"float32"`` for vectors and tokens.
        kind: ``"image"``, ``"vector"``, or ``"tokens"`` (``N`` latent tokens of
            width ``D``, e.g. the ``(16, 128)`` output of the ``jepa`` representation).
    """

    shape: tuple[int, ...]
    dtype: Literal["uint8", "float32"]
    kind: Literal["image", "vector", "tokens"]


@attrs.frozen
class ActionSpec:
    """The action space: one categorical (``discrete``) or several (``multi_discrete``).

    Attributes:
        kind: ``"discrete"`` (an int in ``[0, nvec[0])``) or ``"multi_discrete"``.
        nvec: Number of choices of each sub-action (one entry for ``discrete``).
        names: Optional names of the choices (discrete) or sub-actions (multi-discrete).
    """

    kind: Literal["discrete", "multi_discrete"]
    nvec: tuple[int, ...]
    names: tuple[str, ...] = ()


@attrs.frozen
class BuildContext:
    """What the host knows when it builds a plugin.

    Attributes:
        experiment_name: The experiment's ``name``.
        seed: The experiment's seed; plugins derive their own generators from it.
        device: ``"cpu"`` or ``"cuda"`` (already resolved from ``"auto"``).
        run_dir: The run directory, or None when only validating.
        time_scale: pamiq-core time scale (>1 fast-forwards real-time worlds in tests).
        env_index: Which of the parallel copies of a lock-step world is being built.
        num_envs: How many worlds run side by side (``run.num_envs``): the ``E`` of every
            batch a model or curiosity sees, e.g. of ``Curiosity.agent_step``.
    """

    experiment_name: str
    seed: int
    device: str = "cpu"
    run_dir: Path | None = None
    time_scale: float = 1.0
    env_index: int = 0
    num_envs: int = 1
