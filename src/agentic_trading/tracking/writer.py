"""The caller side of the tracker's writer: a bounded queue drained by a writer thread or process.

The training loop only validates a point and puts it on the queue (microseconds). By default a
writer *process* (``ML_WRITER=process``, as W&B does) applies the operations to Aim: on two
cores a writer thread would compete with the training loop for the GIL, and Aim costs about
100 µs per value. ``ML_WRITER=thread`` keeps everything in one process. When the queue is full
the caller waits for room (back-pressure), so nothing accepted is dropped. Closing a run,
``flush()``, ``close()`` and interpreter exit drain the queue first. The writer records a
heartbeat of every open run each ``ML_HEARTBEAT_INTERVAL`` seconds; a writer process that loses
its training process (kill -9) records the open runs as ``crashed`` and exits.
"""

from __future__ import annotations

import asyncio
import functools
import itertools
import json
import logging
import os
import queue
import struct
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

from agentic_trading.common.exit_hooks import register_exit
from agentic_trading.config import TRACKING_FIELDS, Settings
from agentic_trading.status import ExperimentStatus
from agentic_trading.tracking._writer_service import HURRY
from agentic_trading.tracking.base import RunStore
from agentic_trading.tracking.errors import RunFinishedError, TrackingError
from agentic_trading.tracking.executor import (
    EXIT_ERROR,
    RunExecutor,
    error_from_wire,
    error_to_wire,
)
from agentic_trading.tracking.models import RunHandle

__all__ = ["EXIT_ERROR", "BackgroundWriter", "read_frame", "write_frame"]

logger = logging.getLogger("agentic_trading.tracking")

_POLL = 1.0  # seconds between two looks at the writer's health while waiting on it
_BATCH = 512  # operations per frame to the writer process
_LINGER = 0.02  # seconds a point may wait for others to share its frame
_HEADER = struct.Struct(">I")

#: Seconds the writer process's start-up may take at the lowest priority before it starts again
#: at normal priority (see ``_writer_start``; Linux only: elsewhere it starts at normal priority).
_LOW_PRIORITY_START = 8.0
_LOW_PRIORITY = sys.platform == "linux"
_START = "import runpy, sys; runpy.run_path(sys.argv[1], run_name='__main__')"
_PIPE_BYTES = 1 << 20  # operations the pipe holds while the writer starts up


def _enlarge_pipe(stream: IO[bytes]) -> None:
    try:
        import fcntl

        fcntl.fcntl(stream.fileno(), fcntl.F_SETPIPE_SZ, _PIPE_BYTES)
    except (ImportError, AttributeError, OSError):
        pass  # the system's default pipe: the forwarder waits for room sooner, nothing is lost


def write_frame(stream: IO[bytes], data: Any) -> None:
    """One JSON document, length-prefixed (never pickle: the peer only decodes JSON)."""
    body = json.dumps(data, separators=(",", ":"), allow_nan=False).encode()
    stream.write(_HEADER.pack(len(body)) + body)
    stream.flush()


def read_frame(stream: IO[bytes]) -> Any:
    """The next JSON document, or ``None`` at end of stream."""
    header = stream.read(_HEADER.size)
    if len(header) < _HEADER.size:
        return None
    (size,) = _HEADER.unpack(header)
    body = stream.read(size)
    if len(body) < size:
        return None
    return json.loads(body)


class _Pending:
    """An accepted operation and, when it expects a reply, its future."""

    __slots__ = ("future", "op")

    def __init__(self, op: dict[str, Any], future: Future[Any] | None) -> None:
        self.op = op
        self.future = future


class BackgroundWriter:
    """Feeds a run store from a bounded queue, on a writer thread or in a writer process.

    ``store`` is used by callers only for ``location`` and ``check_writable``; in process mode
    the writer process builds its own from ``settings``.
    """

    def __init__(self, store: RunStore, settings: Settings) -> None:
        self.store = store
        self._settings = settings
        self._mode = settings.ml_writer
        self._lock = threading.Lock()
        self._open_runs: dict[str, RunHandle] = {}
        self._warned: set[tuple[str, str]] = set()
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
        self._sent = 0
        self._done = 0  # taken: applied (a thread), or read by the writer process
        self._applied = 0  # applied to the store
        self._progress_at = time.monotonic()  # when the store last applied something
        self._progress = threading.Condition()
        self._broken: str | None = None
        self._lost = 0
        self._child: subprocess.Popen[bytes] | None = None
        self._waiting: dict[int, _Pending] = {}
        self._waiting_lock = threading.Lock()
        self._urgent = threading.Event()
        target = self._run_process if self._mode == "process" else self._run_thread
        self._thread = threading.Thread(
            target=target, name="agentic-trading-tracking-writer", daemon=True
        )
        self._thread.start()

    # --- caller side: cheap, thread-safe ------------------------------------------------------

    @property
    def closed(self) -> bool:
        """Whether :meth:`close` was called."""
        return self._closed

    @property
    def pending(self) -> int:
        """Operations accepted but not yet written (a writer process: not yet taken by it)."""
        return self._accepted - self._done

    def submit(self, op: dict[str, Any], *, block: bool = True) -> _Pending | None:
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
        if op["kind"] != "track":
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

    def _refuse(self, op: dict[str, Any]) -> _Pending:
        """An operation for a broken writer: a point is counted as lost, anything else raises."""
        if op["kind"] == "track":
            self._lost += len(op["points"])
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
        child = self._child
        if child is not None and child.poll() is not None and not self._closed:
            self._fail(f"the tracking writer process exited unexpectedly (code {child.returncode})")
            return
        if child is not None and _LOW_PRIORITY and self._done == 0:
            # Someone waits on a writer that has not started yet: other work may be starving
            # its start-up at low priority. Sent again each look, in case one came too early.
            try:
                child.send_signal(HURRY)
            except OSError:
                pass
        in_flight = (self._sent if self._mode == "process" else self._accepted) - self._applied
        idle = time.monotonic() - self._progress_at
        if in_flight > 0 and idle > self._stuck_after:
            self._fail(
                f"the tracking writer has written nothing to {self.store.location} for "
                f"{idle:.0f} s with {in_flight} operations waiting: it is stuck "
                "(ML_WRITER_TIMEOUT)",
                stop_child=True,
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

    def open_op(self, experiment: str, config: dict[str, Any], tags: list[str]) -> dict[str, Any]:
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

    def track_op(self, run: RunHandle, points: list[list[Any]]) -> dict[str, Any]:
        """One operation for ``points``: ``[step, finite values, names of skipped values]``."""
        self.check_open(run)
        for step, _, skipped in points:
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
        return {"kind": "track", "run": run.run_id, "points": points}

    def call_op(self, run: RunHandle, method: str, *args: Any) -> dict[str, Any]:
        self.check_open(run)
        return {"kind": "call", "run": run.run_id, "method": method, "args": list(args)}

    def close_op(
        self,
        run: RunHandle,
        status: ExperimentStatus,
        final_metrics: dict[str, float],
        error: str | None,
    ) -> dict[str, Any]:
        with self._lock:
            self.check_open(run)
            del self._open_runs[run.run_id]
        return {
            "kind": "close",
            "run": run.run_id,
            "status": status.value,
            "final": final_metrics,
            "error": error,
        }

    def flush_op(self) -> dict[str, Any]:
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

    def handle(self, op: dict[str, Any]) -> RunHandle:
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
        """Write everything accepted, then stop the writer. Open runs are left to the reader's
        crash detection (a writer process records them as ``crashed``)."""
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
        self._thread.join(timeout if self._broken is None else _POLL)
        self._stop_child()
        self.store.close()
        if self._lost:
            logger.error("%d tracking points were lost: %s", self._lost, self._broken)

    def _stop_child(self) -> None:
        """End the writer process if it is still there (stuck in its store, say)."""
        child = self._child
        if child is None or child.poll() is not None:
            return
        try:
            child.wait(_POLL)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait(10)

    def _at_exit(self) -> None:
        if self._closed or self._pid != os.getpid() or not self._thread.is_alive():
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

    # --- writer thread (ML_WRITER=thread) -------------------------------------------------------

    def _run_thread(self) -> None:
        executor = RunExecutor.for_settings(self.store, self._settings)
        while True:
            try:
                item = self._queue.get(timeout=executor.seconds_to_beat())
            except queue.Empty:
                executor.beat_if_due()
                continue
            if item is None:
                return
            if self._broken is not None:  # the store refused writes: nothing more goes to it
                self._refuse_pending(item)
                continue
            if self._applied == self._accepted - 1:
                self._progress_at = time.monotonic()  # work starts after idling
            try:
                result = executor.apply(item.op)
            except BaseException as exc:
                if item.future is not None:
                    item.future.set_exception(exc)
            else:
                if item.future is not None:
                    item.future.set_result(result)
            self._done += 1
            self._applied += 1
            self._progress_at = time.monotonic()
            if executor.fault is not None:
                self._fail(executor.fault)
            if self._queue.empty():
                executor.settle()
            executor.beat_if_due()

    def _refuse_pending(self, item: _Pending) -> None:
        if item.op["kind"] == "track":
            self._lost += len(item.op["points"])
        elif item.future is not None and not item.future.done():
            item.future.set_exception(TrackingError(self.failure or "the tracking writer failed"))

    # --- writer process (ML_WRITER=process) -----------------------------------------------------

    def _run_process(self) -> None:
        if _LOW_PRIORITY:
            start = Path(__file__).with_name("_writer_start.py")
            command = ["-c", _START, str(start), str(_LOW_PRIORITY_START)]
        else:
            command = ["-m", "agentic_trading.tracking.writer_process"]
        try:
            child = self._child = subprocess.Popen(
                [sys.executable, *command], stdin=subprocess.PIPE, stdout=subprocess.PIPE
            )
            assert child.stdin is not None and child.stdout is not None
            _enlarge_pipe(child.stdin)
            fields = set(TRACKING_FIELDS)
            write_frame(
                child.stdin,
                {"settings": self._settings.model_dump(include=fields), "owner_pid": self._pid},
            )
        except OSError as exc:
            self._fail(f"the tracking writer process could not start: {exc}")
            return
        replies = threading.Thread(target=self._read_replies, args=(child.stdout,), daemon=True)
        replies.start()
        # At most ML_QUEUE_SIZE operations in flight to the process as well: memory stays
        # bounded and back-pressure reaches the caller when the process falls behind.
        limit = self._settings.ml_queue_size
        try:
            while True:
                with self._progress:
                    self._progress.wait_for(
                        lambda: self._sent - self._done < limit or self._broken is not None
                    )
                room = min(_BATCH, max(1, limit - (self._sent - self._done)))
                item = self._queue.get()
                stop = item is None
                batch = [] if item is None else [item]
                # Points wait up to _LINGER for company: one frame per 20 ms instead of one per
                # training step spares both processes hundreds of wake-ups a second. The
                # thread sleeps through the linger instead of waiting on the queue, so a point
                # put meanwhile wakes nobody; an operation someone waits for (create, finish,
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
                            self._waiting[pending.op["id"]] = pending
                if batch and self._broken is not None:
                    for pending in batch:
                        self._refuse_pending(pending)
                    batch = []
                if batch:
                    if self._sent == self._applied:
                        self._progress_at = time.monotonic()  # work starts after idling
                    write_frame(child.stdin, [pending.op for pending in batch])
                    self._sent += len(batch)  # in the pipe: the writer process will have them
                if stop:
                    child.stdin.close()
                    child.wait()
                    replies.join(5)
                    return
        except (OSError, ValueError) as exc:
            self._fail(f"the tracking writer process stopped taking data: {exc}")

    def _read_replies(self, stream: IO[bytes]) -> None:
        while True:
            frame = read_frame(stream)
            if frame is None:
                break
            for reply in frame:
                if "note" in reply:
                    logger.info("%s", reply["note"])
                    continue
                if "taken" in reply:
                    with self._progress:
                        self._done += reply["taken"]
                        self._progress.notify_all()
                    continue
                if "applied" in reply:
                    self._applied += reply["applied"]
                    self._progress_at = time.monotonic()
                    continue
                if "fault" in reply:
                    self._fail(str(reply["fault"]), stop_child=True)
                    continue
                with self._waiting_lock:
                    pending = self._waiting.pop(reply["id"], None)
                if pending is None or pending.future is None or pending.future.done():
                    continue
                if reply.get("ok"):
                    pending.future.set_result(reply.get("result"))
                else:
                    pending.future.set_exception(error_from_wire(reply))
        if not self._closed:
            code = None
            if self._child is not None:
                try:  # its pipe closes a moment before it can be reaped
                    code = self._child.wait(_POLL)
                except subprocess.TimeoutExpired:
                    pass
            self._fail(f"the tracking writer process exited unexpectedly (code {code})")

    def _fail(self, message: str, *, stop_child: bool = False) -> None:
        """The writer writes no more: say so once, fail everyone waiting, drop what is queued
        (points are counted as lost); ``stop_child`` ends a writer process stuck in its store."""
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
        if stop_child and self._child is not None and self._child.poll() is None:
            self._child.kill()  # stuck in a store that refuses writes: it would never return


def _prepared_executor(
    executor_for: Callable[[dict[str, Any]], RunExecutor], hello: dict[str, Any]
) -> RunExecutor:
    executor = executor_for(hello)
    executor.prepare()
    return executor


def serve(
    stdin: IO[bytes],
    stdout: IO[bytes],
    executor_for: Callable[[dict[str, Any]], RunExecutor],
    *,
    hello: dict[str, Any] | None = None,
    prepared: Callable[[], None] | None = None,
    abandoning: Callable[[], None] | None = None,
    set_up: Callable[[Callable[[], RunExecutor]], RunExecutor] | None = None,
) -> None:
    """The writer process's loop: apply each frame's operations, reply, beat; at end of input
    (the training process closed the pipe or died) record open runs as ``crashed``.
    ``hello`` is the settings frame if it was read already; before it reads any operation it
    makes its executor and does the first operations' one-off work (``RunExecutor.prepare``),
    through ``set_up`` if given (which runs what it is handed: at low priority, say), then
    calls ``prepared``. ``abandoning`` is called before open runs are recorded as crashed (it
    may end this process instead).

    Operations are acknowledged as *taken* when read, up to ``ML_WRITER_BUFFER`` of them not
    yet applied: while the tracking server is away the training goes on and this process holds
    its data; beyond that the training waits (back-pressure), nothing is dropped.
    """
    if hello is None:
        hello = read_frame(stdin)
        if hello is None:
            return
    make = functools.partial(_prepared_executor, executor_for, hello)
    executor = make() if set_up is None else set_up(make)
    limit = int(hello.get("settings", {}).get("ml_writer_buffer") or 100_000)
    frames: queue.Queue[Any] = queue.Queue()
    held = threading.Condition()
    held_ops = [0]  # operations read but not yet applied
    out_lock = threading.Lock()
    peer_gone = False

    def send(replies: list[dict[str, Any]]) -> None:
        nonlocal peer_gone
        with out_lock:
            if peer_gone:
                return
            try:
                write_frame(stdout, replies)
            except OSError:
                # The training process died: nobody reads replies any more. Keep applying what
                # it sent before dying, then record its open runs as crashed below.
                peer_gone = True

    def has_room() -> bool:
        return held_ops[0] < limit

    def read_all() -> None:
        while (frame := read_frame(stdin)) is not None:
            with held:
                held.wait_for(has_room)
                held_ops[0] += len(frame)
            frames.put(frame)
            send([{"taken": len(frame)}])
        frames.put(None)

    if prepared is not None:
        prepared()
    if "note" in hello:
        send([{"note": hello["note"]}])
    threading.Thread(target=read_all, daemon=True).start()
    fault_told = False
    while True:
        try:
            batch = frames.get(timeout=executor.seconds_to_beat())
        except queue.Empty:
            executor.beat_if_due()
            continue
        if batch is None:
            break
        replies: list[dict[str, Any]] = []
        for op in batch:
            try:
                result = executor.apply(op)
            except Exception as exc:
                if "id" in op:
                    replies.append({"id": op["id"], "ok": False, **error_to_wire(exc)})
            else:
                if "id" in op:
                    replies.append({"id": op["id"], "ok": True, "result": result})
            if executor.fault is not None and not fault_told:
                # Told at once: a store that refuses writes may also hang on the next one.
                fault_told = True
                send([{"fault": executor.fault}])
        with held:
            held_ops[0] -= len(batch)
            held.notify_all()
        replies.append({"applied": len(batch)})
        send(replies)
        if frames.empty():
            executor.settle()  # after the replies: whoever waits on one goes on meanwhile
        executor.beat_if_due()
    if abandoning is not None and executor.has_open_runs:
        abandoning()
    executor.settle()
    executor.abandon(EXIT_ERROR)
    executor.store.close()
