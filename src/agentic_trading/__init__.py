"""Agentic Trading: experiment data management for trading agents.

Two systems work together: :mod:`agentic_trading.messaging` for live status and progress, and
:mod:`agentic_trading.tracking` for permanent experiment records.
"""

from agentic_trading.config import Settings, SettingsError, get_settings
from agentic_trading.status import ExperimentStatus, InvalidTransitionError

__all__ = [
    "ExperimentStatus",
    "InvalidTransitionError",
    "Settings",
    "SettingsError",
    "__version__",
    "get_settings",
]

__version__ = "0.1.0"
