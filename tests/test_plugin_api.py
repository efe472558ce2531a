"""The declared plugin API: what plugins import, its version, hooks through pluggy, no cycles."""

from __future__ import annotations

import ast
import graphlib
import json
import os
import subprocess
import sys
import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

import pamiqx.api
from pamiqx.plugins.manager import load_plugins
from pamiqx.scaffold import api_range, new_curiosity_package
from tests.fake_dists import curiosity_module, write_distribution
from tests.runtime_helpers import tiny_maze

ROOT = Path(__file__).resolve().parents[1]
CLI = Callable[..., tuple[int, str]]


def _pamiqx_imports(path: Path) -> Iterator[tuple[int, str]]:
    """Yield ``(line, statement)`` for every import of pamiqx in a Python file."""
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] == "pamiqx":
                    yield node.lineno, f"import {alias.name}"
        elif (
            isinstance(node, ast.ImportFrom)
            and node.level == 0
            and (node.module or "").split(".")[0] == "pamiqx"
        ):
            yield node.lineno, f"from {node.module} import ..."


def _plugin_sources(tmp_path: Path) -> list[Path]:
    """Every bundled plugin's source, and the files `pamiqx new-plugin` writes."""
    generated = new_curiosity_package("scan-me", tmp_path)
    return sorted(ROOT.glob("plugins/*/src/**/*.py")) + sorted(generated.rglob("src/**/*.py"))


def test_plugins_and_the_template_import_only_the_declared_api(tmp_path: Path) -> None:
    sources = _plugin_sources(tmp_path)
    assert len(sources) > 10
    offenders = [
        f"{path}:{line}: {statement}"
        for path in sources
        for line, statement in _pamiqx_imports(path)
        if statement != "from pamiqx.api import ..."
    ]
    assert not offenders, "plugins may import only `from pamiqx.api import`:\n" + "\n".join(
        offenders
    )


def test_the_scan_catches_an_internal_import(tmp_path: Path) -> None:
    bad = tmp_path / "bad.py"
    bad.write_text("import pamiqx\nfrom pamiqx.runtime.agent import PolicyAgent\n")
    assert [s for _, s in _pamiqx_imports(bad)] == [
        "import pamiqx",
        "from pamiqx.runtime.agent import ...",
    ]


def test_every_exported_name_resolves_and_importing_the_api_skips_torch() -> None:
    for name in pamiqx.api.__all__:
        assert getattr(pamiqx.api, name) is not None, name
    code = "import sys, pamiqx.api; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_bundled_plugins_and_the_template_declare_this_api_range(tmp_path: Path) -> None:
    assert pamiqx.api.API_VERSION == "0.2" and api_range() == ">=0.2,<0.3"
    for pyproject in [
        *ROOT.glob("plugins/*/pyproject.toml"),
        new_curiosity_package("ranged", tmp_path) / "pyproject.toml",
    ]:
        assert f'"pamiqx{api_range()}"' in pyproject.read_text(), pyproject


def _module_graph() -> dict[str, set[str]]:
    """Module-level imports between pamiqx modules (not TYPE_CHECKING, not inside functions)."""
    modules = {
        ".".join(p.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__"): p
        for p in (ROOT / "pamiqx").rglob("*.py")
    }
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        deps: set[str] = set()
        for node in ast.parse(path.read_text()).body:
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                targets = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
            else:
                continue
            deps |= {t for t in targets if t in modules and t != name}
        graph[name] = deps
    return graph


def test_no_import_cycle_and_the_api_depends_on_nothing_else_of_pamiqx() -> None:
    graph = _module_graph()
    graphlib.TopologicalSorter(graph).prepare()  # raises CycleError
    for module, deps in graph.items():
        if module.startswith("pamiqx.api"):
            outside = {d for d in deps if not d.startswith("pamiqx.api")}
            assert not outside, (module, outside)


def test_plugin_for_another_api_version_is_listed_as_failed_and_not_imported(
    dist_root: Path, cli: CLI
) -> None:
    # Importing it would fail loudly: the host must not even try.
    old = "raise RuntimeError('imported although written for another API')\n"
    write_distribution(
        dist_root,
        "pamiqx-old",
        "0.1.0",
        {"old_plugin": old},
        {"old": "old_plugin"},
        requires=("pamiqx<0.2,>=0.1", "torch>=2.5"),
    )
    write_distribution(
        dist_root,
        "pamiqx-zero",
        "1.0",
        {"zero_plugin": curiosity_module("zero")},
        {"zero": "zero_plugin"},
        requires=(f"pamiqx{api_range()}",),
    )
    manager = load_plugins()
    [failure] = [f for f in manager.failures if f.distribution == "pamiqx-old"]
    assert "written for pamiqx<0.2,>=0.1" in failure.reason
    assert "plugin API 0.2" in failure.reason and "imported although" not in failure.reason
    assert manager.lookup("curiosity", "zero").distribution == "pamiqx-zero"
    code, out = cli("list-plugins", "--json")
    assert code == 0
    [listed] = [f for f in json.loads(out)["failures"] if f["distribution"] == "pamiqx-old"]
    assert "\n" not in listed["reason"] and "pamiqx<0.2" in listed["reason"]


def test_outsider_01_plugin_keeps_working_or_gets_a_clear_reason(dist_root: Path) -> None:
    # Written against 0.1 with an open range: `pamiqx.hookimpl` and `pamiqx.api` still work.
    write_distribution(
        dist_root,
        "pamiqx-legacy",
        "0.1.0",
        {"legacy_plugin": curiosity_module("legacy", "LegacyPlugin")},
        {"legacy": "legacy_plugin"},
        requires=("pamiqx>=0.1",),
    )
    # ... but one that reached into 0.1 internals gets told what the API is.
    internal = textwrap.dedent(curiosity_module("deep")).replace(
        "import attrs", "import attrs\nfrom pamiqx.models.networks import one_hot_actions"
    )
    write_distribution(
        dist_root,
        "pamiqx-deep",
        "0.1.0",
        {"deep_plugin": internal},
        {"deep": "deep_plugin"},
        requires=("pamiqx>=0.1",),
    )
    manager = load_plugins()
    assert manager.lookup("curiosity", "legacy").distribution == "pamiqx-legacy"
    [failure] = [f for f in manager.failures if f.distribution == "pamiqx-deep"]
    assert "pamiqx.models.networks" in failure.reason
    assert "plugins may import only pamiqx.api" in failure.reason


ORDERED_OBSERVERS = {
    "first_plugin": """
        from pamiqx.api import hookimpl
        SEEN = []

        @hookimpl(tryfirst=True)
        def pamiqx_metrics_emitted(step, metrics):
            SEEN.append("first")
    """,
    "wrapping_plugin": """
        from pamiqx.api import hookimpl
        from first_plugin import SEEN

        @hookimpl(wrapper=True)
        def pamiqx_metrics_emitted(step, metrics):
            SEEN.append("wrapper before")
            result = yield
            SEEN.append("wrapper after")
            return result
    """,
    "failing_plugin": """
        from pamiqx.api import hookimpl

        @hookimpl
        def pamiqx_metrics_emitted(step, metrics):
            raise KeyError("oops")
    """,
    "last_plugin": """
        from pamiqx.api import hookimpl
        from first_plugin import SEEN

        @hookimpl(trylast=True)
        def pamiqx_metrics_emitted(step, metrics):
            SEEN.append("last")
    """,
}


def test_lifecycle_hooks_honour_wrappers_and_ordering_and_isolate_failures(
    dist_root: Path,
) -> None:
    for module, source in ORDERED_OBSERVERS.items():
        name = module.removesuffix("_plugin")
        write_distribution(dist_root, f"pamiqx-{name}", "1.0", {module: source}, {name: module})
    errors = load_plugins().call_lifecycle("pamiqx_metrics_emitted", step=1, metrics={})
    import first_plugin  # type: ignore[import-not-found]

    assert first_plugin.SEEN == ["wrapper before", "first", "last", "wrapper after"]
    assert len(errors) == 1 and "failing_plugin" in errors[0] and "KeyError" in errors[0]


@pytest.mark.timeout(300)
def test_trace_hooks_traces_every_hook_a_real_run_calls(tmp_path: Path) -> None:
    experiment = tmp_path / "traced.toml"
    experiment.write_text(tiny_maze(tmp_path / "logs", name="traced", max_steps=64))
    env = {**os.environ, "PAMIQX_TRACE_HOOKS": "1", "CI": "true"}
    out = subprocess.run(
        [sys.executable, "-m", "pamiqx", "run", str(experiment)],
        capture_output=True,
        text=True,
        env=env,
        timeout=280,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    for hook in (
        "pamiqx_register_environments",
        "pamiqx_register_models",
        "pamiqx_register_curiosities",
        "pamiqx_experiment_start",
        "pamiqx_metrics_emitted",
        "pamiqx_checkpoint_saved",
        "pamiqx_experiment_end",
    ):
        assert f"{hook} [hook]" in out.stderr, hook
