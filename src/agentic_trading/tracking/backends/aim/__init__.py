"""The Aim backend: runs in an Aim repository (a folder, or ``aim://`` for Aim's server)."""

from agentic_trading.config import Settings
from agentic_trading.tracking.backends.aim.reader import AimRunReader
from agentic_trading.tracking.backends.aim.remote_reader import AimServerRunReader
from agentic_trading.tracking.backends.aim.store import AimRunStore
from agentic_trading.tracking.base import RunReader

__all__ = ["AimRunReader", "AimRunStore", "AimServerRunReader", "create_reader"]


def create_reader(settings: Settings) -> RunReader:
    """The reader for ``ML_STORAGE_PATH``: Aim's server (``aim://``) or a local repository."""
    if settings.is_remote_tracking():
        return AimServerRunReader(settings)
    return AimRunReader(settings)
