"""One background asyncio loop per process, for synchronous callers of asynchronous code."""

from __future__ import annotations

import asyncio
import concurrent.futures
import os
import threading
from collections.abc import Coroutine
from typing import Any, ClassVar, TypeVar

__all__ = ["BackgroundLoop"]

T = TypeVar("T")


class BackgroundLoop:
    """An event loop running in a daemon thread; :meth:`get` returns the process's one."""

    _instance: ClassVar[BackgroundLoop | None] = None
    _guard: ClassVar[threading.Lock] = threading.Lock()

    def __init__(self) -> None:
        self.pid = os.getpid()
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._run, name="agentic-trading-io", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_forever()

    @classmethod
    def get(cls) -> BackgroundLoop:
        """The running background loop of this process (a new one after ``fork``)."""
        instance = cls._instance
        if instance is None or instance.pid != os.getpid():
            with cls._guard:
                instance = cls._instance
                if instance is None or instance.pid != os.getpid():
                    instance = cls._instance = BackgroundLoop()
        return instance

    @property
    def in_loop_thread(self) -> bool:
        """True when called from the loop's own thread (where waiting on it would deadlock)."""
        return threading.current_thread() is self._thread

    def submit(self, coro: Coroutine[Any, Any, T]) -> concurrent.futures.Future[T]:
        """Run ``coro`` on the loop; the returned future is safe to wait on from any other thread."""
        return asyncio.run_coroutine_threadsafe(coro, self.loop)

    def run(self, coro: Coroutine[Any, Any, T], timeout: float | None = None) -> T:
        """Run ``coro`` on the loop and wait for its result."""
        if self.in_loop_thread:
            coro.close()
            raise RuntimeError("BackgroundLoop.run() called from the loop's own thread")
        return self.submit(coro).result(timeout)
