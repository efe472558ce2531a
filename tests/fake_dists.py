"""Write small plugin distributions (dist-info + modules) into a folder on sys.path."""

from __future__ import annotations

import textwrap
from pathlib import Path


def write_distribution(
    root: Path,
    name: str,
    version: str,
    modules: dict[str, str],
    entry_points: dict[str, str],
    requires: tuple[str, ...] = (),
) -> Path:
    """Create an installed-looking distribution under ``root``.

    Args:
        root: A folder that will be put on ``sys.path``.
        name: Distribution name.
        version: Distribution version.
        modules: Module name to source code.
        entry_points: Entry-point name to ``module`` for the ``pamiqx`` group.
        requires: ``Requires-Dist`` lines, e.g. ``"pamiqx>=0.1,<0.2"``.

    Returns:
        The dist-info folder.
    """
    root.mkdir(parents=True, exist_ok=True)
    for module, source in modules.items():
        (root / f"{module}.py").write_text(textwrap.dedent(source))
    dist_info = root / f"{name.replace('-', '_')}-{version}.dist-info"
    dist_info.mkdir()
    requirements = "".join(f"Requires-Dist: {line}\n" for line in requires)
    (dist_info / "METADATA").write_text(
        f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n{requirements}"
    )
    lines = ["[pamiqx]"] + [f"{k} = {v}" for k, v in entry_points.items()]
    (dist_info / "entry_points.txt").write_text("\n".join(lines) + "\n")
    (dist_info / "RECORD").write_text("")
    return dist_info


def curiosity_module(plugin_name: str, class_name: str = "ZeroCuriosityPlugin") -> str:
    """Return the source of a module registering one trivial curiosity plugin."""
    return f'''
        from typing import Any

        import attrs

        import pamiqx
        from pamiqx.api import CuriosityPlugin


        @attrs.frozen
        class Options:
            scale: float = 1.0


        class {class_name}(CuriosityPlugin):
            """Test curiosity {plugin_name}."""

            name = "{plugin_name}"
            Options = Options

            def build(self, options: Any, context: Any, observation_spec: Any, action_spec: Any):
                from pamiqx.builtin.curiosity import NoCuriosity

                return NoCuriosity(context.device)


        @pamiqx.hookimpl
        def pamiqx_register_curiosities():
            return [{class_name}]
        '''
