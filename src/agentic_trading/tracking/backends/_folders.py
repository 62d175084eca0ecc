"""The one check every local tracking store makes before it is written: its folder."""

from __future__ import annotations

import os
from pathlib import Path

from agentic_trading.tracking.errors import TrackingUnavailableError

__all__ = ["ensure_writable_folder"]


def ensure_writable_folder(folder: Path, name: str, hint: str, check: Path | None = None) -> None:
    """Create ``folder`` if needed and make sure this user can write ``check`` (default the
    folder), in milliseconds; else ``TrackingUnavailableError`` starting with ``name`` (how
    the user knows the folder) and ending with ``hint`` when it is not writable."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise TrackingUnavailableError(f"{name} cannot be created: {exc.strerror or exc}") from None
    if not os.access(check or folder, os.W_OK | os.X_OK):
        raise TrackingUnavailableError(f"{name} is not writable by this user; {hint}")
