"""pluggy markers for the ``pamiqx`` project name (kept apart so hookspecs import nothing else)."""

import pluggy

PROJECT_NAME = "pamiqx"
ENTRY_POINT_GROUP = "pamiqx"

hookspec = pluggy.HookspecMarker(PROJECT_NAME)
hookimpl = pluggy.HookimplMarker(PROJECT_NAME)
