"""Probes: a misbehaving installed plugin stops the run with a named fault, and loses nothing.

Each probe runs ``pamiqx run`` in-process on the ``pamiqx-misbehaving``
distribution (installed into a temporary folder on ``sys.path``) and asserts
the exit code, that the message names the plugin, its distribution, the
method and the step, that there is no traceback, that ``events.jsonl`` records
the reason, and that the latest checkpoint is the last good one and loads.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from pamiqx.checkpoint import list_checkpoints, load_checkpoint
from tests.misbehaving import install_misbehaving, probe_experiment

CLI = Callable[..., tuple[int, str]]
DIST = "pamiqx-misbehaving 0.2.0"

# (probe id, experiment options, message fragments, the fault happens after a checkpoint)
PROBES: list[tuple[str, dict[str, object], list[str], bool]] = [
    (
        "world-float64-frames",
        {"world_fault": "float64", "world_at": 40},
        ["'faulty-world'", DIST, "observe()", "float64", "uint8 (16, 16, 3)"],
        True,
    ),
    (
        "world-wrong-shape",
        {"world_fault": "shape", "world_at": 40},
        ["observe()", "(8, 16, 3)", "(16, 16, 3)"],
        True,
    ),
    (
        "world-wrong-rank",
        {"world_fault": "rank", "world_at": 40},
        ["observe()", "(16, 16)"],
        True,
    ),
    ("world-list-frame", {"world_fault": "list", "world_at": 0}, ["returned a list"], False),
    (
        "world-nan-reward",
        {"world_fault": "nan-reward", "world_at": 40},
        ["non-finite reward"],
        True,
    ),
    (
        "world-string-reward",
        {"world_fault": "string-reward", "world_at": 40},
        ["reward of type str"],
        True,
    ),
    (
        "world-raises-in-observe",
        {"world_fault": "raise-observe", "world_at": 40},
        ["observe()", "OSError: the simulator socket closed"],
        True,
    ),
    (
        "world-raises-in-affect",
        {"world_fault": "raise-affect", "world_at": 40},
        ["affect()", "RuntimeError: actuator jammed"],
        True,
    ),
    (
        "world-raises-in-state",
        {"world_fault": "raise-state", "world_at": 40},
        ["state_dict()", "ValueError: cannot serialise the world"],
        True,
    ),
    (
        "curiosity-inf-rewards",
        {"curiosity_fault": "nan-rewards", "curiosity_at": 3},
        ["'faulty-curiosity'", DIST, "rewards()", "nan or inf"],
        True,
    ),
    (
        "curiosity-rewards-shape",
        {"curiosity_fault": "rewards-shape", "curiosity_at": 3},
        ["rewards()", "(15, 2)", "expected (16, 2)"],
        True,
    ),
    (
        "curiosity-numpy-rewards",
        {"curiosity_fault": "numpy-rewards", "curiosity_at": 3},
        ["rewards()", "returned a ndarray"],
        True,
    ),
    (
        "curiosity-raises-in-rewards",
        {"curiosity_fault": "raise-rewards", "curiosity_at": 3},
        ["rewards()", "IndexError: index 9 is out of bounds"],
        True,
    ),
    (
        "curiosity-raises-in-update",
        {"curiosity_fault": "raise-update", "curiosity_at": 3},
        ["update()", "RuntimeError: CUDA error"],
        True,
    ),
    (
        "curiosity-nan-metric",
        {"curiosity_fault": "nan-metric", "curiosity_at": 3},
        ["update()", "metric 'loss' = nan"],
        True,
    ),
    (
        "curiosity-nan-weights",
        {"curiosity_fault": "nan-weights", "curiosity_at": 3},
        ["nan or inf values in curiosity.net.weight", "checkpoint was not written"],
        True,
    ),
    (
        "curiosity-raises-in-state",
        {"curiosity_fault": "raise-state", "curiosity_at": 3},
        ["state_dict()", "TypeError: cannot pickle"],
        True,
    ),
    (
        "online-curiosity-raises-in-agent-step",
        {"curiosity_fault": "raise-agent-step", "curiosity_at": 3, "online": True},
        ["agent_step()", "ZeroDivisionError"],
        True,
    ),
    (
        "online-curiosity-nan-reward",
        {"curiosity_fault": "nan-online", "curiosity_at": 3, "online": True},
        ["agent_step()", "1 of 2 rewards as nan or inf"],
        True,
    ),
    (
        "online-curiosity-reward-shape",
        {"curiosity_fault": "online-shape", "curiosity_at": 3, "online": True},
        ["agent_step()", "(2, 2)", "expected (2,)"],
        True,
    ),
]


def _events(log_dir: Path) -> list[dict[str, object]]:
    [run_dir] = list((log_dir / "probe").iterdir())
    lines = (run_dir / "events.jsonl").read_text().splitlines()
    return [json.loads(line) for line in lines]


@pytest.mark.parametrize(
    ("options", "fragments", "after_checkpoint"),
    [p[1:] for p in PROBES],
    ids=[p[0] for p in PROBES],
)
def test_misbehaving_plugin_stops_the_run_naming_the_fault(
    dist_root: Path,
    tmp_path: Path,
    cli: CLI,
    options: dict[str, object],
    fragments: list[str],
    after_checkpoint: bool,
) -> None:
    install_misbehaving(dist_root)
    log_dir = tmp_path / "logs"
    path = tmp_path / "probe.toml"
    path.write_text(probe_experiment(log_dir, **options))  # type: ignore[arg-type]
    code, out = cli("run", str(path))
    assert code == 2, out
    assert "Traceback" not in out
    flat = " ".join(out.split())
    for fragment in [*fragments, "at step", "The run stopped"]:
        assert fragment in flat, (fragment, out)
    end = _events(log_dir)[-1]
    assert end["event"] == "end" and end["status"] == "failed"
    assert fragments[0] in str(end["reason"])
    [run_dir] = list((log_dir / "probe").iterdir())
    checkpoints = list_checkpoints(run_dir)
    if after_checkpoint:
        assert checkpoints, "the checkpoint written before the fault is gone"
        assert str(checkpoints[-1]) in flat  # named as the last good one
        state, meta = load_checkpoint(checkpoints[-1], "probe")
        assert meta["step"] == state["step"] and state["step"] > 0
    else:
        assert not checkpoints and "no checkpoint yet" in flat


@pytest.mark.parametrize(
    ("options", "fragment"),
    [
        ({"world_fault": "raise-build"}, "KeyError: 'missing asset'"),
        ({"curiosity_fault": "raise-build"}, "libfancy.so"),
    ],
    ids=["world-raises-in-build", "curiosity-raises-in-build"],
)
def test_plugin_raising_in_build_is_named_and_leaves_no_run_directory(
    dist_root: Path, tmp_path: Path, cli: CLI, options: dict[str, object], fragment: str
) -> None:
    install_misbehaving(dist_root)
    log_dir = tmp_path / "logs"
    path = tmp_path / "probe.toml"
    path.write_text(probe_experiment(log_dir, **options))  # type: ignore[arg-type]
    code, out = cli("run", str(path))
    assert code == 2 and "Traceback" not in out
    assert fragment in out and DIST in out and "failed to build" in out
    assert not (log_dir / "probe").exists() or not list((log_dir / "probe").iterdir())


def test_debug_shows_the_plugins_own_traceback(dist_root: Path, tmp_path: Path, cli: CLI) -> None:
    install_misbehaving(dist_root)
    path = tmp_path / "probe.toml"
    path.write_text(probe_experiment(tmp_path / "logs", world_fault="raise-affect", world_at=4))
    code, out = cli("run", str(path), "--debug")
    assert code == 2 and "Traceback" in out and "actuator jammed" in out
    assert "pamiqx_misbehaving" in out  # the plugin's own frame is shown


def test_diverging_policy_stops_before_a_nan_checkpoint_is_written(
    dist_root: Path, tmp_path: Path, cli: CLI
) -> None:
    install_misbehaving(dist_root)
    log_dir = tmp_path / "logs"
    path = tmp_path / "probe.toml"
    path.write_text(probe_experiment(log_dir, max_steps=512))
    code, out = cli("run", str(path), "policy.lr=1e30", "policy.max_grad_norm=1e30")
    assert code == 2 and "Traceback" not in out, out
    flat = " ".join(out.split())
    # Caught where it shows first: a nan loss or gradient, nan weights, or nan outputs.
    assert "nan" in flat and "The run stopped" in flat, out
    [run_dir] = list((log_dir / "probe").iterdir())
    for checkpoint in list_checkpoints(run_dir):
        state, _ = load_checkpoint(checkpoint, "probe")
        for tensor in state["models"]["policy"].values():
            assert bool(tensor.isfinite().all()), checkpoint
