"""pamiqx: curiosity-driven reinforcement learning experiments, assembled from plugins.

Plugin authors import from :mod:`pamiqx.api` (the declared plugin API) and test
with :mod:`pamiqx.testing`; everything else is the host's. ``pamiqx.hookimpl``
stays here for plugins written against pamiqx 0.1.
"""

from importlib.metadata import PackageNotFoundError, version

from pamiqx.api.hooks import hookimpl

try:
    __version__ = version("pamiqx")
except PackageNotFoundError:  # pragma: no cover - running from a source tree
    __version__ = "0.0.0+unknown"

__all__ = ["__version__", "hookimpl"]
