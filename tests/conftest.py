"""Shared fixtures: experiment files, plugin distributions on sys.path, the CLI."""

from __future__ import annotations

import importlib
import sys
import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from pamiqx.cli import app

MINIMAL = """
name = "t"
seed = 1

[environment]
plugin = "sim-maze"
size = 32
"""


@pytest.fixture
def write_toml(tmp_path: Path) -> Callable[..., Path]:
    """Write a TOML file (dedented) into tmp_path and return its path."""

    def write(text: str, name: str = "exp.toml") -> Path:
        path = tmp_path / name
        path.write_text(textwrap.dedent(text))
        return path

    return write


@pytest.fixture
def cli() -> Callable[..., tuple[int, str]]:
    """Invoke the CLI in-process; return (exit code, stdout+stderr)."""
    runner = CliRunner()

    def invoke(*args: str) -> tuple[int, str]:
        result = runner.invoke(app, list(args), catch_exceptions=False)
        return result.exit_code, result.output

    return invoke


@pytest.fixture
def dist_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A folder on sys.path for fake installed distributions."""
    root = tmp_path / "site"
    root.mkdir()
    monkeypatch.syspath_prepend(str(root))
    importlib.invalidate_caches()
    yield root
    for name in list(sys.modules):
        module = sys.modules[name]
        if str(getattr(module, "__file__", "") or "").startswith(str(root)):
            del sys.modules[name]


@pytest.fixture(scope="module")
def one_torch_thread() -> Iterator[None]:
    """Run a module's tests on one torch thread (``pytestmark = usefixtures(...)``).

    Tiny matrices: extra threads only contend (10x slower on a loaded 2-core machine).
    """
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)
