"""SyncTrainingChannel: the non-blocking facade for synchronous training loops, on every broker."""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

import pytest

from agentic_trading.messaging import (
    ExperimentStatus,
    InvalidTransitionError,
    SyncTrainingChannel,
    TrainingChannel,
    create_broker,
)


@pytest.fixture
def sync_channel(settings_factory: Any) -> Any:
    settings = settings_factory(message_heartbeat_interval=0.2, message_heartbeat_timeout=2.0)
    channel = SyncTrainingChannel(settings=settings, broker=lambda: create_broker(settings))
    yield channel
    channel.close()


def read_state(settings: Any, experiment_id: str) -> Any:
    """Read back through a separate async channel and broker, as another reader would."""

    async def read() -> Any:
        broker = create_broker(settings)
        try:
            return await TrainingChannel(settings=settings, broker=broker).get_experiment(
                experiment_id
            )
        finally:
            await broker.close()

    return asyncio.run(read())


def test_every_step_published_and_close_delivers_the_last(
    sync_channel: SyncTrainingChannel,
) -> None:
    sync_channel.create_experiment("sb3-run", {"agent_type": "PPO"})
    sync_channel.publish_status("sb3-run", "running", "started")
    for step in range(1, 20_001):
        sync_channel.publish_progress("sb3-run", step, 20_000)
        if step % 1000 == 0:
            sync_channel.publish_metrics("sb3-run", step, {"reward": step / 1000})
    sync_channel.publish_status("sb3-run", "completed", "done")
    sync_channel.close()

    state = read_state(sync_channel.settings, "sb3-run")
    assert state.status == ExperimentStatus.COMPLETED
    assert state.current_step == 20_000
    assert state.progress == pytest.approx(100.0)
    assert state.latest_metrics == {"reward": 20.0}
    assert state.config == {"agent_type": "PPO"}
    assert state.message == "done"


def test_progress_reaches_readers_without_a_flush_while_flowing_and_after_a_pause(
    sync_channel: SyncTrainingChannel,
) -> None:
    # While updates flow the loop looks for them by itself; after a pause the next publish
    # wakes it. Either way a reader sees progress within a few intervals, with nobody flushing.
    def seen(step: int) -> bool:
        deadline = time.monotonic() + 2.0
        while time.monotonic() < deadline:
            state = read_state(sync_channel.settings, "paused")
            if state is not None and state.current_step == step:
                return True
            time.sleep(0.02)
        return False

    sync_channel.create_experiment("paused")
    sync_channel.publish_status("paused", "running")
    for step in range(1, 11):
        sync_channel.publish_progress("paused", step, 100)
        time.sleep(0.03)
    assert seen(10)
    time.sleep(2.5)  # longer than the loop keeps looking after its last send
    sync_channel.publish_progress("paused", 11, 100)
    assert seen(11)


def test_reads_see_the_callers_own_updates(sync_channel: SyncTrainingChannel) -> None:
    sync_channel.create_experiment("ryw")
    for step in range(1, 501):
        sync_channel.publish_progress("ryw", step, 1000)
    state = sync_channel.get_experiment("ryw")
    assert state is not None and state.current_step == 500
    assert [s.experiment_id for s in sync_channel.list_experiments("running")] == ["ryw"]


def test_bad_calls_raise_at_once_in_the_caller(sync_channel: SyncTrainingChannel) -> None:
    with pytest.raises(ValueError, match="not allowed"):
        sync_channel.publish_progress("bad id", 1, 10)
    with pytest.raises(ValueError, match="finite"):
        sync_channel.publish_metrics("ok", 1, {"loss": float("inf")})
    sync_channel.publish_status("ok", "running")
    sync_channel.publish_status("ok", "completed")
    with pytest.raises(InvalidTransitionError, match="completed and cannot become running"):
        sync_channel.publish_status("ok", "running")
    with pytest.raises(InvalidTransitionError):
        sync_channel.publish_progress("ok", 5, 10)
    sync_channel.flush()
    assert read_state(sync_channel.settings, "ok").status == ExperimentStatus.COMPLETED
    assert read_state(sync_channel.settings, "bad") is None


def test_threads_publish_safely(sync_channel: SyncTrainingChannel) -> None:
    def train(name: str) -> None:
        sync_channel.create_experiment(name, {"worker": name})
        for step in range(1, 3001):
            sync_channel.publish_progress(name, step, 3000)
        sync_channel.publish_status(name, "completed")

    workers = [threading.Thread(target=train, args=(f"w{i}",)) for i in range(4)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    sync_channel.flush()
    states = {s.experiment_id: s for s in sync_channel.list_experiments()}
    assert sorted(states) == ["w0", "w1", "w2", "w3"]
    for name, state in states.items():
        assert state.status == ExperimentStatus.COMPLETED
        assert state.current_step == 3000
        assert state.config == {"worker": name}


def test_a_stop_request_reaches_a_sync_training(sync_channel: SyncTrainingChannel) -> None:
    sync_channel.create_experiment("stop-me")
    sync_channel.publish_status("stop-me", "running")
    sync_channel.flush()
    assert sync_channel.request_stop("stop-me", "from the dashboard") is True
    deadline = time.monotonic() + 5
    step = 0
    while not sync_channel.stop_requested("stop-me"):  # what a training callback does
        assert time.monotonic() < deadline, "stop request not seen within 5 s"
        step += 1
        sync_channel.publish_progress("stop-me", step, 10**9)
        time.sleep(0.001)
    sync_channel.publish_status("stop-me", "cancelled", "stopped on request")
    sync_channel.flush()
    assert read_state(sync_channel.settings, "stop-me").status == ExperimentStatus.CANCELLED


def test_status_changes_keep_their_order_with_progress(sync_channel: SyncTrainingChannel) -> None:
    """Coalescing never reorders: the progress published before 'completed' lands before it."""
    sync_channel.create_experiment("order")
    for step in range(1, 101):
        sync_channel.publish_progress("order", step, 100)
    sync_channel.publish_status("order", "completed")
    sync_channel.flush()
    state = sync_channel.get_experiment("order")
    assert state is not None
    assert (state.status, state.current_step) == (ExperimentStatus.COMPLETED, 100)
