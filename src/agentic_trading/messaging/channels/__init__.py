"""Channels: typed publish/read APIs over a broker."""

from agentic_trading.messaging.channels.sync import SyncTrainingChannel
from agentic_trading.messaging.channels.training import ExperimentExistsError, TrainingChannel

__all__ = ["ExperimentExistsError", "SyncTrainingChannel", "TrainingChannel"]
