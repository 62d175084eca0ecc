"""Run a callback at interpreter exit, before ``atexit`` handlers (where libraries close up)."""

from __future__ import annotations

import atexit
import threading
from collections.abc import Callable

__all__ = ["register_exit"]


def register_exit(callback: Callable[[], None]) -> None:
    """Call ``callback`` at interpreter exit, while threads and ``atexit``-closed resources
    (Aim runs, our channels) still work. Hooks run last-registered first."""
    register = getattr(threading, "_register_atexit", None)
    try:
        if register is not None:
            register(callback)
            return
    except RuntimeError:  # interpreter already shutting down
        return
    atexit.register(callback)
