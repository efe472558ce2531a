"""`pamiqx new-plugin`: the generated package installs and passes its own tests unchanged."""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.timeout(300)
def test_generated_curiosity_package_installs_and_passes_its_tests(
    tmp_path: Path, cli: Callable[..., tuple[int, str]]
) -> None:
    code, out = cli("new-plugin", "curiosity", "count-based", "--dir", str(tmp_path))
    assert code == 0, out
    package = tmp_path / "pamiqx-count-based"
    target = tmp_path / "site"
    subprocess.run(
        [
            str(ROOT / ".tools" / "bin" / "uv"),
            "pip",
            "install",
            "--quiet",
            "--no-deps",
            "--target",
            str(target),
            str(package),
        ],
        check=True,
        env={**os.environ, "UV_PYTHON": sys.executable},
    )
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests"],
        cwd=package,
        env={**os.environ, "PYTHONPATH": str(target)},
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "3 passed" in result.stdout


def test_bad_names_and_existing_folders(
    tmp_path: Path, cli: Callable[..., tuple[int, str]]
) -> None:
    code, out = cli("new-plugin", "curiosity", "Bad_Name", "--dir", str(tmp_path))
    assert code == 2 and "lowercase words" in out
    assert cli("new-plugin", "curiosity", "twice", "--dir", str(tmp_path))[0] == 0
    code, out = cli("new-plugin", "curiosity", "twice", "--dir", str(tmp_path))
    assert code == 2 and "already exists" in out
    code, out = cli("new-plugin", "world", "x", "--dir", str(tmp_path))
    assert code == 2 and "only 'curiosity'" in out


def test_generated_package_is_lint_clean_and_the_printed_hint_runs(
    tmp_path: Path, cli: Callable[..., tuple[int, str]]
) -> None:
    code, out = cli("new-plugin", "curiosity", "lint-me", "--dir", str(tmp_path))
    assert code == 0, out
    package = tmp_path / "pamiqx-lint-me"
    ruff = str(Path(sys.executable).parent / "ruff")
    for args in (["check", "."], ["format", "--check", "."]):
        result = subprocess.run([ruff, *args], cwd=package, capture_output=True, text=True)
        assert result.returncode == 0, result.stdout + result.stderr
    [hint] = [line.removeprefix("next: ") for line in out.splitlines() if line.startswith("next:")]
    install, test = hint.split(" && ")
    # As printed, but resolved without installing: the project's environment stays as it is.
    argv = shlex.split(install)
    assert argv[1:3] == ["pip", "install"] and Path(argv[0]).exists()
    dry = subprocess.run(
        [*argv[:3], "--dry-run", "--no-deps", *argv[3:]], capture_output=True, text=True
    )
    assert dry.returncode == 0, dry.stdout + dry.stderr
    assert shlex.split(test)[:3] == [sys.executable, "-m", "pytest"]
