"""``SyncTrainingChannel``: the training channel for synchronous training loops.

Stable-Baselines3 and most training loops are synchronous. This facade lets them publish without
ever waiting on the network: each call validates its arguments (raising ``ValueError`` at once),
then hands the update to one background event-loop thread per process and returns.

- Progress and metrics are coalesced per experiment: the newest values are sent, at most once
  per ``MESSAGE_PROGRESS_INTERVAL`` seconds each, so memory stays bounded and a loop that
  publishes on every step is not slowed down.
- Creation, status changes and stop requests are never dropped or merged, and they keep their
  order relative to the progress published before them.
- :meth:`close` (also at interpreter exit) delivers everything published.
"""

from __future__ import annotations

import asyncio
import atexit
import itertools
import logging
import threading
import time
import weakref
from collections import deque
from collections.abc import Awaitable, Callable, Mapping
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any, TypeVar

from agentic_trading.common.ids import validate_name
from agentic_trading.common.loop_thread import BackgroundLoop
from agentic_trading.config import Settings, get_settings
from agentic_trading.messaging.brokers import Broker
from agentic_trading.messaging.channels.training import TrainingChannel, check_message
from agentic_trading.messaging.messages import ExperimentState, check_config, check_metrics
from agentic_trading.messaging.state import check_progress, check_step
from agentic_trading.status import ExperimentStatus, check_transition

__all__ = ["SyncTrainingChannel"]

log = logging.getLogger(__name__)
T = TypeVar("T")

#: After sending progress or metrics, the loop keeps looking for more every interval for this
#: many seconds (the shortest interval it polls at is _MIN_POLL; shorter ones are woken).
_POLL_FOR = 2.0
_MIN_POLL = 0.01


@dataclass
class _Op:
    """A queued call that is never merged: creation, status change, stop, read, flush."""

    seq: int
    experiment_id: str | None
    call: Callable[[], Awaitable[Any]]
    result: Future[Any] | None = None
    flush_all: bool = False


@dataclass
class _Pending:
    """The newest progress and metrics of one experiment, not yet sent."""

    progress: tuple[int, int, float, float] | None = None
    progress_seq: int = 0
    metrics: dict[str, float] = field(default_factory=dict)
    metrics_step: int = 0
    metrics_at: float = 0.0
    metrics_seq: int = 0
    progress_sent: float = float("-inf")
    metrics_sent: float = float("-inf")

    @property
    def empty(self) -> bool:
        return self.progress is None and not self.metrics


class SyncTrainingChannel:
    """A thread-safe, non-blocking :class:`TrainingChannel` for synchronous code.

    Publishing methods return at once (they only validate and enqueue); reading methods wait for
    the updates published before them, then for the broker, up to ``timeout`` seconds.

    Args:
        namespace: as for :class:`TrainingChannel`.
        settings: defaults to the process settings.
        broker: a factory for the broker, called in the background loop (default: the shared
            broker ``MESSAGE_BROKER_TYPE`` selects).
        progress_interval: least seconds between two sends of one experiment's progress (and of
            its metrics); default ``MESSAGE_PROGRESS_INTERVAL``.
        heartbeats: send heartbeats for running experiments from the background thread.
    """

    def __init__(
        self,
        namespace: str | None = None,
        *,
        settings: Settings | None = None,
        broker: Callable[[], Broker] | None = None,
        progress_interval: float | None = None,
        heartbeats: bool = True,
    ) -> None:
        self.settings = settings or get_settings()
        self.namespace = validate_name(namespace or self.settings.message_namespace, "namespace")
        self._interval = (
            self.settings.message_progress_interval
            if progress_interval is None
            else float(progress_interval)
        )
        self._background = BackgroundLoop.get()
        self._channel = TrainingChannel(
            self.namespace, settings=self.settings, heartbeats=heartbeats
        )
        self._broker_factory = broker
        self._lock = threading.Lock()
        self._ops: deque[_Op] = deque()
        self._pending: dict[str, _Pending] = {}
        self._status: dict[str, ExperimentStatus] = {}
        self._seq = itertools.count(1)
        self._waiting = False  # the worker waits for work (any call may wake it)
        self._sleeping = False  # ... and will not look by itself (progress and metrics wake it)
        self._closed = False
        self._wake = asyncio.Event()
        self._worker = self._background.submit(self._work())
        _open_channels.add(self)

    @property
    def progress_interval(self) -> float:
        """Least seconds between two sends of one experiment's progress (and of its metrics):
        publishing more often only replaces values that were not sent yet."""
        return self._interval

    # ------------------------------------------------------------------ caller side

    def _enqueue(self, op: _Op) -> None:
        with self._lock:
            if self._closed:
                raise RuntimeError("this SyncTrainingChannel is closed")
            self._ops.append(op)
            notify, self._waiting = self._waiting, False
        if notify:
            self._background.loop.call_soon_threadsafe(self._wake.set)

    def _call(self, experiment_id: str | None, call: Callable[[], Awaitable[Any]]) -> None:
        self._enqueue(_Op(next(self._seq), experiment_id, call))

    def _wait(self, timeout: float | None) -> float:
        """``timeout``, or ``MESSAGE_TIMEOUT``: no call waits on the broker without a bound."""
        return self.settings.message_timeout if timeout is None else timeout

    def _ask(self, call: Callable[[], Awaitable[T]], timeout: float | None) -> T:
        if self._background.in_loop_thread:
            raise RuntimeError("SyncTrainingChannel reads cannot run inside its own event loop")
        result: Future[T] = Future()
        self._enqueue(_Op(next(self._seq), None, call, result, flush_all=True))
        return result.result(self._wait(timeout))

    def _pending_for(self, experiment_id: str) -> tuple[_Pending, bool]:
        pending = self._pending.get(experiment_id)
        if pending is None:
            pending = self._pending[experiment_id] = _Pending()
        return pending, pending.empty

    def create_experiment(
        self, experiment_id: str, config: Mapping[str, Any] | None = None
    ) -> None:
        """Announce a new ``pending`` experiment (see :meth:`TrainingChannel.create_experiment`)."""
        validate_name(experiment_id)
        clean = check_config(config)
        at = time.time()
        with self._lock:
            self._status[experiment_id] = ExperimentStatus.PENDING
        self._call(experiment_id, lambda: self._channel._create(experiment_id, clean, at))

    def publish_status(
        self, experiment_id: str, status: ExperimentStatus | str, message: str | None = None
    ) -> None:
        """Change the status; an illegal change raises ``InvalidTransitionError`` here and now."""
        validate_name(experiment_id)
        new = ExperimentStatus.parse(status)
        message = check_message(message)
        with self._lock:
            known = self._status.get(experiment_id)
            if known is not None:
                check_transition(known, new, repr(experiment_id))
            self._status[experiment_id] = new
        at = time.time()
        self._call(experiment_id, lambda: self._channel._status(experiment_id, new, message, at))

    def publish_progress(
        self,
        experiment_id: str,
        current_step: int,
        total_steps: int,
        progress: float | None = None,
    ) -> None:
        """Report progress (percent computed when omitted); coalesced, never blocks."""
        validate_name(experiment_id)
        step, total, percent = check_progress(current_step, total_steps, progress)
        at = time.time()
        with self._lock:
            known = self._status.get(experiment_id)
            if known is not None and known.is_finished:
                check_transition(known, ExperimentStatus.RUNNING, repr(experiment_id))
            if known == ExperimentStatus.PENDING:
                self._status[experiment_id] = ExperimentStatus.RUNNING
            pending, was_empty = self._pending_for(experiment_id)
            if pending.progress is None:
                pending.progress_seq = next(self._seq)
            pending.progress = (step, total, percent, at)
            notify = was_empty and self._sleeping
            if notify:
                self._sleeping = False
        if notify:
            self._background.loop.call_soon_threadsafe(self._wake.set)

    def publish_metrics(self, experiment_id: str, step: int, metrics: Mapping[str, float]) -> None:
        """Publish the newest metric values for live curves; coalesced, never blocks."""
        validate_name(experiment_id)
        step = check_step(step)
        values = check_metrics(metrics)
        at = time.time()
        with self._lock:
            pending, was_empty = self._pending_for(experiment_id)
            if not pending.metrics:
                pending.metrics_seq = next(self._seq)
            pending.metrics.update(values)
            pending.metrics_step, pending.metrics_at = step, at
            notify = was_empty and self._sleeping
            if notify:
                self._sleeping = False
        if notify:
            self._background.loop.call_soon_threadsafe(self._wake.set)

    def request_stop(
        self, experiment_id: str, reason: str | None = None, timeout: float | None = None
    ) -> bool:
        """Ask an experiment to stop; waits for the broker. False if there is none to stop."""
        validate_name(experiment_id)
        reason = check_message(reason)
        return self._ask(lambda: self._channel.request_stop(experiment_id, reason), timeout)

    def stop_requested(self, experiment_id: str) -> bool:
        """True once a stop was requested, as seen by the newest write; no I/O, never blocks.

        The flag is refreshed by every progress, metrics and heartbeat write, so a request is
        seen within ``MESSAGE_PROGRESS_INTERVAL`` while progress flows, and within
        ``MESSAGE_HEARTBEAT_INTERVAL`` otherwise.
        """
        return self._channel.stop_requested_cached(experiment_id)

    def get_experiment(
        self, experiment_id: str, timeout: float | None = None
    ) -> ExperimentState | None:
        """The current state of one experiment (after this channel's own pending updates)."""
        validate_name(experiment_id)
        return self._ask(lambda: self._channel.get_experiment(experiment_id), timeout)

    def list_experiments(
        self, status: ExperimentStatus | str | None = None, timeout: float | None = None
    ) -> list[ExperimentState]:
        """Every live experiment of the namespace (see :meth:`TrainingChannel.list_experiments`)."""
        wanted = ExperimentStatus.parse(status) if status is not None else None
        return self._ask(lambda: self._channel.list_experiments(wanted), timeout)

    def delete_experiment(self, experiment_id: str, timeout: float | None = None) -> bool:
        """Remove an experiment's live state."""
        validate_name(experiment_id)
        with self._lock:
            self._status.pop(experiment_id, None)
        return self._ask(lambda: self._channel.delete_experiment(experiment_id), timeout)

    def flush(self, timeout: float | None = None) -> None:
        """Wait until everything published so far has been handed to the broker (or retried)."""
        result: Future[None] = Future()
        self._enqueue(_Op(next(self._seq), None, _nothing, result, flush_all=True))
        result.result(self._wait(timeout))

    @property
    def connected(self) -> bool:
        """False while the broker is unreachable and publishing is being retried."""
        return self._channel.connected

    def close(self, timeout: float | None = None) -> None:
        """Deliver everything published, stop heartbeats, and stop the worker. Idempotent."""
        if self._closed:
            return
        try:
            self.flush(timeout)
            self._background.run(self._channel.close(), self._wait(timeout))
        except TimeoutError:
            log.warning(
                "messaging: closing took longer than %ss; some updates may be unsent", timeout
            )
        finally:
            with self._lock:
                self._closed = True
                notify, self._waiting = self._waiting, False
            if notify:
                self._background.loop.call_soon_threadsafe(self._wake.set)
            _open_channels.discard(self)

    def __enter__(self) -> SyncTrainingChannel:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # ------------------------------------------------------------------ worker side

    async def _work(self) -> None:
        if self._broker_factory is not None:
            self._channel._broker = self._broker_factory()
        polling_until = float("-inf")
        while True:
            self._wake.clear()
            now = time.monotonic()
            with self._lock:
                ops = list(self._ops)
                self._ops.clear()
                due = [] if ops else self._take_due(now)
                wait = self._next_due(now)
                if due and self._interval >= _MIN_POLL:
                    polling_until = now + _POLL_FOR
                if wait is None and now < polling_until and not self._closed:
                    # Updates are flowing: look again after an interval rather than have the
                    # next publish wake this thread. A wake-up from the training thread hands
                    # it the GIL in the middle of the training's step; a look of our own runs
                    # while the training is in torch's code, which releases it.
                    wait = self._interval
                idle = not ops and not due
                if idle:
                    if self._closed and wait is None:
                        return
                    # Publishers wake the loop only when it would not look by itself.
                    self._waiting, self._sleeping = True, wait is None
            for experiment_id, pending in due:
                await self._send(experiment_id, pending)
            for op in ops:
                await self._run(op)
            if idle:
                try:
                    await asyncio.wait_for(self._wake.wait(), wait)
                except TimeoutError:
                    pass
                with self._lock:
                    self._waiting = self._sleeping = False

    def _take_due(self, now: float) -> list[tuple[str, _Pending]]:
        """Pending entries whose interval has passed, split off for sending (lock held)."""
        due = []
        for experiment_id, pending in self._pending.items():
            part = _Pending(progress_sent=pending.progress_sent, metrics_sent=pending.metrics_sent)
            if pending.progress is not None and now - pending.progress_sent >= self._interval:
                part.progress, pending.progress = pending.progress, None
                pending.progress_sent = now
            if pending.metrics and now - pending.metrics_sent >= self._interval:
                part.metrics, pending.metrics = pending.metrics, {}
                part.metrics_step, part.metrics_at = pending.metrics_step, pending.metrics_at
                pending.metrics_sent = now
            if not part.empty:
                due.append((experiment_id, part))
        return due

    def _next_due(self, now: float) -> float | None:
        """Seconds until the next pending entry may be sent, None if nothing is pending."""
        waits = [
            max(0.0, sent + self._interval - now)
            for pending in self._pending.values()
            for sent, has in (
                (pending.progress_sent, pending.progress is not None),
                (pending.metrics_sent, bool(pending.metrics)),
            )
            if has
        ]
        return min(waits) if waits else None

    def _take_before(self, experiment_id: str, seq: int) -> _Pending | None:
        """Progress and metrics of ``experiment_id`` published before ``seq`` (lock held)."""
        pending = self._pending.get(experiment_id)
        if pending is None:
            return None
        part = _Pending()
        now = time.monotonic()
        if pending.progress is not None and pending.progress_seq < seq:
            part.progress, pending.progress = pending.progress, None
            pending.progress_sent = now
        if pending.metrics and pending.metrics_seq < seq:
            part.metrics, pending.metrics = pending.metrics, {}
            part.metrics_step, part.metrics_at = pending.metrics_step, pending.metrics_at
            pending.metrics_sent = now
        return None if part.empty else part

    async def _send(self, experiment_id: str, part: _Pending) -> None:
        try:
            if part.progress is not None:
                step, total, percent, at = part.progress
                await self._channel._progress(experiment_id, step, total, percent, at)
            if part.metrics:
                await self._channel._metrics(
                    experiment_id, part.metrics_step, part.metrics, part.metrics_at
                )
        except Exception as exc:
            log.error("messaging: update of %s failed: %s", experiment_id, exc)

    async def _run(self, op: _Op) -> None:
        """Run one queued call, after the progress and metrics published before it."""
        with self._lock:
            names = list(self._pending) if op.flush_all else [op.experiment_id]
        for experiment_id in filter(None, names):
            with self._lock:
                earlier = self._take_before(experiment_id, op.seq)
            if earlier is not None:
                await self._send(experiment_id, earlier)
        try:
            value = await op.call()
        except Exception as exc:
            if op.result is not None:
                op.result.set_exception(exc)
            else:
                log.error("messaging: %s failed: %s", op.experiment_id or "request", exc)
            return
        if op.result is not None:
            op.result.set_result(value)


async def _nothing() -> None:
    return None


_open_channels: weakref.WeakSet[SyncTrainingChannel] = weakref.WeakSet()


@atexit.register
def _close_open_channels() -> None:
    for channel in list(_open_channels):
        try:
            channel.close(timeout=5.0)
        except Exception as exc:  # at exit, report and go on closing the others
            log.warning("messaging: could not close a channel at exit: %s", exc)
