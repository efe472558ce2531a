"""pamiqx: curiosity-driven reinforcement learning experiments, assembled from plugins.

Plugin authors import :data:`hookimpl` and the plugin base classes from here.
"""

from importlib.metadata import PackageNotFoundError, version

from pamiqx.markers import hookimpl

try:
    __version__ = version("pamiqx")
except PackageNotFoundError:  # pragma: no cover - running from a source tree
    __version__ = "0.0.0+unknown"

__all__ = ["__version__", "hookimpl"]
