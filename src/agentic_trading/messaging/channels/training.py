"""``TrainingChannel``: live status, progress and metrics of training experiments.

The asyncio API of the user guide::

    channel = TrainingChannel(namespace="development")
    await channel.create_experiment("exp_123", {"agent_type": "PPO"})
    await channel.publish_progress("exp_123", current_step=1000, total_steps=50000)
    await channel.publish_status("exp_123", "completed", "Training finished successfully")
    running = await channel.list_experiments(status="running")

Publishing never raises because the broker is down: the channel warns once, keeps the newest
state (and every status change), retries with back-off and re-sends when the broker is back.
Reading (``get_experiment``, ``list_experiments``) raises :class:`BrokerUnavailableError`.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from agentic_trading.common.backoff import Backoff, ExponentialBackoff
from agentic_trading.common.ids import validate_name
from agentic_trading.config import Settings, get_settings
from agentic_trading.liveness import Liveness
from agentic_trading.messaging.brokers import Broker, BrokerUnavailableError, shared_broker
from agentic_trading.messaging.brokers.base import EVENT_FIELD, STOP_FIELD
from agentic_trading.messaging.messages import (
    Event,
    EventType,
    ExperimentState,
    MessageDecodeError,
    check_config,
    check_metrics,
    decode_event,
    encode_event,
    encode_event_around,
)
from agentic_trading.messaging.state import (
    RateEstimator,
    apply_progress,
    apply_status,
    check_progress,
    check_step,
    new_state,
)
from agentic_trading.status import ExperimentStatus

__all__ = ["ExperimentExistsError", "TrainingChannel", "check_message"]

log = logging.getLogger(__name__)

CONFIG_FIELD = "config"
_STATE_EXCLUDE = {"config", "stop_requested"}
_MUST_DELIVER = {EventType.CREATED, EventType.STATUS, EventType.STOP_REQUESTED}


class ExperimentExistsError(ValueError):
    """``create_experiment`` for an id that a live experiment already uses."""


@dataclass
class _Unsent:
    """What could not be written during an outage: status changes in order, and the newest state."""

    events: list[str] = field(default_factory=list)
    latest: str | None = None


class TrainingChannel:
    """Publish and read the live state of training experiments in one namespace.

    Args:
        namespace: isolates experiments (and keys); defaults to ``MESSAGE_NAMESPACE``.
        broker: where state lives; defaults to the broker ``MESSAGE_BROKER_TYPE`` selects,
            shared by all channels on the running event loop.
        settings: defaults to the process settings (environment and ``.env``).
        backoff: how long to wait between reconnection attempts after a failed publish.
        heartbeats: send a heartbeat every ``MESSAGE_HEARTBEAT_INTERVAL`` seconds for each
            running experiment this channel publishes, so readers can tell it is alive.
    """

    def __init__(
        self,
        namespace: str | None = None,
        *,
        broker: Broker | None = None,
        settings: Settings | None = None,
        backoff: Backoff | None = None,
        heartbeats: bool = True,
    ) -> None:
        self.settings = settings or get_settings()
        self.namespace = validate_name(namespace or self.settings.message_namespace, "namespace")
        self._broker = broker
        self._backoff = backoff or ExponentialBackoff()
        self._heartbeats = heartbeats
        self._states: dict[str, ExperimentState] = {}
        self._rates: dict[str, RateEstimator] = {}
        self._stop_flags: dict[str, bool] = {}
        self._liveness = Liveness(self.settings.message_heartbeat_timeout)
        self._heartbeat_tasks: dict[str, asyncio.Task[None]] = {}
        self._unsent: dict[str, _Unsent] = {}
        self._failures = 0
        self._retry_at = 0.0
        self._write_lock = asyncio.Lock()
        self._closed = False

    # ------------------------------------------------------------------ plumbing

    @property
    def broker(self) -> Broker:
        """The broker this channel uses (resolved on first use, in the running loop)."""
        if self._broker is None:
            self._broker = shared_broker(self.settings)
        return self._broker

    async def __aenter__(self) -> TrainingChannel:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def close(self) -> None:
        """Stop heartbeats and try once more to deliver anything unsent."""
        self._closed = True
        tasks = list(self._heartbeat_tasks.values())
        self._heartbeat_tasks.clear()
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks, timeout=5.0)
        if self._unsent:
            self._retry_at = 0.0
            async with self._write_lock:
                await self._deliver_unsent()
            if self._unsent:
                log.warning(
                    "messaging: %d experiment(s) could not be updated on %s before closing",
                    len(self._unsent),
                    self.broker.location,
                )

    @property
    def connected(self) -> bool:
        """False while publishing is failing and being retried."""
        return self._failures == 0

    async def _update(
        self,
        experiment_id: str,
        kind: EventType,
        change: Callable[[ExperimentState], ExperimentState | None],
        **extra: Any,
    ) -> ExperimentState:
        """Apply ``change`` to the experiment's state and publish it, one update at a time."""
        async with self._write_lock:
            current = await self._current(experiment_id)
            state = change(current)
            if state is None:
                return current
            await self._commit(state, kind, **extra)
            return state

    async def _commit(
        self, state: ExperimentState, kind: EventType, *, fresh: bool = False, **extra: Any
    ) -> None:
        """Remember ``state`` and write it with its event; an outage is retried, never raised."""
        experiment_id = state.experiment_id
        self._states[experiment_id] = state
        state_json = state.model_dump_json(exclude=_STATE_EXCLUDE)
        fields = {CONFIG_FIELD: _config_json(state)} if fresh else {}
        event = encode_event_around(
            kind, self.namespace, experiment_id, state.updated_at, state_json, **extra
        )
        if self._unsent or self._failures:
            self._remember_unsent(experiment_id, kind, event)
            await self._deliver_unsent()
            return
        try:
            result = await self.broker.write(
                self.namespace, experiment_id, fields, event, record_event=True
            )
            self._stop_flags[experiment_id] = result.stop is not None
            if result.record_was_new and not fresh:
                # The record had vanished (expired, or Redis restarted empty): restore it whole.
                await self.broker.write(
                    self.namespace, experiment_id, {CONFIG_FIELD: _config_json(state)}, None
                )
        except BrokerUnavailableError as exc:
            self._outage(exc)
            self._remember_unsent(experiment_id, kind, event)

    def _remember_unsent(self, experiment_id: str, kind: EventType, event: str) -> None:
        unsent = self._unsent.setdefault(experiment_id, _Unsent())
        if kind in _MUST_DELIVER:
            unsent.events.append(event)
            unsent.latest = None
        else:
            unsent.latest = event

    def _outage(self, exc: BaseException) -> None:
        if self._failures == 0:
            log.warning(
                "messaging: publishing paused, %s; retrying in the background, the newest state "
                "and every status change will be sent when it answers",
                exc,
            )
        self._failures += 1
        self._retry_at = time.monotonic() + self._backoff.delay(self._failures)

    async def _deliver_unsent(self) -> None:
        if time.monotonic() < self._retry_at:
            return
        try:
            for experiment_id in list(self._unsent):
                unsent = self._unsent[experiment_id]
                state = self._states[experiment_id]
                while unsent.events:
                    await self.broker.write(
                        self.namespace, experiment_id, {}, unsent.events[0], record_event=True
                    )
                    unsent.events.pop(0)
                result = await self.broker.write(  # the config too: Redis may have restarted empty
                    self.namespace,
                    experiment_id,
                    {CONFIG_FIELD: _config_json(state)},
                    unsent.latest,
                    record_event=True,
                )
                self._stop_flags[experiment_id] = result.stop is not None
                del self._unsent[experiment_id]
        except BrokerUnavailableError as exc:
            self._outage(exc)
            return
        if self._failures:
            log.warning("messaging: %s answers again; live state is current", self.broker.location)
        self._failures = 0

    async def _current(self, experiment_id: str) -> ExperimentState:
        """This channel's view of an experiment, fetched once if another process made it."""
        state = self._states.get(experiment_id)
        if state is not None:
            return state
        try:
            stored = await self._read_state(experiment_id)
        except BrokerUnavailableError as exc:
            self._outage(exc)
            stored = None
        if stored is None:
            stored = new_state(self.namespace, experiment_id, {}, time.time())
        self._states[experiment_id] = stored
        return stored

    def _start_heartbeats(self, experiment_id: str) -> None:
        if not self._heartbeats or self._closed or experiment_id in self._heartbeat_tasks:
            return
        self._heartbeat_tasks[experiment_id] = asyncio.get_running_loop().create_task(
            self._heartbeat_loop(experiment_id), name=f"heartbeat:{experiment_id}"
        )

    def _stop_heartbeats(self, experiment_id: str) -> None:
        task = self._heartbeat_tasks.pop(experiment_id, None)
        if task is not None and task is not asyncio.current_task():
            task.cancel()

    async def _heartbeat_loop(self, experiment_id: str) -> None:
        interval = self.settings.message_heartbeat_interval
        while True:
            await asyncio.sleep(interval)
            state = self._states.get(experiment_id)
            if self._closed or state is None or state.status.is_finished:
                return
            try:
                await self.heartbeat(experiment_id)
            except Exception:  # a heartbeat must never end its task silently
                log.exception("messaging: heartbeat for %s failed", experiment_id)

    def _track_running(self, state: ExperimentState) -> None:
        if state.status == ExperimentStatus.RUNNING:
            self._start_heartbeats(state.experiment_id)
        elif state.status.is_finished:
            self._stop_heartbeats(state.experiment_id)

    # ------------------------------------------------------------------ publishing

    async def create_experiment(
        self, experiment_id: str, config: Mapping[str, Any] | None = None
    ) -> ExperimentState:
        """Announce a new ``pending`` experiment with its config.

        Re-creating an id whose experiment has finished (or crashed) replaces it; an id in use
        by a live experiment raises :class:`ExperimentExistsError`.
        """
        validate_name(experiment_id)
        return await self._create(experiment_id, check_config(config), time.time())

    async def _create(
        self, experiment_id: str, config: dict[str, Any], at: float
    ) -> ExperimentState:
        async with self._write_lock:
            try:
                existing = await self.get_experiment(experiment_id)
                if existing is not None and existing.status.is_finished:
                    await self.broker.delete(self.namespace, experiment_id, None)
            except BrokerUnavailableError as exc:
                self._outage(exc)
                existing = None
            if existing is not None and not existing.status.is_finished:
                raise ExperimentExistsError(
                    f"experiment {experiment_id!r} already exists in namespace "
                    f"{self.namespace!r} and is {existing.status.value} (created "
                    f"{time.ctime(existing.created_at)}); pick another id or delete it first"
                )
            state = new_state(self.namespace, experiment_id, config, at)
            self._rates[experiment_id] = RateEstimator()
            self._stop_flags[experiment_id] = False
            self._unsent.pop(experiment_id, None)
            await self._commit(state, EventType.CREATED, fresh=True)
            return state

    async def publish_status(
        self,
        experiment_id: str,
        status: ExperimentStatus | str,
        message: str | None = None,
    ) -> ExperimentState:
        """Move an experiment to ``status`` (``running``, ``completed``, ``failed``, ...).

        Raises ``InvalidTransitionError`` (a ``ValueError``) for an illegal change, such as a
        finished experiment becoming ``running`` again.
        """
        validate_name(experiment_id)
        new = ExperimentStatus.parse(status)
        message = check_message(message)
        return await self._status(experiment_id, new, message, time.time())

    async def _status(
        self, experiment_id: str, status: ExperimentStatus, message: str | None, at: float
    ) -> ExperimentState:
        state = await self._update(
            experiment_id, EventType.STATUS, lambda s: apply_status(s, status, message, at)
        )
        self._track_running(state)
        return state

    async def publish_progress(
        self,
        experiment_id: str,
        current_step: int,
        total_steps: int,
        progress: float | None = None,
    ) -> ExperimentState:
        """Report training progress; ``progress`` is in percent, computed when omitted.

        Steps per second and the ETA are derived from recent updates. Progress on a ``pending``
        experiment makes it ``running``.
        """
        validate_name(experiment_id)
        step, total, percent = check_progress(current_step, total_steps, progress)
        return await self._progress(experiment_id, step, total, percent, time.time())

    async def _progress(
        self, experiment_id: str, step: int, total: int, percent: float, at: float
    ) -> ExperimentState:
        def change(current: ExperimentState) -> ExperimentState:
            rate = self._rates.setdefault(experiment_id, RateEstimator()).add(at, step)
            return apply_progress(current, step, total, percent, at, rate)

        state = await self._update(experiment_id, EventType.PROGRESS, change)
        self._track_running(state)
        return state

    async def publish_metrics(
        self, experiment_id: str, step: int, metrics: Mapping[str, float]
    ) -> ExperimentState:
        """Publish the latest values of training metrics, for live curves.

        Values must be finite numbers (``ValueError`` otherwise). Tracking keeps the history;
        this only carries the newest values to live readers.
        """
        validate_name(experiment_id)
        return await self._metrics(
            experiment_id, check_step(step), check_metrics(metrics), time.time()
        )

    async def _metrics(
        self, experiment_id: str, step: int, metrics: dict[str, float], at: float
    ) -> ExperimentState:
        def change(current: ExperimentState) -> ExperimentState:
            return current.model_copy(
                update={
                    "latest_metrics": {**current.latest_metrics, **metrics},
                    "metrics_step": step,
                    "updated_at": at,
                    "heartbeat_at": at,
                }
            )

        return await self._update(
            experiment_id, EventType.METRICS, change, step=step, metrics=metrics
        )

    async def heartbeat(self, experiment_id: str) -> None:
        """Tell readers the experiment's process is alive (sent automatically while running)."""
        validate_name(experiment_id)
        now = time.time()

        def change(current: ExperimentState) -> ExperimentState | None:
            if current.status.is_finished:
                return None
            return current.model_copy(update={"heartbeat_at": now})

        await self._update(experiment_id, EventType.HEARTBEAT, change)

    async def request_stop(self, experiment_id: str, reason: str | None = None) -> bool:
        """Ask a training to stop; it sees this through :meth:`stop_requested` and stops cleanly.

        Returns False if there is no such experiment or it has already finished.
        """
        validate_name(experiment_id)
        reason = check_message(reason)
        state = await self.get_experiment(experiment_id)
        if state is None or state.status.is_finished:
            return False
        now = time.time()
        flag = json.dumps({"requested_at": now, "reason": reason})
        event = Event(
            type=EventType.STOP_REQUESTED,
            namespace=self.namespace,
            experiment_id=experiment_id,
            ts=now,
            state=state.model_copy(update={"stop_requested": True, "config": {}}),
        )
        await self.broker.write(
            self.namespace, experiment_id, {STOP_FIELD: flag}, encode_event(event)
        )
        log.info(
            "messaging: stop requested for %s (%s)", experiment_id, reason or "no reason given"
        )
        return True

    async def stop_requested(self, experiment_id: str) -> bool:
        """True once someone asked this experiment to stop. Never raises for an outage."""
        validate_name(experiment_id)
        try:
            record = await self.broker.read(self.namespace, experiment_id)
        except BrokerUnavailableError as exc:
            self._outage(exc)
            return self._stop_flags.get(experiment_id, False)
        requested = bool(record and STOP_FIELD in record)
        self._stop_flags[experiment_id] = requested
        return requested

    def stop_requested_cached(self, experiment_id: str) -> bool:
        """The stop flag as this channel last saw it (every write refreshes it); no I/O."""
        return self._stop_flags.get(experiment_id, False)

    async def delete_experiment(self, experiment_id: str) -> bool:
        """Remove an experiment's live state. Returns False if there was none."""
        validate_name(experiment_id)
        async with self._write_lock:
            self._stop_heartbeats(experiment_id)
            for cache in (self._states, self._rates, self._unsent, self._stop_flags):
                cache.pop(experiment_id, None)
            event = Event(
                type=EventType.DELETED,
                namespace=self.namespace,
                experiment_id=experiment_id,
                ts=time.time(),
            )
            return await self.broker.delete(self.namespace, experiment_id, encode_event(event))

    # ------------------------------------------------------------------ reading

    def _decode_record(
        self, experiment_id: str, record: Mapping[str, str]
    ) -> ExperimentState | None:
        raw = record.get(EVENT_FIELD)
        if raw is None:
            return None
        try:
            state = decode_event(raw).state
            if state is None:
                raise ValueError("its newest event carries no state")
            if CONFIG_FIELD in record:
                state.config = check_config(_loads_object(record[CONFIG_FIELD]))
        except ValueError as exc:
            log.warning("messaging: skipping unreadable record of %s: %s", experiment_id, exc)
            return None
        if state.experiment_id != experiment_id or state.namespace != self.namespace:
            log.warning(
                "messaging: skipping record of %s that names another experiment", experiment_id
            )
            return None
        state.stop_requested = STOP_FIELD in record
        return state

    async def _read_state(self, experiment_id: str) -> ExperimentState | None:
        record = await self.broker.read(self.namespace, experiment_id)
        return self._decode_record(experiment_id, record) if record else None

    async def get_experiment(self, experiment_id: str) -> ExperimentState | None:
        """The current state of one experiment, or None if there is none (or it expired)."""
        validate_name(experiment_id)
        state = await self._read_state(experiment_id)
        if state is None:
            return None
        return state.with_liveness(self._liveness, time.time())

    async def list_experiments(
        self, status: ExperimentStatus | str | None = None
    ) -> list[ExperimentState]:
        """Every live experiment of the namespace, newest first; optionally only one status.

        A ``running`` experiment whose heartbeats stopped is reported as ``crashed``.
        """
        wanted = ExperimentStatus.parse(status) if status is not None else None
        records = await self.broker.read_all(self.namespace)
        now = time.time()
        states = []
        for experiment_id, record in records.items():
            state = self._decode_record(experiment_id, record)
            if state is None:
                continue
            state = state.with_liveness(self._liveness, now)
            if wanted is None or state.status == wanted:
                states.append(state)
        states.sort(key=lambda s: s.created_at, reverse=True)
        return states

    async def last_event_id(self) -> str:
        """The position of the newest event: ``subscribe(last_event_id=...)`` from it sees only
        what happens after this call (a subscription otherwise starts when first iterated)."""
        return await self.broker.last_event_id(self.namespace)

    async def subscribe(
        self,
        experiment_id: str | None = None,
        *,
        last_event_id: str | None = None,
        snapshot: bool = True,
        poll_interval: float = 1.0,
    ) -> AsyncIterator[Event]:
        """Events of one experiment (or the whole namespace) as they happen.

        Starts with a ``snapshot`` event per current experiment (unless ``snapshot=False``), then
        follows the event log. Pass ``last_event_id`` (an event's ``id``) to resume after it:
        everything since that is still retained arrives, no snapshot. A running experiment whose
        heartbeats stop yields a ``status`` event with status ``crashed``. Connection loss is
        retried with back-off; the iterator resumes where it was.
        """
        if experiment_id is not None:
            validate_name(experiment_id)
        broker = self.broker
        alive: dict[str, ExperimentState] = {}
        failures = 0

        def follow(state: ExperimentState | None) -> None:
            if state is None:
                return
            if state.status == ExperimentStatus.RUNNING:
                alive[state.experiment_id] = state
            else:
                alive.pop(state.experiment_id, None)

        if last_event_id is None:
            while True:
                try:
                    cursor = await broker.last_event_id(self.namespace)
                    current = (
                        await self.list_experiments()
                        if experiment_id is None
                        else [s for s in [await self.get_experiment(experiment_id)] if s]
                    )
                    break
                except BrokerUnavailableError as exc:
                    failures += 1
                    _warn_subscriber(exc, failures)
                    await asyncio.sleep(self._backoff.delay(failures))
            if snapshot:
                for state in current:
                    follow(state)
                    yield Event(
                        type=EventType.SNAPSHOT,
                        namespace=self.namespace,
                        experiment_id=state.experiment_id,
                        ts=state.updated_at,
                        state=state,
                    )
            else:
                for state in current:
                    follow(state)
        else:
            cursor = last_event_id
        failures = 0
        while True:
            try:
                entries = await broker.read_events(
                    self.namespace, cursor, block=poll_interval, count=500
                )
            except BrokerUnavailableError as exc:
                failures += 1
                _warn_subscriber(exc, failures)
                await asyncio.sleep(self._backoff.delay(failures))
                continue
            if failures:
                log.warning("messaging: subscriber reconnected to %s", broker.location)
                failures = 0
            for entry_id, raw in entries:
                cursor = entry_id
                try:
                    event = decode_event(raw, entry_id)
                except MessageDecodeError as exc:
                    log.warning("messaging: skipping event %s: %s", entry_id, exc)
                    continue
                if event.namespace != self.namespace:
                    log.warning(
                        "messaging: skipping event %s of namespace %r", entry_id, event.namespace
                    )
                    continue
                if experiment_id is not None and event.experiment_id != experiment_id:
                    continue
                if event.type == EventType.DELETED:
                    alive.pop(event.experiment_id, None)
                else:
                    follow(event.state)
                yield event
            now = time.time()
            for stale_id, state in list(alive.items()):
                crashed = state.with_liveness(self._liveness, now)
                if crashed is not state:
                    del alive[stale_id]
                    yield Event(
                        type=EventType.STATUS,
                        namespace=self.namespace,
                        experiment_id=stale_id,
                        ts=now,
                        state=crashed,
                    )


def _warn_subscriber(exc: BaseException, failures: int) -> None:
    if failures == 1:
        log.warning("messaging: subscriber lost the broker (%s); retrying", exc)


def check_message(message: object) -> str | None:
    """A status message or reason: None or a string of at most 2,000 characters."""
    if message is None:
        return None
    if not isinstance(message, str):
        raise ValueError(f"message must be a string, got {type(message).__name__} {message!r}")
    if len(message) > 2000:
        raise ValueError(f"message is {len(message)} characters long; at most 2000 are allowed")
    return message


def _config_json(state: ExperimentState) -> str:
    return json.dumps(state.config, separators=(",", ":"))


def _loads_object(raw: str) -> dict[str, Any]:
    value = json.loads(raw)
    if not isinstance(value, dict):
        raise ValueError("config is not a JSON object")
    return value
