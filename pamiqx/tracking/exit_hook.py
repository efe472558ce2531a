"""aim's exit-time cleanup, run on the exiting thread (aim 3.29 on Python 3.12).

aim registers ``AutoClean.cleanup`` with :mod:`atexit`; that callback starts a
thread, which Python 3.12 forbids during interpreter shutdown, so every process
printed ``Exception ignored in atexit callback`` and skipped aim's final cleanup.
:func:`replace_aim_exit_hook` runs the same cleanup on the exiting thread instead.
"""

from __future__ import annotations

import atexit
from collections.abc import Callable

__all__ = ["replace_aim_exit_hook"]

_exit_hook_replaced = False


def replace_aim_exit_hook() -> None:
    """Run aim's exit-time cleanup without the thread Python 3.12 refuses to start.

    ``aim.ext.cleanup.AutoClean`` registers ``AutoClean.cleanup`` with atexit the
    first time an aim object needing cleanup is made. That callback runs the
    cleanup in a new thread (so a second Ctrl-C cannot interrupt it), and Python
    3.12 raises ``RuntimeError: can't create new thread at interpreter shutdown``:
    the cleanup never ran and the traceback was printed on every exit. Here aim's
    callback is unregistered (and aim told it is registered, so it does not add it
    again) and :func:`_finalize_aim_resources` does the same work on the exiting
    thread. Safe: aim's finalizers are ``weakref.finalize`` objects, which run at
    most once, so objects already closed (every tracker closes its run) are skipped.
    """
    global _exit_hook_replaced
    if _exit_hook_replaced:
        return
    from aim.ext.cleanup import AutoClean

    if not callable(getattr(AutoClean, "_cleanup", None)):
        return  # another aim version: leave its own hook alone
    atexit.unregister(AutoClean.cleanup)
    AutoClean._registered_with_atexit = True
    atexit.register(_finalize_aim_resources)
    _exit_hook_replaced = True


def _finalize_aim_resources() -> None:
    """Close aim objects still open at exit (runs not closed, repositories)."""
    from aim.ext.cleanup import AutoClean

    cleanup: Callable[[], None] = AutoClean._cleanup
    try:
        cleanup()
    except KeyboardInterrupt:
        # Finalizers run once: a second pass finishes those the interrupt skipped.
        cleanup()
