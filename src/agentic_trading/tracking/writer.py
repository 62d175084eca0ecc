"""The tracker's writer: a thread that owns the run store, fed by a bounded queue.

The training loop only validates a point and puts it on the queue (a few microseconds); the
writer thread pays the store's cost (Aim: about 100 µs per value). When the queue is full the
caller waits for room (back-pressure), so nothing accepted is ever dropped. Closing a run,
``flush()``, ``close()`` and interpreter exit drain the queue first. While a run is open the
writer records a heartbeat every ``ML_HEARTBEAT_INTERVAL`` seconds, which is how readers tell a
run whose process died (kill -9) from a live one.
"""

from __future__ import annotations

import atexit
import logging
import os
import queue
import threading
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any, TypeVar

from agentic_trading.status import ExperimentStatus
from agentic_trading.tracking.base import RunStore
from agentic_trading.tracking.errors import RunFinishedError, TrackingError
from agentic_trading.tracking.models import RunHandle

__all__ = ["EXIT_ERROR", "BackgroundWriter"]

logger = logging.getLogger("agentic_trading.tracking")
T = TypeVar("T")

#: The error recorded on a run its process left open at interpreter exit.
EXIT_ERROR = "the process exited before finish_run was called"


@dataclass
class _Open:
    experiment: str
    config: dict[str, Any]
    tags: list[str]
    future: Future[RunHandle] = field(default_factory=Future)


@dataclass
class _Track:
    run_id: str
    step: int
    values: dict[str, float]
    skipped: list[str]


@dataclass
class _Call:
    """Any other store call on one run, with a future for its result."""

    run_id: str
    call: Callable[[RunStore], Any]
    future: Future[Any] = field(default_factory=Future)


@dataclass
class _Close:
    run_id: str
    status: ExperimentStatus
    final_metrics: dict[str, float]
    error: str | None
    future: Future[None] = field(default_factory=Future)


@dataclass
class _Flush:
    future: Future[None] = field(default_factory=Future)


@dataclass
class _RunState:
    """What the writer thread knows about one open run."""

    skipped: Counter[str] = field(default_factory=Counter)
    skipped_written: int = 0
    failures: int = 0
    first_failure: str | None = None


_Op = _Open | _Track | _Call | _Close | _Flush


class BackgroundWriter:
    """Feeds a :class:`RunStore` from a bounded queue on a daemon thread."""

    def __init__(
        self, store: RunStore, *, queue_size: int = 10_000, heartbeat_interval: float = 5.0
    ) -> None:
        self.store = store
        self._queue_size = queue_size
        self._heartbeat_interval = heartbeat_interval
        self._lock = threading.Lock()
        self._open_runs: dict[str, RunHandle] = {}
        self._warned: set[tuple[str, str]] = set()
        self._closed = False
        self._start()
        _register_exit(self._at_exit)

    def _start(self) -> None:
        self._pid = os.getpid()
        self._queue: queue.Queue[_Op | None] = queue.Queue(maxsize=self._queue_size)
        self._thread = threading.Thread(
            target=self._work, name="agentic-trading-tracking-writer", daemon=True
        )
        self._thread.start()

    # --- caller side: cheap, thread-safe ------------------------------------------------------

    @property
    def closed(self) -> bool:
        """Whether :meth:`close` was called."""
        return self._closed

    @property
    def pending(self) -> int:
        """Operations accepted but not yet written."""
        return self._queue.qsize()

    def put(self, op: _Op, *, block: bool = True) -> bool:
        """Queue ``op``; with ``block=False`` return ``False`` instead of waiting for room."""
        if self._closed:
            raise TrackingError("the tracker is closed; create a new one with get_ml_tracker()")
        if self._pid != os.getpid():  # forked: the parent's thread does not exist here
            with self._lock:
                self._open_runs.clear()
                self._start()
        try:
            self._queue.put(op, block=block)
        except queue.Full:
            return False
        return True

    def open_op(self, experiment: str, config: dict[str, Any], tags: list[str]) -> _Open:
        return _Open(experiment, config, tags)

    def track_op(
        self, run: RunHandle, step: int, values: dict[str, float], skipped: list[str]
    ) -> _Track:
        self.check_open(run)
        for name in skipped:
            if (run.run_id, name) not in self._warned:
                self._warned.add((run.run_id, name))
                logger.warning(
                    "run %s: metric %r is not finite at step %d; non-finite values are not "
                    "stored (counted in the run's skipped_non_finite attribute)",
                    run.run_id,
                    name,
                    step,
                )
        return _Track(run.run_id, step, values, skipped)

    def call_op(self, run: RunHandle, call: Callable[[RunStore], T]) -> _Call:
        self.check_open(run)
        return _Call(run.run_id, call)

    def close_op(
        self,
        run: RunHandle,
        status: ExperimentStatus,
        final_metrics: dict[str, float],
        error: str | None,
    ) -> _Close:
        with self._lock:
            self.check_open(run)
            del self._open_runs[run.run_id]
        return _Close(run.run_id, status, final_metrics, error)

    def flush_op(self) -> _Flush:
        return _Flush()

    def check_open(self, run: RunHandle) -> None:
        """Raise :class:`RunFinishedError` unless ``run`` is open in this writer."""
        if not isinstance(run, RunHandle):
            raise TypeError(f"expected the RunHandle that create_run returned, got {run!r}")
        if run.run_id not in self._open_runs:
            raise RunFinishedError(
                f"run {run.run_id} ({run.experiment}) is finished or was not created by this "
                "tracker; it takes no more writes"
            )

    def opened(self, handle: RunHandle) -> RunHandle:
        with self._lock:
            self._open_runs[handle.run_id] = handle
        return handle

    def open_runs(self) -> list[RunHandle]:
        with self._lock:
            return list(self._open_runs.values())

    def close(self, timeout: float | None = None) -> None:
        """Write everything accepted, then stop the thread. Open runs stay open."""
        if self._closed:
            return
        flush = _Flush()
        self.put(flush)
        flush.future.result(timeout)
        self._closed = True
        self._queue.put(None)
        self._thread.join(timeout)
        self.store.close()

    def _at_exit(self) -> None:
        if self._closed or self._pid != os.getpid() or not self._thread.is_alive():
            return
        for run in self.open_runs():
            self.put(self.close_op(run, ExperimentStatus.CRASHED, {}, EXIT_ERROR))
        backlog = self.pending
        if backlog > 1000:
            logger.warning("writing %d queued tracking points before exit...", backlog)
        try:
            self.close()
        except Exception as exc:  # never turn interpreter exit into a traceback
            logger.error("tracking could not flush at exit: %s", exc)

    # --- writer thread --------------------------------------------------------------------------

    def _work(self) -> None:
        runs: dict[str, _RunState] = {}
        next_beat = time.monotonic() + self._heartbeat_interval
        while True:
            try:
                op = self._queue.get(timeout=max(0.0, next_beat - time.monotonic()))
            except queue.Empty:
                op = None
                if self._closed:
                    return
            else:
                if op is None:
                    return
                self._apply(op, runs)
                time.sleep(0)  # hand the GIL back now: a training loop may be waiting for it
            if time.monotonic() >= next_beat:
                self._heartbeats(runs)
                next_beat = time.monotonic() + self._heartbeat_interval

    def _apply(self, op: _Op, runs: dict[str, _RunState]) -> None:
        store = self.store
        if isinstance(op, _Track):
            state = runs.get(op.run_id)
            if state is None:
                return
            state.skipped.update(op.skipped)
            if not op.values:
                return
            try:
                store.track(op.run_id, op.step, op.values)
            except Exception as exc:
                _record_failure(op.run_id, state, exc)
        elif isinstance(op, _Open):
            try:
                run_id, created_at = store.open_run(op.experiment, op.config, op.tags)
            except BaseException as exc:
                op.future.set_exception(exc)
            else:
                runs[run_id] = _RunState()
                op.future.set_result(self.opened(RunHandle(run_id, op.experiment, created_at)))
        elif isinstance(op, _Call):
            try:
                op.future.set_result(op.call(store))
            except BaseException as exc:
                op.future.set_exception(exc)
        elif isinstance(op, _Close):
            state = runs.pop(op.run_id, _RunState())
            try:
                if state.skipped:
                    store.set_attributes(op.run_id, {"skipped_non_finite": dict(state.skipped)})
                store.close_run(op.run_id, op.status, op.final_metrics, op.error)
            except BaseException as exc:
                op.future.set_exception(exc)
                return
            if state.failures:
                op.future.set_exception(
                    TrackingError(
                        f"run {op.run_id}: {state.failures} points could not be written: "
                        f"{state.first_failure}"
                    )
                )
            else:
                op.future.set_result(None)
        else:  # _Flush: everything queued before it is written
            op.future.set_result(None)

    def _heartbeats(self, runs: dict[str, _RunState]) -> None:
        now = time.time()
        for run_id, state in runs.items():
            try:
                self.store.heartbeat(run_id, now)
                total = sum(state.skipped.values())
                if total != state.skipped_written:
                    self.store.set_attributes(run_id, {"skipped_non_finite": dict(state.skipped)})
                    state.skipped_written = total
            except Exception as exc:
                logger.warning("run %s: heartbeat not recorded: %s", run_id, exc)


def _record_failure(run_id: str, state: _RunState, exc: Exception) -> None:
    state.failures += 1
    if state.first_failure is None:
        state.first_failure = f"{type(exc).__name__}: {exc}"
        logger.error("run %s: tracking could not write a point: %s", run_id, state.first_failure)


def _register_exit(callback: Callable[[], None]) -> None:
    # threading's exit hooks run before atexit's, so the runs are still open when we flush
    # (Aim closes its runs from an atexit handler registered when the first run is made).
    register = getattr(threading, "_register_atexit", None)
    try:
        if register is not None:
            register(callback)
            return
    except RuntimeError:  # interpreter already shutting down
        return
    atexit.register(callback)
