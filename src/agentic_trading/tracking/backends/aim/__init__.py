"""The Aim backend: runs in an Aim repository (a folder, or ``aim://`` for Aim's server)."""

from agentic_trading.tracking.backends.aim.reader import AimRunReader
from agentic_trading.tracking.backends.aim.remote_reader import AimServerRunReader
from agentic_trading.tracking.backends.aim.store import AimRunStore

__all__ = ["AimRunReader", "AimRunStore", "AimServerRunReader"]
