"""Restoring a run from a checkpoint: its layout checked first, then each part loaded by name.

A checkpoint whose checksum is valid can still hold the wrong thing (another
version wrote it, someone edited it, or the experiment file changed). Every
mismatch is a :class:`CheckpointError` naming the checkpoint and the part
(``models.policy``, ``collector.rollout.observations``, ...) before a step is
taken, instead of a traceback from inside the loop later on.
"""

from __future__ import annotations

import random
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import torch

from pamiqx.api.errors import CheckpointError
from pamiqx.checkpoint import to_numpy
from pamiqx.faults import summarise
from pamiqx.runtime.build import Components

# The top level of a run's checkpoint state (``Run.state_dict``) and each part's type.
STATE_LAYOUT: dict[str, type] = {
    "step": int,
    "representation": object,  # the plugin's own; absent before 0.2.1 (pixels only)
    "models": dict,
    "curiosity": object,  # the plugin's own
    "learner": dict,
    "collector": dict,
    "envs": list,
    "rng": dict,
    "first_metrics": dict,
    "last_logged": int,
}


def rng_state() -> dict[str, Any]:
    """Return the Python, numpy and torch (CPU and CUDA) random generator states."""
    state: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "numpy": np.random.get_state(),
        "python": random.getstate(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: Mapping[str, Any]) -> None:
    """Restore :func:`rng_state`."""
    torch.set_rng_state(state["torch"])
    np_state = to_numpy(state["numpy"])
    np.random.set_state(tuple(np_state))
    py_state = state["python"]
    random.setstate((py_state[0], tuple(py_state[1]), py_state[2]))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def check_layout(state: Mapping[str, Any], path: Path) -> None:
    """Check the top level of a checkpoint's state (nothing needs to be built for it).

    Raises:
        CheckpointError: A part is missing or of the wrong type, named with ``path``.
    """
    problems = []
    for key, kind in STATE_LAYOUT.items():
        value = state.get(key)
        if key == "representation" and key not in state:
            continue
        if key not in state:
            problems.append(f"'{key}' is missing")
        elif not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            problems.append(f"'{key}' is a {type(value).__name__}, not a {kind.__name__}")
    metrics = state.get("first_metrics")
    if isinstance(metrics, dict):
        for name, value in metrics.items():
            if isinstance(value, bool) or not isinstance(value, int | float):
                problems.append(f"first_metrics['{name}'] is a {type(value).__name__}")
    if problems:
        raise CheckpointError(
            f"{path}: state.pt does not hold a pamiqx run's state: {'; '.join(problems)}."
        )


def _tensor_problems(
    expected: Any, got: Any, where: str, leading: int | None = None, dtypes: bool = True
) -> list[str]:
    """Compare the tensors of a freshly built part with the checkpoint's, recursively.

    Args:
        expected: The fresh part's state (the shapes and dtypes this experiment uses).
        got: The checkpoint's.
        where: Dotted name for messages.
        leading: When set, the length of the first dimension (a partial rollout); the
            other dimensions must match.
        dtypes: Compare dtypes too (not for states that autocast may store in bf16).
    """
    if isinstance(expected, torch.Tensor):
        if not isinstance(got, torch.Tensor):
            return [f"{where} is a {type(got).__name__}, not a tensor"]
        shape = tuple(expected.shape)
        if leading is not None and shape:
            shape = (leading, *shape[1:])
        if tuple(got.shape) != shape or (dtypes and got.dtype != expected.dtype):
            return [
                f"{where} is {str(got.dtype).removeprefix('torch.')} {tuple(got.shape)}, "
                f"expected {str(expected.dtype).removeprefix('torch.')} {shape}"
            ]
        return []
    if isinstance(expected, Mapping):
        if not isinstance(got, Mapping):
            return [f"{where} is a {type(got).__name__}, not a dict"]
        problems = []
        for key, value in expected.items():
            if key not in got:
                problems.append(f"{where}.{key} is missing")
            else:
                problems += _tensor_problems(value, got[key], f"{where}.{key}", leading, dtypes)
        return problems
    return []


def _host_part_problems(c: Components, state: Mapping[str, Any]) -> list[str]:
    """Check the collector's tensors against a fresh one's, and the optimizer's against the policy.

    The learner's own statistics are sized lazily (not comparable to a fresh learner's);
    its optimizer moments must match the policy's parameters.
    """
    collector, learner = state["collector"], state["learner"]
    fresh = c.collector.state_dict()
    agent = collector.get("agent")
    problems = _tensor_problems(fresh["agent"], agent, "collector.agent", dtypes=False)
    actions = fresh["rollout"]["actions"]
    previous = agent.get("prev_actions") if isinstance(agent, Mapping) else None
    if previous is not None:  # the last actions, one per world
        expected = torch.zeros(actions.shape[1:], dtype=actions.dtype)
        problems += _tensor_problems(expected, previous, "collector.agent.prev_actions")
    rollout = collector.get("rollout")
    if not isinstance(rollout, Mapping) or type(rollout.get("size")) is not int:
        problems.append("collector.rollout has no step count")
    else:
        fields = {
            k: v for k, v in fresh["rollout"].items() if k not in ("size", "last_observations")
        }
        size = rollout["size"]
        problems += _tensor_problems(fields, rollout, "collector.rollout", size)
        last = fresh["rollout"]["last_observations"]
        where = "collector.rollout.last_observations"
        problems += _tensor_problems(last, rollout.get("last_observations"), where)
    params = [p for group in c.learner.optimizer.param_groups for p in group["params"]]
    optimizer = learner.get("optimizer")
    moments = optimizer.get("state") if isinstance(optimizer, Mapping) else None
    if not isinstance(moments, Mapping):
        problems.append("learner.optimizer has no per-parameter state")
        return problems
    for index, values in moments.items():
        if not isinstance(index, int) or not 0 <= index < len(params):
            problems.append(
                f"learner.optimizer.state has parameter {index!r:.20}; the policy has {len(params)}"
            )
            continue
        for name, value in values.items() if isinstance(values, Mapping) else []:
            shape = tuple(params[index].shape)
            if isinstance(value, torch.Tensor) and value.dim() and tuple(value.shape) != shape:
                problems.append(
                    f"learner.optimizer.state[{index}].{name} is {tuple(value.shape)}, "
                    f"its parameter {shape}"
                )
    return problems


def restore(c: Components, state: Mapping[str, Any], path: Path) -> None:
    """Load a checkpoint's state (layout-checked by :func:`check_layout`) into built parts.

    Raises:
        CheckpointError: A part does not fit this experiment's models or plugins,
            named with ``path``.
    """
    problems = [f"models.{name} has no state" for name in c.models if name not in state["models"]]
    if len(state["envs"]) != len(c.envs):
        problems.append(
            f"it holds {len(state['envs'])} world states but run.num_envs is {len(c.envs)}"
        )
    problems += _host_part_problems(c, state)
    if problems:
        shown = "; ".join(problems[:6]) + (
            f"; and {len(problems) - 6} more" if len(problems) > 6 else ""
        )
        raise CheckpointError(
            f"{path}: the checkpoint does not fit this experiment: {shown}. Was the experiment "
            "file changed?"
        )
    with _loading("representation", path):
        c.stage.load_state_dict(state.get("representation", {}))
    for role, module in c.models.items():
        with _loading(f"models.{role}", path):
            module.load_state_dict(state["models"][role])
    with _loading("curiosity", path):
        c.curiosity.load_state_dict(state["curiosity"])
    with _loading("learner", path):
        c.learner.load_state_dict(state["learner"])
    with _loading("collector", path):
        c.collector.load_state_dict(state["collector"])
    for index, (env, env_state) in enumerate(zip(c.envs, state["envs"], strict=True)):
        with _loading(f"envs[{index}]", path):
            env.load_state_dict(to_numpy(env_state))
    with _loading("rng", path):
        set_rng_state(state["rng"])


@contextmanager
def _loading(part: str, path: Path) -> Iterator[None]:
    """Turn a failure to load one part into a CheckpointError naming it."""
    try:
        yield
    except Exception as error:
        raise CheckpointError(
            f"{path}: its {part} state does not fit this experiment's models or plugins "
            f"({summarise(error)}); was the experiment file changed?"
        ) from error
