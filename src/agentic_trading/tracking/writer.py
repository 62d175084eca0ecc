"""The caller side of the tracker's writer: a bounded queue, fed to one writer per process.

The training loop only validates a point and puts it on the queue (microseconds). A feeder
thread sends the queue's operations in frames (``wire``) to the writer: by default a writer
*process* started on first use (``ML_WRITER=process``; on two cores a writer thread would
compete with the training loop for the GIL, and Aim costs about 100 µs per value), or the same
loop in a thread over pipes (``ML_WRITER=thread``). Every run of the process goes through the
one writer. When the queue is full the caller waits for room (back-pressure), so nothing
accepted is dropped. Closing a run, ``flush()``, ``close()`` and interpreter exit drain the
queue first. The writer records a heartbeat of every open run each ``ML_HEARTBEAT_INTERVAL``
seconds; a writer process whose training process dies (kill -9) reads the end of its input,
records the open runs as ``crashed`` and exits.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import os
import queue
import subprocess
import sys
import threading
import time
import uuid
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from datetime import UTC, datetime
from typing import IO, Any

from agentic_trading.common.exit_hooks import register_exit
from agentic_trading.config import TRACKING_FIELDS, Settings
from agentic_trading.status import ExperimentStatus
from agentic_trading.tracking.base import RunStore
from agentic_trading.tracking.errors import RunFinishedError, TrackingError
from agentic_trading.tracking.records import RunHandle
from agentic_trading.tracking.wire import (
    EXIT_ERROR,
    CallOp,
    CloseOp,
    FlushOp,
    Hello,
    OpenOp,
    Operation,
    Point,
    TrackOp,
    error_from_wire,
    read_frame,
    write_frame,
)

__all__ = ["EXIT_ERROR", "BackgroundWriter"]

logger = logging.getLogger("agentic_trading.tracking")

_POLL = 1.0  # seconds between two looks at the writer's health while waiting on it
_BATCH = 512  # operations per frame to the writer
_LINGER = 0.02  # seconds a point may wait for others to share its frame


class _Pending:
    """An accepted operation and, when it expects a reply, its future."""

    __slots__ = ("future", "op")

    def __init__(self, op: Operation, future: Future[Any] | None) -> None:
        self.op = op
        self.future = future


class _Link:
    """The two streams to a writer, and how to end it: a process, or a thread over pipes."""

    def __init__(
        self,
        to_writer: IO[bytes],
        from_writer: IO[bytes],
        process: subprocess.Popen[bytes] | None = None,
        thread: threading.Thread | None = None,
    ) -> None:
        self.to_writer = to_writer
        self.from_writer = from_writer
        self.process = process
        self.thread = thread

    @classmethod
    def to_process(cls) -> _Link:
        """A writer process (``python -m agentic_trading.tracking.writer_process``)."""
        child = subprocess.Popen(
            [sys.executable, "-m", "agentic_trading.tracking.writer_process"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
        )
        assert child.stdin is not None and child.stdout is not None
        return cls(child.stdin, child.stdout, process=child)

    @classmethod
    def to_thread(cls, store: RunStore, settings: Settings) -> _Link:
        """The writer's loop in a thread of this process, over pipes, writing to ``store``."""
        from agentic_trading.tracking.executor import RunExecutor
        from agentic_trading.tracking.writer_process import serve

        ops_read, ops_write = os.pipe()
        replies_read, replies_write = os.pipe()

        def run() -> None:
            with os.fdopen(ops_read, "rb") as ops, os.fdopen(replies_write, "wb") as replies:
                serve(ops, replies, lambda _: RunExecutor.for_settings(store, settings))

        thread = threading.Thread(target=run, name="agentic-trading-tracking-writer", daemon=True)
        thread.start()
        return cls(os.fdopen(ops_write, "wb"), os.fdopen(replies_read, "rb"), thread=thread)

    def exit_code(self) -> int | None:
        """How the writer ended (a thread: 0), or ``None`` while it runs."""
        if self.process is not None:
            return self.process.poll()
        return None if self.thread is None or self.thread.is_alive() else 0

    def wait(self, timeout: float) -> int | None:
        """Wait up to ``timeout`` seconds for the writer to end; its exit code, or ``None``."""
        if self.process is not None:
            try:
                return self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                return None
        if self.thread is not None:
            self.thread.join(timeout)
        return self.exit_code()

    def kill(self) -> None:
        """End a writer process stuck in its store (a thread cannot be ended: it is a daemon)."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)


class BackgroundWriter:
    """Feeds a run store from a bounded queue, through a writer process or thread.

    ``store`` is used by callers only for ``location`` and ``check_writable``; a writer process
    builds its own from ``settings``, a writer thread writes to ``store``.
    """

    def __init__(self, store: RunStore, settings: Settings) -> None:
        self.store = store
        self._settings = settings
        self._mode = settings.ml_writer
        self._lock = threading.Lock()
        self._open_runs: dict[str, RunHandle] = {}
        self._warned: set[tuple[str, str]] = set()
        self._values: dict[str, int] = {}  # metric values accepted per open run
        self._ids = itertools.count(1)
        self._closed = False
        self._start()
        register_exit(self._at_exit)

    def _start(self) -> None:
        self._pid = os.getpid()
        self._queue: queue.Queue[_Pending | None] = queue.Queue(
            maxsize=self._settings.ml_queue_size
        )
        self._accepted = 0
        self._sent = 0  # in the pipe to the writer
        self._taken = 0  # read by the writer
        self._applied = 0  # applied to the store
        self._progress_at = time.monotonic()  # when the store last applied something
        self._progress = threading.Condition()
        self._broken: str | None = None
        self._lost = 0
        self._link: _Link | None = None
        self._waiting: dict[int, _Pending] = {}
        self._waiting_lock = threading.Lock()
        self._urgent = threading.Event()
        self._feeder = threading.Thread(
            target=self._feed, name="agentic-trading-tracking-feeder", daemon=True
        )
        self._feeder.start()

    # --- caller side: cheap, thread-safe ------------------------------------------------------

    @property
    def closed(self) -> bool:
        """Whether :meth:`close` was called."""
        return self._closed

    @property
    def pending(self) -> int:
        """Operations accepted but not yet taken by the writer."""
        return self._accepted - self._taken

    @property
    def _writer_name(self) -> str:
        return f"the tracking writer {self._mode}"

    @property
    def writer_pid(self) -> int | None:
        """The writer process's pid (``None`` for a writer thread, or before it started)."""
        link = self._link
        return None if link is None or link.process is None else link.process.pid

    def submit(self, op: Operation, *, block: bool = True) -> _Pending | None:
        """Queue ``op``; return ``None`` (with ``block=False``) when the queue is full."""
        if self._closed:
            raise TrackingError("the tracker is closed; create a new one with get_ml_tracker()")
        if self._pid != os.getpid():  # forked: the parent's writer does not exist here
            with self._lock:
                self._open_runs.clear()
                self._start()
        if self._broken is not None:
            return self._refuse(op)
        future: Future[Any] | None = None
        if op["kind"] != "track" and op["kind"] != "output":
            op["id"] = next(self._ids)
            future = Future()
        item = _Pending(op, future)
        while True:  # back-pressure waits while the writer makes progress, never longer
            try:
                self._queue.put(item, block=block, timeout=_POLL if block else None)
                break
            except queue.Full:
                if not block:
                    return None
                self.check_health()
                if self._broken is not None:
                    return self._refuse(op)
        self._accepted += 1
        if future is not None:
            self._urgent.set()  # someone waits for this one: no lingering
        return item

    def _refuse(self, op: Operation) -> _Pending:
        """An operation for a broken writer: a point is counted as lost, anything else raises."""
        if op["kind"] == "track":
            self._lost += len(op["points"])
            return _Pending(op, None)
        if op["kind"] == "output":  # console lines are not tracking points: not counted
            return _Pending(op, None)
        raise TrackingError(self.failure or "the tracking writer failed")

    @property
    def failure(self) -> str | None:
        """Why the writer stopped writing, and what was lost since; ``None`` while it works."""
        if self._broken is None:
            return None
        lost = f"; {self._lost} tracking points were not recorded" if self._lost else ""
        return self._broken + lost

    def check_health(self) -> None:
        """Find a writer that died or is stuck (work in flight, nothing applied for the
        stuck timeout) and fail it, so that nobody waits on it any more."""
        if self._broken is not None:
            return
        link = self._link
        if link is not None and not self._closed:
            code = link.exit_code()
            if code is not None:
                self._fail(f"{self._writer_name} exited unexpectedly (code {code})")
                return
        in_flight = self._sent - self._applied
        idle = time.monotonic() - self._progress_at
        if in_flight > 0 and idle > self._stuck_after:
            self._fail(
                f"the tracking writer has written nothing to {self.store.location} for "
                f"{idle:.0f} s with {in_flight} operations waiting: it is stuck "
                "(ML_WRITER_TIMEOUT)",
                stop_writer=True,
            )

    @property
    def _stuck_after(self) -> float:
        # While Aim's server is away the writer retries for ML_RETRY_TIMEOUT without progress.
        timeout = self._settings.ml_writer_timeout
        if self._settings.is_remote_tracking():
            timeout += self._settings.ml_retry_timeout
        return timeout

    def result(self, pending: _Pending | None, timeout: float | None = None) -> Any:
        """Wait for ``pending``'s reply: while the writer makes progress, at most ``timeout``
        seconds if given; a writer that died or is stuck raises :class:`TrackingError`."""
        if pending is None or pending.future is None:
            return None
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            wait = _POLL if deadline is None else min(_POLL, max(0.0, deadline - time.monotonic()))
            try:
                return pending.future.result(wait)
            except FutureTimeout:
                if deadline is not None and time.monotonic() >= deadline:
                    raise TrackingError(
                        f"the tracking writer did not answer within {timeout:g} s"
                    ) from None
                self.check_health()

    async def result_async(self, pending: _Pending | None) -> Any:
        """:meth:`result` for the event loop: waits without blocking it."""
        if pending is None or pending.future is None:
            return None
        wrapped = asyncio.wrap_future(pending.future)
        while True:
            done, _ = await asyncio.wait({wrapped}, timeout=_POLL)
            if done:
                return wrapped.result()
            self.check_health()

    def open_op(self, experiment: str, config: dict[str, Any], tags: list[str]) -> OpenOp:
        """Open a run under a new id; the run is open for writes at once (the writer creates
        it in order, before any of its points)."""
        run_id = uuid.uuid4().hex[:24]  # Aim's own format of run hashes
        handle = RunHandle(run_id, experiment, datetime.now(UTC))
        with self._lock:
            self._open_runs[run_id] = handle
        return {
            "kind": "open",
            "run": run_id,
            "experiment": experiment,
            "config": config,
            "tags": tags,
        }

    def track_op(self, run: RunHandle, points: list[Point]) -> TrackOp:
        """One operation for ``points``: ``[step, finite values, names of skipped values]``."""
        self.check_open(run)
        values = 0
        for step, finite, skipped in points:
            values += len(finite)
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
        self._values[run.run_id] = self._values.get(run.run_id, 0) + values
        return {"kind": "track", "run": run.run_id, "points": points}

    def call_op(self, run: RunHandle, method: str, *args: Any) -> CallOp:
        self.check_open(run)
        return {"kind": "call", "run": run.run_id, "method": method, "args": list(args)}

    def close_op(
        self,
        run: RunHandle,
        status: ExperimentStatus,
        final_metrics: dict[str, float],
        error: str | None,
    ) -> CloseOp:
        with self._lock:
            self.check_open(run)
            del self._open_runs[run.run_id]
        return {
            "kind": "close",
            "run": run.run_id,
            "status": status.value,
            "final": final_metrics,
            "error": error,
            "values": self._values.pop(run.run_id, 0),
        }

    def flush_op(self) -> FlushOp:
        return {"kind": "flush"}

    def check_open(self, run: RunHandle) -> None:
        """Raise :class:`RunFinishedError` unless ``run`` is open in this writer."""
        if not isinstance(run, RunHandle):
            raise TypeError(f"expected the RunHandle that create_run returned, got {run!r}")
        if run.run_id not in self._open_runs:
            raise RunFinishedError(
                f"run {run.run_id} ({run.experiment}) is finished or was not created by this "
                "tracker; it takes no more writes"
            )

    def handle(self, op: OpenOp) -> RunHandle:
        """The handle of the run an ``open`` operation opened."""
        return self._open_runs[op["run"]]

    @property
    def waits_for_open(self) -> bool:
        """Whether ``create_run`` must wait for the run to exist: a writer thread cannot create
        one during interpreter shutdown, when a short script's queue may still hold it."""
        return self._mode == "thread"

    def open_runs(self) -> list[RunHandle]:
        with self._lock:
            return list(self._open_runs.values())

    def close(self, timeout: float | None = None) -> None:
        """Write everything accepted, then stop the writer, which records the runs still open
        as ``crashed``."""
        if self._closed:
            return
        if self._broken is None:
            try:
                self.result(self.submit(self.flush_op()), timeout)
            except TrackingError as exc:
                logger.error("tracking could not write everything before closing: %s", exc)
        self._closed = True
        try:
            self._queue.put(None, timeout=_POLL)
        except queue.Full:  # a broken writer's queue: nobody takes from it any more
            pass
        self._feeder.join(timeout if self._broken is None else _POLL)
        link = self._link
        if link is not None and link.wait(_POLL if self._broken else (timeout or 60.0)) is None:
            link.kill()
        self.store.close()
        if self._lost:
            logger.error("%d tracking points were lost: %s", self._lost, self._broken)

    def _at_exit(self) -> None:
        if self._closed or self._pid != os.getpid() or not self._feeder.is_alive():
            return
        try:
            for run in self.open_runs():
                self.submit(self.close_op(run, ExperimentStatus.CRASHED, {}, EXIT_ERROR))
            if self.pending > 1000:
                logger.warning("writing %d queued tracking operations before exit...", self.pending)
            # A tracking server that is away gets ML_RETRY_TIMEOUT to come back, not forever.
            remote = self._settings.is_remote_tracking()
            self.close(self._settings.ml_retry_timeout + 5 if remote else None)
        except Exception as exc:  # never turn interpreter exit into a traceback
            logger.error("tracking could not flush at exit: %s", exc or type(exc).__name__)

    # --- the feeder thread: queue -> frames to the writer ---------------------------------------

    def _connect(self) -> _Link:
        hello: Hello = {
            "settings": self._settings.model_dump(include=set(TRACKING_FIELDS)),
            "owner_pid": self._pid,
        }
        if self._mode == "process":
            link = _Link.to_process()
        else:
            link = _Link.to_thread(self.store, self._settings)
        self._link = link
        write_frame(link.to_writer, hello)
        threading.Thread(
            target=self._read_replies,
            args=(link.from_writer,),
            name="agentic-trading-tracking-replies",
            daemon=True,
        ).start()
        return link

    def _feed(self) -> None:
        try:
            link = self._connect()
        except OSError as exc:
            self._fail(f"{self._writer_name} could not start: {exc}")
            return
        # At most ML_QUEUE_SIZE operations in flight to the writer as well: memory stays
        # bounded and back-pressure reaches the caller when the writer falls behind.
        limit = self._settings.ml_queue_size
        try:
            while True:
                with self._progress:
                    self._progress.wait_for(
                        lambda: self._sent - self._taken < limit or self._broken is not None
                    )
                room = min(_BATCH, max(1, limit - (self._sent - self._taken)))
                item = self._queue.get()
                stop = item is None
                batch = [] if item is None else [item]
                # Points wait up to _LINGER for company: one frame per 20 ms instead of one per
                # training step spares both sides hundreds of wake-ups a second. The thread
                # sleeps through the linger instead of waiting on the queue, so a point put
                # meanwhile wakes nobody; an operation someone waits for (create, finish,
                # flush) cuts the linger short.
                if item is not None and item.future is None and not self._urgent.is_set():
                    self._urgent.wait(_LINGER)
                self._urgent.clear()
                while not stop and len(batch) < room:
                    try:
                        more = self._queue.get_nowait()
                    except queue.Empty:
                        break
                    if more is None:
                        stop = True
                    else:
                        batch.append(more)
                with self._waiting_lock:
                    for pending in batch:
                        if pending.future is not None:
                            self._waiting[pending.op["id"]] = pending  # type: ignore[typeddict-item]
                if batch and self._broken is not None:
                    for pending in batch:
                        self._refuse_pending(pending)
                    batch = []
                if batch:
                    if self._sent == self._applied:
                        self._progress_at = time.monotonic()  # work starts after idling
                    write_frame(link.to_writer, [pending.op for pending in batch])
                    self._sent += len(batch)  # in the pipe: the writer will have them
                if stop:
                    link.to_writer.close()  # end of input: the writer finishes and exits
                    return
        except (OSError, ValueError) as exc:
            self._fail(f"{self._writer_name} stopped taking data: {exc}")

    def _read_replies(self, stream: IO[bytes]) -> None:
        while True:
            try:
                frame = read_frame(stream)
            except (OSError, ValueError):
                frame = None
            if frame is None:
                break
            for reply in frame:
                if "taken" in reply:
                    with self._progress:
                        self._taken += reply["taken"]
                        self._progress.notify_all()
                elif "applied" in reply:
                    self._applied += reply["applied"]
                    self._progress_at = time.monotonic()
                elif "fault" in reply:
                    self._fail(str(reply["fault"]), stop_writer=True)
                else:
                    self._answer(reply)
        if not self._closed:
            link = self._link
            # Its output closes a moment before it can be reaped.
            code = None if link is None else link.wait(_POLL)
            self._fail(f"{self._writer_name} exited unexpectedly (code {code})")

    def _answer(self, reply: dict[str, Any]) -> None:
        with self._waiting_lock:
            pending = self._waiting.pop(reply["id"], None)
        if pending is None or pending.future is None or pending.future.done():
            return
        if reply.get("ok"):
            pending.future.set_result(reply.get("result"))
        else:
            pending.future.set_exception(error_from_wire(reply))

    def _refuse_pending(self, item: _Pending) -> None:
        if item.op["kind"] == "track":
            self._lost += len(item.op["points"])
        elif item.future is not None and not item.future.done():
            item.future.set_exception(TrackingError(self.failure or "the tracking writer failed"))

    def _fail(self, message: str, *, stop_writer: bool = False) -> None:
        """The writer writes no more: say so once, fail everyone waiting, drop what is queued
        (points are counted as lost); ``stop_writer`` ends a writer process stuck in its store."""
        with self._waiting_lock:
            if self._broken is not None:
                return
            self._broken = message
            waiting = list(self._waiting.values())
            self._waiting.clear()
        with self._progress:
            self._progress.notify_all()
        logger.error("%s; tracking points from now on are not recorded", message)
        for pending in waiting:
            if pending.future is not None and not pending.future.done():
                pending.future.set_exception(TrackingError(message))
        while True:  # free callers waiting for room, fail their futures
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                break
            if item is not None:
                self._refuse_pending(item)
        if stop_writer and self._link is not None:
            self._link.kill()  # stuck in a store that refuses writes: it would never return
