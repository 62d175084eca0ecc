"""Messaging: live status, progress and metrics of experiments (Redis, or memory in development).

Start with :class:`TrainingChannel` (asyncio) or :class:`SyncTrainingChannel` (for synchronous
training loops). The broker comes from ``MESSAGE_BROKER_TYPE``.
"""

from agentic_trading.messaging.brokers import (
    Broker,
    BrokerError,
    BrokerUnavailableError,
    MemoryBroker,
    create_broker,
)
from agentic_trading.messaging.channels import (
    ExperimentExistsError,
    SyncTrainingChannel,
    TrainingChannel,
)
from agentic_trading.messaging.messages import (
    Event,
    EventType,
    ExperimentState,
    MessageDecodeError,
)
from agentic_trading.status import ExperimentStatus, InvalidTransitionError

__all__ = [
    "Broker",
    "BrokerError",
    "BrokerUnavailableError",
    "Event",
    "EventType",
    "ExperimentExistsError",
    "ExperimentState",
    "ExperimentStatus",
    "InvalidTransitionError",
    "MemoryBroker",
    "MessageDecodeError",
    "SyncTrainingChannel",
    "TrainingChannel",
    "create_broker",
]
