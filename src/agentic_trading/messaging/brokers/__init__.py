"""Message brokers: where live experiment state is kept. Pick one with :func:`create_broker`."""

from __future__ import annotations

import asyncio
import weakref

from agentic_trading.config import Settings, get_settings
from agentic_trading.messaging.brokers.base import (
    Broker,
    BrokerError,
    BrokerUnavailableError,
    WriteResult,
)
from agentic_trading.messaging.brokers.memory import MemoryBroker

__all__ = [
    "Broker",
    "BrokerError",
    "BrokerUnavailableError",
    "MemoryBroker",
    "WriteResult",
    "create_broker",
    "shared_broker",
]


def create_broker(settings: Settings | None = None) -> Broker:
    """A new broker of the type ``MESSAGE_BROKER_TYPE`` names (``memory`` or ``redis``)."""
    settings = settings or get_settings()
    if settings.message_broker_type == "redis":
        from agentic_trading.messaging.brokers.redis import RedisBroker

        return RedisBroker(settings)
    return MemoryBroker(ttl=settings.message_ttl_seconds, maxlen=settings.message_stream_maxlen)


_shared: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[str, Broker]] = (
    weakref.WeakKeyDictionary()
)


def shared_broker(settings: Settings | None = None) -> Broker:
    """The broker for ``settings`` shared by every channel on the running event loop.

    Channels made without an explicit broker use this, so ``TrainingChannel()`` in a loop costs
    no new connection pool. Memory brokers share one store per process in any case.
    """
    settings = settings or get_settings()
    loop = asyncio.get_running_loop()
    per_loop = _shared.setdefault(loop, {})
    key = repr(
        [getattr(settings, name) for name in _BROKER_FIELDS]
        + [settings.redis_password.get_secret_value() if settings.redis_password else None]
    )
    broker = per_loop.get(key)
    if broker is None:
        broker = per_loop[key] = create_broker(settings)
    return broker


_BROKER_FIELDS = (
    "message_broker_type",
    "redis_url",
    "redis_host",
    "redis_port",
    "redis_db",
    "redis_username",
    "redis_ssl",
    "message_ttl_seconds",
    "message_stream_maxlen",
)
