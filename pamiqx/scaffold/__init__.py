"""``pamiqx new-plugin``: write a new plugin package that installs and passes its own tests."""

from __future__ import annotations

import re
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


def new_curiosity_package(name: str, directory: Path) -> Path:
    """Write a curiosity plugin package ``pamiqx-<name>`` under ``directory``.

    Args:
        name: The plugin name, lowercase words joined by '-' (e.g. ``count-based``).
        directory: Where the package folder is created.

    Returns:
        The package folder.

    Raises:
        PamiqxError: Bad name, or the folder already exists.
    """
    if not _NAME.fullmatch(name):
        raise PamiqxError(
            f"plugin name '{name}' must be lowercase words joined by '-', e.g. 'count-based'."
        )
    dist = f"pamiqx-{name}"
    root = directory / dist
    if root.exists():
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
    for template_name, target in _CURIOSITY_FILES.items():
        text = Template((templates / template_name).read_text(encoding="utf-8")).substitute(values)
        path = root / target.format(module=module)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    (root / "src" / module / "__init__.py").write_text(f'"""The {name} curiosity for pamiqx."""\n')
    return root
