"""Refuse a run whose rollout storage cannot fit in memory, before it is allocated.

A rollout (:class:`~pamiqx.runtime.rollout.Rollout`) holds ``T`` steps of ``E``
worlds in CPU memory: the observations and a few values per step. While one
rollout trains the next is filled, and the training batch adds the observations
shifted by one step on the training device. A request that cannot fit (a huge
``run.num_envs``, ``policy.rollout_steps`` or observation) would otherwise end in
a ``MemoryError`` or the kernel's OOM killer part-way through start-up; this
module says so first, with the estimate and the keys to change.
"""

from __future__ import annotations

import contextlib
import math
import os
from pathlib import Path

import torch

from pamiqx.api.errors import ExperimentError
from pamiqx.api.plugin import ActionSpec, ObservationSpec

# Bytes per step and world of the rollout's scalar tensors: log_probs, two values,
# two rewards (float32) and the done and episode-start flags (bool).
_SCALARS = 5 * 4 + 2 * 1


def rollout_bytes(
    steps: int,
    num_envs: int,
    observation_spec: ObservationSpec,
    action_spec: ActionSpec,
    hidden_dim: int = 0,
    internal_dim: int = 0,
) -> tuple[int, int]:
    """Return the bytes of one rollout: ``(observations, everything else)``.

    Mirrors the tensors :class:`~pamiqx.runtime.rollout.Rollout` allocates.
    """
    item = 1 if observation_spec.dtype == "uint8" else 4
    frame = math.prod(observation_spec.shape) * item
    observations = (steps + 1) * num_envs * frame  # the rollout and its last observations
    actions = 1 if action_spec.kind == "discrete" else len(action_spec.nvec)
    per_step = actions * 8 + (internal_dim + hidden_dim) * 4 + _SCALARS
    return observations, steps * num_envs * per_step


def available_host_memory() -> int | None:
    """Return the bytes this process may still allocate (None when unknown).

    ``MemAvailable`` from ``/proc/meminfo`` (or the free pages), capped by a
    cgroup v2 memory limit when the process runs in one.
    """
    found: list[int] = []
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                found.append(int(line.split()[1]) * 1024)
    except (OSError, ValueError, IndexError):
        pass
    if not found:
        with contextlib.suppress(OSError, ValueError, AttributeError):
            found.append(os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))
    try:
        limit = Path("/sys/fs/cgroup/memory.max").read_text().strip()
        if limit != "max":
            used = int(Path("/sys/fs/cgroup/memory.current").read_text())
            found.append(max(int(limit) - used, 0))
    except (OSError, ValueError):
        pass
    return min(found) if found else None


def available_device_memory(device: torch.device) -> int | None:
    """Return the free memory of a CUDA device (None for the CPU or when unknown)."""
    if device.type != "cuda":
        return None
    try:
        free, _ = torch.cuda.mem_get_info(device)
    except (RuntimeError, AssertionError, ValueError):
        return None
    return int(free)


def _gib(size: float) -> str:
    gib = size / 2**30
    return f"{gib:,.2f} GiB" if gib < 10 else f"{gib:,.1f} GiB"


def check_rollout_memory(
    steps: int,
    num_envs: int,
    observation_spec: ObservationSpec,
    action_spec: ActionSpec,
    device: torch.device,
    hidden_dim: int = 0,
    internal_dim: int = 0,
) -> None:
    """Raise when the rollout storage of a run cannot fit in this machine's memory.

    Args:
        steps: ``policy.rollout_steps``.
        num_envs: ``run.num_envs``.
        observation_spec: The environment's declared observations.
        action_spec: The environment's declared actions.
        device: The training device (``cuda`` also checks the GPU's free memory).
        hidden_dim: The policy's recurrent state width (0 for a lower bound).
        internal_dim: The policy's internal action width (0 for a lower bound).

    Raises:
        ExperimentError: The estimate exceeds the memory available, naming the
            keys, the observation shape and the estimate in GiB.
    """
    observations, others = rollout_bytes(
        steps, num_envs, observation_spec, action_spec, hidden_dim, internal_dim
    )
    rollout = observations + others
    # Two rollouts while one trains; on the CPU the batch's shifted observations too.
    host = 2 * rollout + (observations if device.type == "cpu" else 0)
    what = (
        f"policy.rollout_steps = {steps:,} x run.num_envs = {num_envs:,} steps of "
        f"{observation_spec.dtype} {tuple(observation_spec.shape)} observations (the "
        f"environment's observation_spec) take {_gib(observations)}, plus {_gib(others)} "
        "of actions, values and recurrent states"
    )
    fix = (
        "Lower policy.rollout_steps or run.num_envs, or make the observations smaller "
        "(the environment's size options)."
    )
    available = available_host_memory()
    if available is not None and host > available:
        raise ExperimentError(
            f"the rollout storage cannot fit in memory: {what}; a run holds two rollouts "
            f"while one trains, about {_gib(host)} in all, but only {_gib(available)} of "
            f"memory is available here. {fix}"
        )
    free = available_device_memory(device)
    if free is not None and rollout + observations > free:
        raise ExperimentError(
            f"the training batch cannot fit on {device}: {what}; the batch on the GPU needs "
            f"about {_gib(rollout + observations)}, but only {_gib(free)} of it is free. {fix}"
        )
