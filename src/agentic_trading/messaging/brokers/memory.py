"""An in-process broker for development: no server, shared by every channel of the process."""

from __future__ import annotations

import asyncio
import threading
import time
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field

from agentic_trading.messaging.brokers.base import EVENT_FIELD, STOP_FIELD, WriteResult

__all__ = ["MemoryBroker", "MemoryStore"]


@dataclass
class _Namespace:
    records: dict[str, dict[str, str]] = field(default_factory=dict)
    expires: dict[str, float] = field(default_factory=dict)
    log: deque[tuple[int, str]] = field(default_factory=deque)
    next_id: int = 1
    waiters: list[tuple[asyncio.AbstractEventLoop, asyncio.Event]] = field(default_factory=list)


class MemoryStore:
    """The data behind memory brokers. Thread-safe, so channels on any event loop can share it."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.namespaces: dict[str, _Namespace] = {}

    def namespace(self, name: str) -> _Namespace:
        ns = self.namespaces.get(name)
        if ns is None:
            ns = self.namespaces[name] = _Namespace()
        return ns


_PROCESS_STORE = MemoryStore()


class MemoryBroker:
    """Keeps records and event logs in this process's memory.

    Every ``MemoryBroker()`` shares one store per process, so a dashboard and a training in the
    same process see each other. Nothing crosses processes: use Redis for that.
    """

    def __init__(
        self, *, ttl: float = 86_400.0, maxlen: int = 10_000, store: MemoryStore | None = None
    ) -> None:
        self._ttl = ttl
        self._maxlen = maxlen
        self._store = store if store is not None else _PROCESS_STORE

    @property
    def location(self) -> str:
        return "memory (this process only)"

    def _purge(self, ns: _Namespace, now: float) -> None:
        for experiment_id in [k for k, t in ns.expires.items() if t <= now]:
            ns.records.pop(experiment_id, None)
            ns.expires.pop(experiment_id, None)

    def _append(self, ns: _Namespace, event: str) -> str:
        event_id = ns.next_id
        ns.next_id += 1
        ns.log.append((event_id, event))
        while len(ns.log) > self._maxlen:
            ns.log.popleft()
        waiters, ns.waiters = ns.waiters, []
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        for loop, wake in waiters:
            if loop is running:
                wake.set()
            elif not loop.is_closed():
                loop.call_soon_threadsafe(wake.set)
        return str(event_id)

    async def write(
        self,
        namespace: str,
        experiment_id: str,
        fields: Mapping[str, str],
        event: str | None,
        *,
        record_event: bool = False,
    ) -> WriteResult:
        now = time.time()
        if record_event and event is not None:
            fields = {**fields, EVENT_FIELD: event}
        with self._store.lock:
            ns = self._store.namespace(namespace)
            self._purge(ns, now)
            record = ns.records.get(experiment_id)
            new = record is None
            if fields:
                if record is None:
                    record = ns.records[experiment_id] = {}
                record.update(fields)
                ns.expires[experiment_id] = now + self._ttl
            event_id = self._append(ns, event) if event is not None else None
            return WriteResult(event_id, new, record.get(STOP_FIELD) if record else None)

    async def read(self, namespace: str, experiment_id: str) -> dict[str, str] | None:
        with self._store.lock:
            ns = self._store.namespace(namespace)
            self._purge(ns, time.time())
            record = ns.records.get(experiment_id)
            return dict(record) if record is not None else None

    async def read_all(self, namespace: str) -> dict[str, dict[str, str]]:
        with self._store.lock:
            ns = self._store.namespace(namespace)
            self._purge(ns, time.time())
            return {k: dict(v) for k, v in ns.records.items()}

    async def delete(self, namespace: str, experiment_id: str, event: str | None) -> bool:
        with self._store.lock:
            ns = self._store.namespace(namespace)
            existed = ns.records.pop(experiment_id, None) is not None
            ns.expires.pop(experiment_id, None)
            if event is not None:
                self._append(ns, event)
            return existed

    async def read_events(
        self, namespace: str, after: str, *, block: float, count: int
    ) -> list[tuple[str, str]]:
        try:
            position = int(after)
        except ValueError:
            raise ValueError(f"event id {after!r} is not a memory-broker event id") from None
        deadline = time.monotonic() + block
        loop = asyncio.get_running_loop()
        while True:
            wake = asyncio.Event()
            with self._store.lock:
                ns = self._store.namespace(namespace)
                if ns.log and ns.log[-1][0] > position:
                    start = max(0, position + 1 - ns.log[0][0])
                    end = min(len(ns.log), start + count)
                    return [(str(ns.log[i][0]), ns.log[i][1]) for i in range(start, end)]
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return []
                ns.waiters.append((loop, wake))
            try:
                await asyncio.wait_for(wake.wait(), remaining)
            except TimeoutError:
                with self._store.lock:
                    ns.waiters = [w for w in ns.waiters if w[1] is not wake]

    async def last_event_id(self, namespace: str) -> str:
        with self._store.lock:
            ns = self._store.namespace(namespace)
            return str(ns.log[-1][0]) if ns.log else "0"

    async def ping(self) -> None:
        return None

    async def close(self) -> None:
        return None
