"""Faults of plugins during a run, named: which plugin, method, step and what was expected.

Every call the runtime makes into a plugin goes through :func:`blame` (or its
output through a ``check_*`` function here), so a plugin that raises or breaks
its contract stops the run with one paragraph a plugin author can act on,
instead of a traceback from deep inside the runtime. The step is added by the
session, which knows it (:meth:`PluginFault.at_step`).
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np
import torch

from pamiqx.api.errors import PamiqxError
from pamiqx.api.plugin import ObservationSpec
from pamiqx.api.policy import PolicyNetwork, PolicyStep


class PluginFault(PamiqxError):
    """A plugin raised, or returned something its contract forbids, during a run.

    Attributes:
        role: ``environment``, ``curiosity``, ``models.policy``, ...
        plugin: ``'name' (distribution version)``.
        method: The plugin method or hook, e.g. ``observe()``.
        problem: What went wrong (the plugin's exception, summarised, or what was expected).
        step: The environment step, once the session knows it.
    """

    def __init__(self, role: str, plugin: str, method: str, problem: str) -> None:
        """Record the fault (the step is added later)."""
        self.role = role
        self.plugin = plugin
        self.method = method
        self.problem = problem
        self.step: int | None = None
        super().__init__(self._message())

    def at_step(self, step: int) -> PluginFault:
        """Return this fault with the step it happened at (the first one given wins)."""
        if self.step is None:
            self.step = step
            self.args = (self._message(),)
        return self

    def _message(self) -> str:
        where = "" if self.step is None else f" at step {self.step:,}"
        return f"{self.role} plugin {self.plugin} failed in {self.method}{where}: {self.problem}"


class TrainingDiverged(PamiqxError):
    """The policy's loss, gradients or weights became nan or inf; nothing was saved from then on."""


class PluginIdentity:
    """Who a role's plugin is, for messages: ``'rnd' (pamiqx-rnd 0.2.0)``."""

    def __init__(self, role: str, name: str, distribution: str, version: str) -> None:
        """Remember the role and the plugin's name, distribution and version."""
        self.role = role
        self.label = f"'{name}' ({distribution} {version})"

    @classmethod
    def of(cls, role: str, entry: Any) -> PluginIdentity:
        """Return the identity of a registry entry (``kind``, ``name``, ``distribution``, ...)."""
        return cls(role, entry.name, entry.distribution, entry.version)

    def fault(self, method: str, problem: str) -> PluginFault:
        """Return a fault of this plugin."""
        return PluginFault(self.role, self.label, method, problem)


# Parts built outside a run (unit tests, the harness) have no registry entry to name.
UNNAMED_POLICY = PluginIdentity("policy", "network", "unregistered", "-")
UNNAMED_CURIOSITY = PluginIdentity("curiosity", "mechanism", "unregistered", "-")


def summarise(error: BaseException) -> str:
    """Return ``Type: message`` of an exception, on one line."""
    text = " ".join(str(error).split())
    return f"{type(error).__name__}: {text}" if text else type(error).__name__


@contextmanager
def blame(who: PluginIdentity, method: str) -> Iterator[None]:
    """Turn an exception raised inside a plugin's method into a :class:`PluginFault`.

    A :class:`PamiqxError` the plugin raised on purpose (say, a lost camera) keeps
    its own message; the traceback stays chained for ``--debug``.
    """
    try:
        yield
    except PamiqxError:
        raise
    except Exception as error:
        raise who.fault(method, summarise(error)) from error


def check_observation(
    who: PluginIdentity, spec: ObservationSpec, observation: Any, reward: Any
) -> None:
    """Check one world's ``observe()`` against its declared spec.

    Raises:
        PluginFault: Not an array, wrong dtype, shape or rank, a non-finite value,
            or a reward that is not a finite number.
    """
    expected = f"its observation_spec declares {spec.dtype} {spec.shape}"
    if not isinstance(observation, np.ndarray):
        raise who.fault(
            "observe()", f"returned a {type(observation).__name__} observation; {expected}"
        )
    if observation.dtype != np.dtype(spec.dtype) or observation.shape != tuple(spec.shape):
        raise who.fault(
            "observe()",
            f"returned an observation of {observation.dtype} {observation.shape}; {expected}",
        )
    if observation.dtype.kind == "f" and not np.isfinite(observation).all():
        raise who.fault("observe()", "returned an observation with nan or inf values")
    if isinstance(reward, bool) or not isinstance(reward, int | float | np.number):
        raise who.fault(
            "observe()", f"returned a reward of type {type(reward).__name__}; expected a number"
        )
    if not math.isfinite(float(reward)):
        raise who.fault("observe()", f"returned a non-finite reward ({float(reward)})")


def check_rewards(
    who: PluginIdentity, method: str, rewards: Any, shape: tuple[int, ...]
) -> torch.Tensor:
    """Check intrinsic rewards a curiosity returned and return them as float32, detached.

    Raises:
        PluginFault: Not a tensor, the wrong shape, or non-finite values.
    """
    if not isinstance(rewards, torch.Tensor):
        raise who.fault(
            method, f"returned a {type(rewards).__name__}; expected a tensor of shape {shape}"
        )
    if tuple(rewards.shape) != shape:
        raise who.fault(
            method, f"returned rewards of shape {tuple(rewards.shape)}; expected {shape}"
        )
    checked: torch.Tensor = rewards.detach().float()
    if not bool(torch.isfinite(checked).all()):
        bad = int((~torch.isfinite(checked)).sum())
        raise who.fault(method, f"returned {bad} of {checked.numel()} rewards as nan or inf")
    return checked


def check_internal_groups(who: PluginIdentity, policy: PolicyNetwork) -> tuple[int, ...]:
    """Check a policy network's declared groups (:attr:`PolicyNetwork.internal_groups`).

    Returns:
        The widths, as a tuple of ints (empty for a network without groups).

    Raises:
        PluginFault: A width that is not a positive int, or widths that do not sum
            to the network's ``internal_action_dim``.
    """
    widths = tuple(policy.internal_groups)
    if not widths:
        return ()
    if any(isinstance(w, bool) or not isinstance(w, int) or w < 1 for w in widths):
        raise who.fault(
            "internal_groups", f"declares group widths {widths}; expected positive ints"
        )
    if sum(widths) != policy.internal_action_dim:
        raise who.fault(
            "internal_groups",
            f"declares group widths {widths} summing to {sum(widths)}; they must cover the "
            f"internal action exactly (internal_action_dim = {policy.internal_action_dim})",
        )
    return widths


def check_policy_groups(
    who: PluginIdentity, method: str, step: PolicyStep, rows: int, groups: int, rewards: bool
) -> tuple[torch.Tensor | None, torch.Tensor, torch.Tensor]:
    """Check the per-group fields of a step from a network with ``groups`` extra groups.

    Args:
        who: The policy's plugin.
        method: ``forward()`` or ``forward_sequence()``.
        step: What the network returned.
        rows: Rows expected (``B``, or ``T * B`` for a sequence).
        groups: Groups the network declares.
        rewards: Whether ``group_rewards`` is required (acting, not training).

    Returns:
        ``(rewards or None, values, acting)``: detached float32 rewards, the values as
        returned (they carry the gradient when training), acting as bool.

    Raises:
        PluginFault: A field that is missing, not a tensor, the wrong shape, or
            (rewards, values) not finite, naming the field.
    """
    shape = (rows, groups)
    checked: dict[str, torch.Tensor] = {}
    names = (
        ("group_rewards", "group_values", "group_acting")
        if rewards
        else ("group_values", "group_acting")
    )
    for name in names:
        value = getattr(step, name)
        expected = f"the network declares {groups} internal group(s), so PolicyStep.{name}"
        if not isinstance(value, torch.Tensor):
            raise who.fault(
                method,
                f"returned PolicyStep.{name} = {type(value).__name__}; {expected} must be a "
                f"tensor of shape {shape}",
            )
        if tuple(value.shape) != shape:
            raise who.fault(
                method,
                f"returned PolicyStep.{name} of shape {tuple(value.shape)}; expected {shape}",
            )
        if name != "group_acting" and not bool(torch.isfinite(value.detach()).all()):
            bad = int((~torch.isfinite(value.detach())).sum())
            raise who.fault(
                method,
                f"returned PolicyStep.{name} with {bad} of {value.numel()} values nan or inf",
            )
        checked[name] = value
    reward = checked["group_rewards"].detach().float() if rewards else None
    return reward, checked["group_values"], checked["group_acting"].bool()


def check_latents(
    who: PluginIdentity, spec: ObservationSpec, latents: Any, batch: int
) -> torch.Tensor:
    """Check what a representation's ``encode()`` returned against its declared spec.

    Raises:
        PluginFault: Not a tensor, the wrong shape or dtype, or non-finite values.
    """
    shape = (batch, *spec.shape)
    expected = f"its spec declares {spec.dtype} {tuple(spec.shape)} per observation"
    if not isinstance(latents, torch.Tensor):
        raise who.fault("encode()", f"returned a {type(latents).__name__}; {expected}")
    if tuple(latents.shape) != shape or latents.dtype != getattr(torch, spec.dtype):
        raise who.fault(
            "encode()",
            f"returned {str(latents.dtype).removeprefix('torch.')} {tuple(latents.shape)} for "
            f"{batch} observations; {expected}",
        )
    if latents.is_floating_point() and not bool(torch.isfinite(latents).all()):
        bad = int((~torch.isfinite(latents)).sum())
        raise who.fault("encode()", f"returned {bad} of {latents.numel()} values as nan or inf")
    return latents


def check_metrics(who: PluginIdentity, method: str, metrics: Any) -> dict[str, float]:
    """Check the metrics a plugin's ``update()`` returned: names to finite numbers."""
    if not isinstance(metrics, dict):
        raise who.fault(method, f"returned a {type(metrics).__name__}; expected a dict of metrics")
    checked: dict[str, float] = {}
    for key, value in metrics.items():
        try:
            number = float(value)
        except (TypeError, ValueError):
            raise who.fault(
                method, f"returned metric '{key}' = {value!r}; expected a number"
            ) from None
        if not math.isfinite(number):
            raise who.fault(method, f"returned metric '{key}' = {number}: its training diverged")
        checked[str(key)] = number
    return checked


def non_finite_tensors(state: Any, prefix: str = "") -> list[str]:
    """Return the dotted names of floating tensors holding nan or inf in a state tree."""
    found: list[str] = []
    if isinstance(state, torch.Tensor):
        if state.is_floating_point() and not bool(torch.isfinite(state).all()):
            found.append(prefix or "<tensor>")
    elif isinstance(state, dict):
        for key, value in state.items():
            found += non_finite_tensors(value, f"{prefix}.{key}" if prefix else str(key))
    elif isinstance(state, list | tuple):
        for index, value in enumerate(state):
            found += non_finite_tensors(value, f"{prefix}[{index}]")
    return found
