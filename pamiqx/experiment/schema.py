"""The schema of an experiment file: the host's tables, and an experiment once resolved.

``[policy]`` is the learner's own options class (:class:`pamiqx.learner.options.PPOOptions`);
``[run]`` and ``[tracking]`` are here; every plugin table is validated by the
plugin's ``Options``.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Literal

import attrs
import tomli_w

from pamiqx.learner.options import PPOOptions
from pamiqx.options import unstructure
from pamiqx.plugins.manager import PluginEntry

_positive = attrs.validators.gt(0)
_non_negative = attrs.validators.ge(0)
_positive_float = attrs.validators.gt(0.0)
_non_negative_float = attrs.validators.ge(0.0)
_unit = [attrs.validators.ge(0.0), attrs.validators.le(1.0)]
MAX_STEPS = 10**12 - 1
MAX_ENVS = 1024


def _device(_: object, attribute: attrs.Attribute[str], value: str) -> None:
    if not re.fullmatch(r"auto|cpu|cuda(:\d+)?", value):
        raise ValueError(
            f"{attribute.name} must be 'auto', 'cpu', 'cuda' or 'cuda:N', got {value!r}"
        )


def _plain_text(_: object, attribute: attrs.Attribute[str], value: str) -> None:
    # Folder and repository names end up in paths and one-line messages: a NUL fails
    # deep inside mkdir, a newline splits every message that quotes the path.
    bad = sorted({c for c in value if ord(c) < 32 or 127 <= ord(c) < 160})
    if bad:
        shown = ", ".join(repr(c) for c in bad)
        raise ValueError(f"{attribute.name} must not contain control characters, got {shown}")


@attrs.frozen
class RunConfig:
    """How long a run lasts and where it runs.

    Attributes:
        max_steps: Environment steps (summed over parallel worlds) before the run ends
            (at most 10**12 - 1).
        device: ``auto`` (CUDA when present, else CPU), ``cpu``, ``cuda`` or ``cuda:N``.
        precision: ``fp32``, or ``bf16`` autocast on CUDA.
        num_envs: Parallel copies of a lock-step world (at most 1024).
        mode: ``auto`` (the environment decides), ``lockstep`` or ``realtime``.
        time_scale: Real-time speed-up (pamiq-core time scale); 1 for real worlds.
        inference_budget_ms: Real-time runs: how long before each control tick the
            observation is taken; inference runs in this time and the action is sent
            at the tick, so the world's beat does not depend on inference. A step
            whose inference overruns it sends its action at the next tick (the
            world holds the previous action meanwhile), counted in
            ``realtime/overruns``. Wall-clock milliseconds (inference does not speed up
            with ``time_scale``); at most half the control interval is used.
        max_staleness: Real-time runs: the most optimizer steps the acting copy of the
            policy may lag the trained one; the trainer copies the weights over as soon
            as it is reached, even inside a training phase (0: only after each phase).
            Acting's lag is logged as ``realtime/staleness_steps_mean``/``_max``.
        acting: Real-time runs: ``process`` (the default) acts in a process of its own,
            with a CPU of its own where there are two or more: the world's beat,
            encoding and the policy, while this process stores the steps, scores them
            and trains; the weights go over through shared memory. ``thread`` acts in
            pamiq-core's inference thread of this process.
        acting_start: How the acting process starts: ``fork`` (it inherits the built
            world, representation and policy), ``spawn`` (a fresh interpreter that
            builds its own from the experiment, on the run's device, and takes the
            weights and states from this process), or ``auto``: fork on a CPU, spawn
            with CUDA (a CUDA context does not survive a fork).
        checkpoint_every: Steps between checkpoints (0: only at the end and on signals).
        keep_checkpoints: How many of the latest checkpoints to keep.
        log_every: Steps between metric log lines and tracked metric points.
        log_dir: Root of run directories; empty means ``$PAMIQX_LOG_DIR`` or ``./logs``.
    """

    # Checkpoint folders number steps with 12 digits; 1e12 steps is beyond any run anyway.
    max_steps: int = attrs.field(
        default=100_000, validator=[_positive, attrs.validators.le(MAX_STEPS)]
    )
    device: str = attrs.field(default="auto", validator=_device)
    precision: Literal["fp32", "bf16"] = "fp32"
    # Each world is built up front: a typo such as 10**8 would hang, building them.
    num_envs: int = attrs.field(default=1, validator=[_positive, attrs.validators.le(MAX_ENVS)])
    mode: Literal["auto", "lockstep", "realtime"] = "auto"
    time_scale: float = attrs.field(default=1.0, validator=_positive_float)
    inference_budget_ms: float = attrs.field(default=15.0, validator=_positive_float)
    max_staleness: int = attrs.field(default=0, validator=_non_negative)
    acting: Literal["process", "thread"] = "process"
    acting_start: Literal["auto", "fork", "spawn"] = "auto"
    checkpoint_every: int = attrs.field(default=10_000, validator=_non_negative)
    keep_checkpoints: int = attrs.field(default=3, validator=_positive)
    log_every: int = attrs.field(default=1_000, validator=_positive)
    log_dir: str = attrs.field(default="", validator=_plain_text)


@attrs.frozen
class TrackingConfig:
    """Metrics in Aim.

    Attributes:
        enabled: Track metrics in an Aim repository.
        repo: Aim repository folder; empty means ``<log_dir>/aim``.
        experiment: Aim experiment name; empty means the experiment's name.
        system_metrics: Let Aim sample CPU/GPU usage in the background.
    """

    enabled: bool = True
    repo: str = attrs.field(default="", validator=_plain_text)
    experiment: str = attrs.field(default="", validator=_plain_text)
    system_metrics: bool = False


@attrs.frozen
class PluginTable:
    """A ``[section]`` that names a plugin; its other keys are the plugin's options."""

    plugin: str
    options: dict[str, Any] = attrs.field(factory=dict)


DEFAULT_MODELS: dict[str, str] = {"encoder": "conv-encoder", "policy": "actor-critic"}
DEFAULT_CURIOSITY = "none"
DEFAULT_REPRESENTATION = "pixels"


@attrs.frozen
class Experiment:
    """The host's view of an experiment file (plugin options still raw)."""

    name: str
    seed: int
    description: str
    run: RunConfig
    policy: PPOOptions
    tracking: TrackingConfig
    environment: PluginTable
    representation: PluginTable
    models: dict[str, PluginTable]
    curiosity: PluginTable


@attrs.frozen
class ResolvedPlugin:
    """A plugin found in the registry with its validated options."""

    entry: PluginEntry
    options: Any


@attrs.frozen
class ResolvedExperiment:
    """An experiment whose plugins are found and whose every option is validated."""

    experiment: Experiment
    environment: ResolvedPlugin
    representation: ResolvedPlugin
    models: dict[str, ResolvedPlugin]
    curiosity: ResolvedPlugin
    source: Path | None = None

    def to_dict(self) -> dict[str, Any]:
        """Return the experiment with every default filled in, as TOML-compatible data."""
        exp = self.experiment

        def table(resolved: ResolvedPlugin, written: str) -> dict[str, Any]:
            return {"plugin": written, **unstructure(resolved.options)}

        return {
            "name": exp.name,
            "seed": exp.seed,
            "description": exp.description,
            "run": unstructure(exp.run),
            "environment": table(self.environment, exp.environment.plugin),
            "representation": table(self.representation, exp.representation.plugin),
            "models": {k: table(v, exp.models[k].plugin) for k, v in self.models.items()},
            "curiosity": table(self.curiosity, exp.curiosity.plugin),
            "policy": unstructure(exp.policy),
            "tracking": unstructure(exp.tracking),
        }

    def to_toml(self) -> str:
        """Return the resolved experiment as TOML, headed by the plugins' versions."""
        header = ["# Resolved by pamiqx; `pamiqx run` on this file repeats the experiment."]
        roles = [
            ("environment", self.environment),
            ("representation", self.representation),
            ("curiosity", self.curiosity),
        ]
        for role, resolved in roles:
            header.append(_provenance_line(role, resolved))
        for key, resolved in self.models.items():
            header.append(_provenance_line(f"models.{key}", resolved))
        return "\n".join(header) + "\n\n" + tomli_w.dumps(self.to_dict())


def _provenance_line(role: str, resolved: ResolvedPlugin) -> str:
    entry = resolved.entry
    return f"# {role}: '{entry.name}' from {entry.distribution} {entry.version}"
