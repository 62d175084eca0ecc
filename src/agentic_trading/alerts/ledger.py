"""Who sends which alert: a claim per alert event in the run catalogue's ``alerts`` table.

The process that inserts an event's row sends it; every other process finds the row and does
not. A sender refreshes its claim at each attempt; an unsent row whose claim is older than
``LEASE_SECONDS`` (its sender died) is taken over by a watcher. Without a catalogue the
claims are this process's alone (:class:`LocalLedger`).
"""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Iterable
from typing import Any, Protocol

import sqlalchemy as sa

from agentic_trading.alerts.message import Alert
from agentic_trading.tracking.catalogue.database import connect
from agentic_trading.tracking.catalogue.schema import alerts

__all__ = ["LEASE_SECONDS", "AlertLedger", "CatalogueLedger", "LocalLedger"]

#: Seconds after its last attempt that an unsent claim may be taken over.
LEASE_SECONDS = 120.0


class AlertLedger(Protocol):
    """Claims of alert events, shared by the processes that may send them."""

    def claim(self, alert: Alert) -> bool:
        """Whether this process now sends ``alert`` (no one claimed it, or its claim lapsed)."""

    def attempted(self, alert: Alert, error: str | None) -> None:
        """Record an attempt: sent (``error`` is ``None``) or failed, refreshing the claim."""

    def overdue(self) -> list[Alert]:
        """Claimed alerts never sent whose claim lapsed."""

    def known(self, keys: Iterable[str]) -> set[str]:
        """Which of ``keys`` someone has claimed."""


def _me() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


class CatalogueLedger:
    """Claims in the catalogue at ``url`` (SQLite or PostgreSQL): one row per event."""

    def __init__(self, url: str) -> None:
        self.url = url

    def claim(self, alert: Alert) -> bool:
        now = time.time()
        engine = connect(self.url)
        row = {
            "key": alert.key,
            "event": alert.event.value,
            "alert": alert.as_data(),
            "claimed_at": now,
            "claimed_by": _me(),
            "attempts": 0,
        }
        try:
            with engine.begin() as db:
                db.execute(sa.insert(alerts).values(**row))
            return True
        except sa.exc.IntegrityError:
            pass
        # Someone has it; take it over only if it was never sent and its claim lapsed (one
        # process wins the conditional update).
        with engine.begin() as db:
            taken = db.execute(
                sa.update(alerts)
                .where(
                    alerts.c.key == alert.key,
                    alerts.c.sent_at.is_(None),
                    alerts.c.claimed_at < now - LEASE_SECONDS,
                )
                .values(claimed_at=now, claimed_by=_me())
            )
            return taken.rowcount == 1

    def attempted(self, alert: Alert, error: str | None) -> None:
        now = time.time()
        values: dict[str, object] = {
            "claimed_at": now,
            "attempts": alerts.c.attempts + 1,
            "last_error": error,
        }
        if error is None:
            values["sent_at"] = now
        with connect(self.url).begin() as db:
            db.execute(sa.update(alerts).where(alerts.c.key == alert.key).values(**values))

    def overdue(self) -> list[Alert]:
        before = time.time() - LEASE_SECONDS
        with connect(self.url).connect() as db:
            rows = db.execute(
                sa.select(alerts.c.alert).where(
                    alerts.c.sent_at.is_(None), alerts.c.claimed_at < before
                )
            )
            return [Alert.from_data(row[0]) for row in rows]

    def history(self, prefix: str) -> list[dict[str, Any]]:
        """The claims whose key starts with ``prefix`` (``run:<id>:``), oldest first: event,
        claimed by, attempts, sent at (``None``: not yet), last error."""
        c = alerts.c
        with connect(self.url).connect() as db:
            rows = db.execute(
                sa.select(c.key, c.event, c.claimed_by, c.attempts, c.sent_at, c.last_error)
                .where(c.key.startswith(prefix, autoescape=True))
                .order_by(c.claimed_at)
            )
            return [dict(row._mapping) for row in rows]

    def known(self, keys: Iterable[str]) -> set[str]:
        wanted = sorted(set(keys))
        found: set[str] = set()
        with connect(self.url).connect() as db:
            for start in range(0, len(wanted), 500):
                chunk = wanted[start : start + 500]
                found.update(
                    db.execute(sa.select(alerts.c.key).where(alerts.c.key.in_(chunk))).scalars()
                )
        return found


class LocalLedger:
    """Claims kept in this process (no catalogue): each event is sent once from here."""

    def __init__(self) -> None:
        self._claimed: set[str] = set()
        self._lock = threading.Lock()

    def claim(self, alert: Alert) -> bool:
        with self._lock:
            if alert.key in self._claimed:
                return False
            self._claimed.add(alert.key)
            return True

    def attempted(self, alert: Alert, error: str | None) -> None:
        pass

    def overdue(self) -> list[Alert]:
        return []

    def known(self, keys: Iterable[str]) -> set[str]:
        with self._lock:
            return self._claimed & set(keys)
