"""``pamiqx new-plugin``: write a new plugin package that installs and passes its own tests."""

from __future__ import annotations

import importlib.util
import re
import shlex
import shutil
import sys
from collections.abc import Mapping
from importlib.metadata import PackageNotFoundError, distribution
from importlib.resources import files
from pathlib import Path
from string import Template

from pamiqx.api import API_VERSION
from pamiqx.api.errors import PamiqxError

_NAME = re.compile(r"[a-z][a-z0-9]*(-[a-z0-9]+)*")
# template file -> path in the new package ({module} is replaced)
_CURIOSITY_FILES = {
    "pyproject.toml.tmpl": "pyproject.toml",
    "README.md.tmpl": "README.md",
    "plugin.py.tmpl": "src/{module}/plugin.py",
    "mechanism.py.tmpl": "src/{module}/mechanism.py",
    "test_plugin.py.tmpl": "tests/test_{module}.py",
}


def api_range() -> str:
    """Return the pamiqx requirement of a plugin written for this API, e.g. ``>=0.2,<0.3``."""
    major, minor = (int(part) for part in API_VERSION.split("."))
    return f">={major}.{minor},<{major}.{minor + 1}"


def _installed_version(name: str) -> str | None:
    try:
        return distribution(name).version
    except (PackageNotFoundError, ValueError):
        return None


def check_name(name: str, taken: Mapping[str, str] | None = None) -> None:
    """Refuse a plugin name that is malformed or already used by something installed.

    Args:
        name: The plugin name asked for.
        taken: Installed plugin names (of any kind) and who has each, e.g.
            ``{"rnd": "curiosity plugin of pamiqx-rnd 0.2.0"}``.

    Raises:
        PamiqxError: The name is malformed, or an installed plugin, distribution or
            module already has it (the new package could not be told apart).
    """
    if not _NAME.fullmatch(name):
        raise PamiqxError(
            f"plugin name '{name}' must be lowercase words joined by '-', e.g. 'count-based'."
        )
    if taken and name in taken:
        raise PamiqxError(
            f"plugin name '{name}' is taken: the installed {taken[name]} has it; choose another "
            "name (`pamiqx list-plugins` shows the installed ones)."
        )
    for dist in (name, f"pamiqx-{name}"):
        version = _installed_version(dist)
        if version is not None:
            raise PamiqxError(
                f"plugin name '{name}' is taken: the distribution {dist} {version} is "
                "installed; choose another name."
            )
    if name == "pamiqx" or name.startswith("pamiqx-"):
        raise PamiqxError(
            f"plugin name '{name}': leave out the 'pamiqx-' prefix; the package is called "
            f"pamiqx-<name> (e.g. `pamiqx new-plugin curiosity {name.removeprefix('pamiqx-')}`)."
        )
    module = f"pamiqx_{name.replace('-', '_')}"
    if importlib.util.find_spec(module) is not None:
        raise PamiqxError(
            f"plugin name '{name}' is taken: an installed module is already called {module}; "
            "choose another name."
        )


def new_curiosity_package(
    name: str, directory: Path, taken: Mapping[str, str] | None = None
) -> Path:
    """Write a curiosity plugin package ``pamiqx-<name>`` under ``directory``.

    Nothing is written when the name or the folder is refused; a write that fails
    half-way removes the package folder again.

    Args:
        name: The plugin name, lowercase words joined by '-' (e.g. ``count-based``).
        directory: Where the package folder is created.
        taken: Installed plugin names and who has each (see :func:`check_name`).

    Returns:
        The package folder.

    Raises:
        PamiqxError: Bad or taken name, the folder already exists, ``directory`` is not
            a folder, or writing failed.
    """
    check_name(name, taken)
    if directory.exists() and not directory.is_dir():
        raise PamiqxError(f"--dir {directory}: is a file, not a folder; give a folder.")
    dist = f"pamiqx-{name}"
    root = directory / dist
    if root.exists() or root.is_symlink():
        raise PamiqxError(f"{root} already exists; choose another name or --dir.")
    module = dist.replace("-", "_")
    values = {
        "name": name,
        "dist": dist,
        "module": module,
        "class_name": "".join(part.capitalize() for part in name.split("-")) + "Curiosity",
        "title": " ".join(part.capitalize() for part in name.split("-")),
        "api_range": api_range(),
    }
    templates = files("pamiqx.scaffold") / "templates" / "curiosity"
    try:
        root.mkdir(parents=True)
        for template_name, target in _CURIOSITY_FILES.items():
            template = Template((templates / template_name).read_text(encoding="utf-8"))
            path = root / target.format(module=module)
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(template.substitute(values), encoding="utf-8")
        (root / "src" / module / "__init__.py").write_text(
            f'"""The {name} curiosity for pamiqx."""\n', encoding="utf-8"
        )
    except OSError as error:
        shutil.rmtree(root, ignore_errors=True)
        reason = error.strerror or str(error)
        raise PamiqxError(
            f"--dir {directory}: cannot write the package {dist} there ({reason}); "
            "give a writable folder."
        ) from None
    return root


def install_hint(root: Path) -> str:
    """Return the commands that install a new package into this pamiqx's environment and test it.

    This interpreter is the one pamiqx runs in (``.venv`` after ``make venv``, which has
    no pip): uv installs into it by path, from ``PATH`` or the project's ``.tools``.
    """
    uv = shutil.which("uv") or str(Path(sys.prefix).parent / ".tools" / "bin" / "uv")
    python = shlex.quote(sys.executable)
    return (
        f"{shlex.quote(uv)} pip install --python {python} -e {shlex.quote(str(root))} && "
        f"{python} -m pytest {shlex.quote(str(root / 'tests'))}"
    )
