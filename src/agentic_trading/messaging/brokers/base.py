"""The small interface every message broker implements, and its errors."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

__all__ = [
    "EVENT_FIELD",
    "STOP_FIELD",
    "Broker",
    "BrokerError",
    "BrokerUnavailableError",
    "WriteResult",
]

STOP_FIELD = "stop"
"""The field of an experiment's record that holds a stop request (written by anyone)."""

EVENT_FIELD = "event"
"""The field of an experiment's record that holds its newest event (whose state is current)."""


class BrokerError(RuntimeError):
    """The broker failed in a way the caller should hear about."""


class BrokerUnavailableError(BrokerError, ConnectionError):
    """The broker cannot be reached (down, wrong address, wrong credentials)."""


@dataclass(frozen=True, slots=True)
class WriteResult:
    """What a write learned: the event's log position, whether the record was new, the stop flag."""

    event_id: str | None
    record_was_new: bool
    stop: str | None


@runtime_checkable
class Broker(Protocol):
    """Stores one record (a small mapping of fields) per experiment and one event log per namespace.

    Records expire ``ttl`` seconds after their last write; the log keeps about ``maxlen`` events.
    All methods may raise :class:`BrokerUnavailableError`.
    """

    @property
    def location(self) -> str:
        """Where the broker is, for messages (no secrets)."""
        ...

    async def write(
        self,
        namespace: str,
        experiment_id: str,
        fields: Mapping[str, str],
        event: str | None,
        *,
        record_event: bool = False,
    ) -> WriteResult:
        """Append ``event`` to the log and set ``fields`` of the record, atomically.

        With ``record_event`` the event also becomes the record's :data:`EVENT_FIELD` (sent once).
        """
        ...

    async def read(self, namespace: str, experiment_id: str) -> dict[str, str] | None:
        """One record, or None if there is none."""
        ...

    async def read_all(self, namespace: str) -> dict[str, dict[str, str]]:
        """Every live record of the namespace, by experiment id."""
        ...

    async def delete(self, namespace: str, experiment_id: str, event: str | None) -> bool:
        """Remove a record (appending ``event``); True if it existed."""
        ...

    async def read_events(
        self, namespace: str, after: str, *, block: float, count: int
    ) -> list[tuple[str, str]]:
        """Up to ``count`` ``(event_id, data)`` after position ``after``, waiting up to ``block`` s."""
        ...

    async def last_event_id(self, namespace: str) -> str:
        """The position of the newest event (``"0"`` if the log is empty)."""
        ...

    async def ping(self) -> None:
        """Return if the broker answers; raise :class:`BrokerUnavailableError` otherwise."""
        ...

    async def close(self) -> None:
        """Release connections. The broker may be used again afterwards (it reconnects)."""
        ...
