"""Discovery through real entry points of distributions found on sys.path."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest

from pamiqx.api.errors import PluginError
from pamiqx.plugins.manager import PluginManager, load_plugins
from pamiqx.testing import check_plugin_distribution
from tests.fake_dists import curiosity_module, write_distribution

ROOT = Path(__file__).resolve().parents[1]


def test_builtin_plugins_register_through_entry_points() -> None:
    manager = load_plugins()
    found = {(e.kind, e.name): e for e in manager.entries}
    for key in [
        ("environment", "sim-maze"),
        ("environment", "gymnasium"),
        ("model", "conv-encoder"),
        ("model", "mlp-encoder"),
        ("model", "actor-critic"),
        ("curiosity", "none"),
    ]:
        assert key in found, key
        assert found[key].distribution == "pamiqx"
    assert not [f for f in manager.failures if f.distribution == "pamiqx"]


def test_third_party_plugin_is_found_with_its_distribution(dist_root: Path) -> None:
    write_distribution(
        dist_root,
        "pamiqx-zero",
        "1.2.3",
        {"zero_plugin": curiosity_module("zero")},
        {"zero": "zero_plugin"},
    )
    entry = load_plugins().lookup("curiosity", "zero")
    assert (entry.distribution, entry.version) == ("pamiqx-zero", "1.2.3")
    assert entry.plugin.summary() == "Test curiosity zero."


def test_plugin_raising_on_import_is_recorded_and_breaks_nothing_else(
    dist_root: Path, cli: Callable[..., tuple[int, str]], write_toml: Callable[..., Path]
) -> None:
    write_distribution(
        dist_root,
        "pamiqx-broken",
        "0.1",
        {"broken_plugin": "raise RuntimeError('cannot find libfoo.so')\n"},
        {"broken": "broken_plugin"},
    )
    write_distribution(
        dist_root,
        "pamiqx-zero",
        "1.0",
        {"zero_plugin": curiosity_module("zero")},
        {"zero": "zero_plugin"},
    )
    manager = load_plugins()
    [failure] = [f for f in manager.failures if f.distribution == "pamiqx-broken"]
    assert "RuntimeError: cannot find libfoo.so" in failure.reason
    assert manager.lookup("curiosity", "zero").distribution == "pamiqx-zero"

    code, out = cli("list-plugins", "--json")
    payload = json.loads(out)
    assert code == 0
    assert {"pamiqx-broken"} == {f["distribution"] for f in payload["failures"]}
    assert "zero" in {p["name"] for p in payload["plugins"]}

    code, out = cli("list-plugins")
    assert code == 0 and "failed to load" in out and "libfoo.so" in out

    # An experiment that does not use the broken plugin runs validation fine...
    path = write_toml(
        'name = "ok"\n[environment]\nplugin = "sim-maze"\n[curiosity]\nplugin = "zero"\n'
    )
    code, out = cli("validate", str(path))
    assert code == 0, out
    # ...and one that names a missing plugin is told about the failure.
    path = write_toml(
        'name = "x"\n[environment]\nplugin = "sim-maze"\n[curiosity]\nplugin = "brokn"\n', "b.toml"
    )
    code, out = cli("validate", str(path))
    assert code == 2
    assert "pamiqx-broken" in out and "libfoo.so" in out and "curiosity.plugin" in out


def test_registration_hook_that_raises_or_returns_junk_is_a_failure(dist_root: Path) -> None:
    raising = """
        import pamiqx

        @pamiqx.hookimpl
        def pamiqx_register_curiosities():
            raise ValueError("registry exploded")
    """
    junk = """
        import pamiqx

        @pamiqx.hookimpl
        def pamiqx_register_models():
            return [object]
    """
    write_distribution(
        dist_root, "pamiqx-raising", "1.0", {"raising_plugin": raising}, {"r": "raising_plugin"}
    )
    write_distribution(dist_root, "pamiqx-junk", "1.0", {"junk_plugin": junk}, {"j": "junk_plugin"})
    failures = {f.distribution: f.reason for f in load_plugins().failures}
    assert "registry exploded" in failures["pamiqx-raising"]
    assert "not a pamiqx plugin class" in failures["pamiqx-junk"]


def test_two_distributions_with_one_name(
    dist_root: Path, cli: Callable[..., tuple[int, str]], write_toml: Callable[..., Path]
) -> None:
    write_distribution(
        dist_root,
        "pamiqx-alpha",
        "1.0",
        {"alpha_plugin": curiosity_module("twin")},
        {"a": "alpha_plugin"},
    )
    write_distribution(
        dist_root,
        "pamiqx-beta",
        "2.0",
        {"beta_plugin": curiosity_module("twin")},
        {"b": "beta_plugin"},
    )
    manager = load_plugins()
    with pytest.raises(PluginError) as info:
        manager.lookup("curiosity", "twin")
    assert "pamiqx-alpha:twin" in str(info.value) and "pamiqx-beta:twin" in str(info.value)
    assert manager.lookup("curiosity", "pamiqx-beta:twin").version == "2.0"

    path = write_toml(
        'name = "c"\n[environment]\nplugin = "sim-maze"\n[curiosity]\nplugin = "twin"\n'
    )
    code, out = cli("validate", str(path))
    assert code == 2 and "pamiqx-alpha" in out and "pamiqx-beta" in out
    code, out = cli("validate", str(path), "curiosity.plugin=pamiqx-alpha:twin")
    assert code == 0, out
    assert "from pamiqx-alpha 1.0" in out


def test_only_named_distributions_are_loaded(
    dist_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_distribution(
        dist_root,
        "pamiqx-zero",
        "1.0",
        {"zero_plugin": curiosity_module("zero")},
        {"z": "zero_plugin"},
    )
    write_distribution(
        dist_root, "pamiqx-one", "1.0", {"one_plugin": curiosity_module("one")}, {"o": "one_plugin"}
    )
    monkeypatch.setenv("PAMIQX_PLUGINS", "pamiqx-one")
    names = PluginManager().load_entry_points().names("curiosity")
    assert "one" in names and "none" in names and "zero" not in names


def test_lifecycle_hook_errors_are_isolated(dist_root: Path) -> None:
    observer = """
        import pamiqx
        CALLS = []

        @pamiqx.hookimpl
        def pamiqx_checkpoint_saved(path, step):
            CALLS.append(step)

        @pamiqx.hookimpl
        def pamiqx_metrics_emitted(step, metrics):
            raise KeyError("oops")
    """
    write_distribution(
        dist_root, "pamiqx-observer", "1.0", {"observer_plugin": observer}, {"o": "observer_plugin"}
    )
    manager = load_plugins()
    assert manager.call_lifecycle("pamiqx_checkpoint_saved", path=Path("x"), step=7) == []
    import observer_plugin  # type: ignore[import-not-found]

    assert observer_plugin.CALLS == [7]
    errors = manager.call_lifecycle("pamiqx_metrics_emitted", step=1, metrics={})
    assert len(errors) == 1 and "KeyError" in errors[0]


def test_contract_check_passes_for_host_and_fails_for_broken(dist_root: Path) -> None:
    entries = check_plugin_distribution("pamiqx")
    assert {"sim-maze", "none"} <= {e.name for e in entries}
    write_distribution(
        dist_root,
        "pamiqx-broken",
        "0.1",
        {"broken_plugin": "import nonexistent_dep\n"},
        {"b": "broken_plugin"},
    )
    with pytest.raises(AssertionError, match="nonexistent_dep"):
        check_plugin_distribution("pamiqx-broken")
    with pytest.raises(AssertionError, match="no pamiqx entry points"):
        check_plugin_distribution("pamiqx-not-installed")


def test_list_plugins_does_not_import_torch() -> None:
    code = (
        "import sys\n"
        "from typer.testing import CliRunner\n"
        "from pamiqx.cli import app\n"
        "r = CliRunner().invoke(app, ['list-plugins', '--json'])\n"
        "assert r.exit_code == 0, r.output\n"
        "print(sorted(m for m in ('torch', 'aim', 'numpy', 'gymnasium') if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]", out.stdout + out.stderr


@pytest.mark.timeout(240)
def test_real_built_distribution_is_discovered(tmp_path: Path) -> None:
    """Build and install a plugin package with uv into a target folder, then discover it."""
    uv = ROOT / ".tools" / "bin" / "uv"
    if not uv.exists():
        pytest.fail("uv is missing: run `make venv` first")
    package = tmp_path / "pamiqx-echo"
    (package / "src" / "pamiqx_echo").mkdir(parents=True)
    (package / "pyproject.toml").write_text(
        textwrap.dedent(
            """
            [project]
            name = "pamiqx-echo"
            version = "0.3.0"
            requires-python = ">=3.12"

            [project.entry-points.pamiqx]
            echo = "pamiqx_echo.plugin"

            [build-system]
            requires = ["hatchling"]
            build-backend = "hatchling.build"
            """
        )
    )
    (package / "src" / "pamiqx_echo" / "__init__.py").write_text("")
    (package / "src" / "pamiqx_echo" / "plugin.py").write_text(
        textwrap.dedent(curiosity_module("echo"))
    )
    target = tmp_path / "target"
    subprocess.run(
        [str(uv), "pip", "install", "--quiet", "--no-deps", "--target", str(target), str(package)],
        check=True,
        env={**os.environ, "UV_PYTHON": sys.executable},
    )
    env = {**os.environ, "PYTHONPATH": str(target)}
    out = subprocess.run(
        [sys.executable, "-m", "pamiqx", "list-plugins", "--json", "--kind", "curiosity"],
        capture_output=True,
        text=True,
        env=env,
        check=True,
    )
    plugins = {p["name"]: p for p in json.loads(out.stdout)["plugins"]}
    assert plugins["echo"]["distribution"] == "pamiqx-echo"
    assert plugins["echo"]["version"] == "0.3.0"
