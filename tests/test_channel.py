"""The behaviour of TrainingChannel, the same on every broker (memory and Redis)."""

from __future__ import annotations

import asyncio
import math
import time
from typing import Any

import pytest

from agentic_trading.messaging import (
    Event,
    EventType,
    ExperimentExistsError,
    ExperimentStatus,
    InvalidTransitionError,
    TrainingChannel,
    create_broker,
)
from agentic_trading.messaging.brokers.base import Broker

LISTED_FIELDS = {
    "experiment_id",
    "status",
    "message",
    "progress",
    "current_step",
    "total_steps",
    "config",
    "started_at",
    "updated_at",
    "steps_per_second",
    "eta_seconds",
}


async def next_event(events: Any, timeout: float = 5.0) -> Event:
    return await asyncio.wait_for(events.__anext__(), timeout)


async def events_until(events: Any, predicate: Any, timeout: float = 5.0) -> list[Event]:
    """Collect events until one satisfies ``predicate`` (included)."""
    seen: list[Event] = []
    deadline = time.monotonic() + timeout
    while True:
        event = await next_event(events, max(0.01, deadline - time.monotonic()))
        seen.append(event)
        if predicate(event):
            return seen


async def test_seed_pattern_1_flow(channel: TrainingChannel) -> None:
    """create -> progress (no explicit running) -> completed, as the user guide's Pattern 1 does."""
    config = {"agent_type": "PPO", "learning_rate": 0.0003}
    await channel.create_experiment("dev_exp_001", config)
    created = await channel.get_experiment("dev_exp_001")
    assert created is not None and created.status == ExperimentStatus.PENDING

    for step in range(0, 1001, 100):
        await channel.publish_progress("dev_exp_001", step, 50_000)
    running = await channel.list_experiments(status="running")
    assert [s.experiment_id for s in running] == ["dev_exp_001"]
    assert running[0].config == config
    assert running[0].current_step == 1000
    assert running[0].progress == pytest.approx(2.0)
    assert running[0].started_at is not None

    await channel.publish_status("dev_exp_001", "completed", "Training finished successfully")
    assert await channel.list_experiments(status="running") == []
    done = await channel.list_experiments(status=ExperimentStatus.COMPLETED)
    assert done[0].message == "Training finished successfully"
    assert done[0].finished_at is not None


async def test_listed_experiments_carry_every_field(channel: TrainingChannel) -> None:
    await channel.create_experiment("exp_123", {"agent_type": "PPO"})
    await channel.publish_status("exp_123", "running", "PPO training started")
    [state] = await channel.list_experiments()
    dumped = state.model_dump(mode="json")
    assert dumped.keys() >= LISTED_FIELDS
    assert dumped["status"] == "running"
    assert dumped["message"] == "PPO training started"


async def test_progress_is_computed_or_taken_as_given(channel: TrainingChannel) -> None:
    computed = await channel.publish_progress("exp_123", current_step=1000, total_steps=50000)
    assert computed.progress == pytest.approx(2.0)
    given = await channel.publish_progress("exp_123", 2000, 50000, progress=3.5)
    assert given.progress == pytest.approx(3.5)
    stored = await channel.get_experiment("exp_123")
    assert stored is not None and stored.progress == pytest.approx(3.5)


async def test_speed_and_eta_are_derived(channel: TrainingChannel) -> None:
    await channel.create_experiment("speedy")
    await channel.publish_progress("speedy", 0, 10_000)
    await asyncio.sleep(0.2)
    state = await channel.publish_progress("speedy", 1000, 10_000)
    assert state.steps_per_second is not None
    assert 1000 / 1.0 < state.steps_per_second < 1000 / 0.15
    assert state.eta_seconds == pytest.approx(9000 / state.steps_per_second)
    stored = await channel.get_experiment("speedy")
    assert stored is not None and stored.steps_per_second == pytest.approx(state.steps_per_second)


async def test_a_finished_experiment_cannot_run_again(channel: TrainingChannel) -> None:
    await channel.publish_status("exp_1", "running")
    await channel.publish_status("exp_1", "failed", "diverged")
    with pytest.raises(InvalidTransitionError, match="failed and cannot become running"):
        await channel.publish_status("exp_1", "running")
    with pytest.raises(InvalidTransitionError):
        await channel.publish_progress("exp_1", 10, 100)
    stored = await channel.get_experiment("exp_1")
    assert stored is not None and stored.status == ExperimentStatus.FAILED


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda c: c.create_experiment("", {}), "must not be empty"),
        (lambda c: c.create_experiment("x" * 200, {}), "at most 128"),
        (lambda c: c.create_experiment("exp*", {}), "not allowed"),
        (lambda c: c.create_experiment("a:b", {}), "not allowed"),
        (lambda c: c.create_experiment("with space", {}), "not allowed"),
        (lambda c: c.create_experiment("{tag}", {}), "not allowed"),
        (lambda c: c.create_experiment("ok", {"fn": object()}), "not JSON-serializable"),
        (lambda c: c.create_experiment("ok", {"lr": math.nan}), "not JSON-serializable"),
        (lambda c: c.create_experiment("ok", ["not", "a", "mapping"]), "mapping"),
        (lambda c: c.publish_progress("ok", 1, 10, progress=math.nan), "finite"),
        (lambda c: c.publish_progress("ok", 1, 10, progress=math.inf), "finite"),
        (lambda c: c.publish_progress("ok", 1, 10, progress=120), "0 to 100"),
        (lambda c: c.publish_progress("ok", -1, 10), "negative"),
        (lambda c: c.publish_progress("ok", 11, 10), "beyond total_steps"),
        (lambda c: c.publish_progress("ok", 1, 0), "positive"),
        (lambda c: c.publish_progress("ok", 1.5, 10), "whole number"),
        (lambda c: c.publish_status("ok", "exploded"), "expected one of"),
        (lambda c: c.publish_metrics("ok", 1, {"loss": math.nan}), "finite"),
        (lambda c: c.publish_metrics("ok", 1, {"loss": "low"}), "must be a number"),
        (lambda c: c.publish_metrics("ok", -5, {"loss": 1.0}), "negative"),
    ],
)
async def test_bad_input_is_refused_and_nothing_is_written(
    channel: TrainingChannel, call: Any, match: str
) -> None:
    with pytest.raises(ValueError, match=match):
        await call(channel)
    assert await channel.list_experiments() == []


async def test_subscriber_gets_the_current_state_then_every_change(
    channel: TrainingChannel,
) -> None:
    await channel.create_experiment("early", {"agent_type": "PPO"})
    await channel.publish_progress("early", 500, 1000)

    events = channel.subscribe()
    first = await next_event(events)
    assert first.type == EventType.SNAPSHOT
    assert first.state is not None and first.state.current_step == 500
    assert first.state.config == {"agent_type": "PPO"}

    await channel.publish_progress("early", 600, 1000)
    await channel.publish_metrics("early", 600, {"reward": 12.5})
    await channel.publish_status("early", "completed")
    seen = await events_until(events, lambda e: e.type == EventType.STATUS)
    kinds = [e.type for e in seen]
    assert kinds == [EventType.PROGRESS, EventType.METRICS, EventType.STATUS]
    assert seen[0].state is not None and seen[0].state.current_step == 600
    assert seen[1].metrics == {"reward": 12.5}
    assert seen[2].state is not None and seen[2].state.status == ExperimentStatus.COMPLETED
    await events.aclose()


async def test_subscribing_to_one_experiment_filters_the_others(channel: TrainingChannel) -> None:
    await channel.create_experiment("mine")
    await channel.create_experiment("other")
    events = channel.subscribe("mine", last_event_id=await channel.last_event_id())
    await channel.publish_progress("other", 1, 10)
    await channel.publish_progress("mine", 2, 10)
    event = await next_event(events)
    assert (event.experiment_id, event.type) == ("mine", EventType.PROGRESS)
    await events.aclose()


async def test_a_subscriber_that_comes_back_receives_what_it_missed(
    channel: TrainingChannel,
) -> None:
    await channel.create_experiment("resume")
    events = channel.subscribe("resume", last_event_id=await channel.last_event_id())
    await channel.publish_progress("resume", 1, 100)
    seen = await next_event(events)
    await events.aclose()  # the subscriber goes away

    for step in range(2, 12):
        await channel.publish_progress("resume", step, 100)
    await channel.publish_status("resume", "cancelled", "stopped by user")

    resumed = channel.subscribe("resume", last_event_id=seen.id)
    missed = await events_until(resumed, lambda e: e.type == EventType.STATUS)
    assert [e.state.current_step for e in missed[:-1] if e.state] == list(range(2, 12))
    assert missed[-1].state is not None and missed[-1].state.status == ExperimentStatus.CANCELLED
    await resumed.aclose()


async def test_a_slow_subscriber_never_slows_the_publisher(settings_factory: Any) -> None:
    settings = settings_factory(message_stream_maxlen=100)
    broker = create_broker(settings)
    channel = TrainingChannel(settings=settings, broker=broker)
    stalled = channel.subscribe(last_event_id=await channel.last_event_id())
    await channel.create_experiment("fast")
    assert (await next_event(stalled)).type == EventType.CREATED  # then it reads nothing
    for step in range(1, 2001):
        await channel.publish_progress("fast", step, 2000)
    latest = await next_event(channel.subscribe("fast"))
    assert latest.state is not None and latest.state.current_step == 2000
    await stalled.aclose()
    await channel.close()
    await broker.close()


async def test_silent_running_experiment_is_reported_crashed(settings_factory: Any) -> None:
    settings = settings_factory(message_heartbeat_interval=0.1, message_heartbeat_timeout=0.4)
    broker = create_broker(settings)
    dead = TrainingChannel(settings=settings, broker=broker, heartbeats=False)  # like kill -9
    watcher = TrainingChannel(settings=settings, broker=broker)
    await dead.create_experiment("doomed")
    await dead.publish_progress("doomed", 10, 100)
    events = watcher.subscribe("doomed")
    snapshot = await next_event(events)
    assert snapshot.state is not None and snapshot.state.status == ExperimentStatus.RUNNING

    crashed_event = await next_event(events, timeout=3.0)
    assert crashed_event.type == EventType.STATUS
    assert crashed_event.state is not None
    assert crashed_event.state.status == ExperimentStatus.CRASHED
    assert "no heartbeat" in (crashed_event.state.message or "")

    state = await watcher.get_experiment("doomed")
    assert state is not None and state.status == ExperimentStatus.CRASHED
    assert [s.experiment_id for s in await watcher.list_experiments("crashed")] == ["doomed"]
    assert await watcher.list_experiments("running") == []
    await events.aclose()
    await broker.close()


async def test_heartbeats_keep_a_quiet_training_alive(settings_factory: Any) -> None:
    settings = settings_factory(message_heartbeat_interval=0.1, message_heartbeat_timeout=0.5)
    broker = create_broker(settings)
    channel = TrainingChannel(settings=settings, broker=broker)
    await channel.publish_status("quiet", "running")
    await asyncio.sleep(1.2)  # no progress for more than twice the timeout
    state = await channel.get_experiment("quiet")
    assert state is not None and state.status == ExperimentStatus.RUNNING
    await channel.publish_status("quiet", "completed")
    await channel.close()
    await broker.close()


async def test_live_state_expires_after_its_ttl(settings_factory: Any) -> None:
    settings = settings_factory(message_ttl_seconds=1)
    broker = create_broker(settings)
    channel = TrainingChannel(settings=settings, broker=broker, heartbeats=False)
    await channel.create_experiment("short-lived")
    assert await channel.get_experiment("short-lived") is not None
    await asyncio.sleep(2.1)
    assert await channel.get_experiment("short-lived") is None
    assert await channel.list_experiments() == []
    await broker.close()


async def test_stop_request_reaches_the_training(channel: TrainingChannel) -> None:
    other = TrainingChannel(settings=channel.settings, broker=channel.broker)  # the dashboard
    assert await other.request_stop("nobody") is False
    await channel.create_experiment("stoppable")
    await channel.publish_progress("stoppable", 1, 100)
    assert await channel.stop_requested("stoppable") is False

    events = channel.subscribe("stoppable", last_event_id=await channel.last_event_id())
    assert await other.request_stop("stoppable", "user clicked stop") is True
    event = await next_event(events)
    assert event.type == EventType.STOP_REQUESTED
    assert await channel.stop_requested("stoppable") is True
    await channel.publish_progress("stoppable", 2, 100)  # any write refreshes the cached flag
    assert channel.stop_requested_cached("stoppable") is True
    state = await other.get_experiment("stoppable")
    assert state is not None and state.stop_requested is True

    await channel.publish_status("stoppable", "cancelled")
    assert await other.request_stop("stoppable") is False  # finished: nothing to stop
    await events.aclose()


async def test_delete_experiment(channel: TrainingChannel) -> None:
    await channel.create_experiment("gone")
    events = channel.subscribe(last_event_id=await channel.last_event_id())
    assert await channel.delete_experiment("gone") is True
    assert (await next_event(events)).type == EventType.DELETED
    assert await channel.get_experiment("gone") is None
    assert await channel.delete_experiment("gone") is False
    await events.aclose()


async def test_namespaces_are_isolated(settings_factory: Any, namespace: str) -> None:
    settings = settings_factory()
    broker = create_broker(settings)
    ours = TrainingChannel(namespace, settings=settings, broker=broker)
    theirs = TrainingChannel(f"{namespace}-other", settings=settings, broker=broker)
    await ours.create_experiment("same-id", {"who": "ours"})
    await theirs.create_experiment("same-id", {"who": "theirs"})
    [mine] = await ours.list_experiments()
    assert mine.config == {"who": "ours"}
    await theirs.delete_experiment("same-id")
    assert await ours.get_experiment("same-id") is not None
    await broker.close()


async def test_metrics_keep_the_latest_value_of_each_name(channel: TrainingChannel) -> None:
    await channel.publish_metrics("m", 100, {"reward": 1.0, "loss": 0.5})
    await channel.publish_metrics("m", 200, {"reward": 2.0})
    state = await channel.get_experiment("m")
    assert state is not None
    assert state.latest_metrics == {"reward": 2.0, "loss": 0.5}
    assert state.metrics_step == 200


async def test_an_id_in_use_cannot_be_created_twice_but_a_finished_one_can(
    channel: TrainingChannel,
) -> None:
    await channel.create_experiment("rerun", {"attempt": 1})
    with pytest.raises(ExperimentExistsError, match="already exists"):
        await channel.create_experiment("rerun", {"attempt": 2})
    other = TrainingChannel(settings=channel.settings, broker=channel.broker)
    await other.request_stop("rerun")
    await channel.publish_status("rerun", "cancelled")
    fresh = await channel.create_experiment("rerun", {"attempt": 2})
    assert fresh.status == ExperimentStatus.PENDING
    stored = await channel.get_experiment("rerun")
    assert stored is not None and stored.config == {"attempt": 2}
    assert stored.stop_requested is False  # the old run's stop request is gone


async def test_foreign_and_corrupt_events_are_skipped(channel: TrainingChannel) -> None:
    broker: Broker = channel.broker
    events = channel.subscribe(last_event_id=await channel.last_event_id())
    for junk in [
        "not json at all",
        '["a", "list"]',
        '{"v": 99, "type": "progress"}',
        '{"v": 1, "type": "nonsense", "namespace": "x", "experiment_id": "y", "ts": 1}',
        '{"v": 1, "type": "progress", "namespace": "elsewhere", "experiment_id": "y", "ts": 1}',
        "{" + "x" * 2_000_000,
    ]:
        await broker.write(channel.namespace, "junk", {}, junk)
    await channel.publish_progress("after-junk", 1, 10)
    event = await next_event(events)
    assert (event.experiment_id, event.type) == ("after-junk", EventType.PROGRESS)
    await events.aclose()
