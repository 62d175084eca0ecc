"""Redis Sentinel: the broker follows a failover without losing a status change.

A primary, a replica and three sentinels started by the test on free loopback ports; the
primary is killed while a (simulated) training publishes; the training finishes on the new
primary.
"""

from __future__ import annotations

import asyncio
import shutil
import threading
import time
from pathlib import Path

import pytest

from agentic_trading.config import SettingsError, load_settings
from agentic_trading.messaging import SyncTrainingChannel, TrainingChannel
from tests.conftest import make_settings
from tests.redis_server import SentinelSet

pytestmark = [
    pytest.mark.redis,
    pytest.mark.skipif(shutil.which("redis-server") is None, reason="needs redis-server"),
]


def test_training_survives_a_failover(tmp_path: Path, namespace: str) -> None:
    cluster = SentinelSet(tmp_path).start()
    try:
        settings = make_settings(
            message_broker_type="redis",
            redis_sentinels=cluster.addresses,
            redis_sentinel_master=SentinelSet.MASTER,
            message_namespace=namespace,
            redis_connect_timeout=0.5,
            redis_socket_timeout=1,
        )
        seen: list[tuple[str, str | None]] = []
        done = threading.Event()

        async def follow() -> None:
            channel = TrainingChannel(settings=settings, heartbeats=False)
            async for event in channel.subscribe("sentinel-run"):
                if event.state is not None and event.type.value in ("snapshot", "status"):
                    seen.append((event.state.status.value, event.state.message))
                    if event.state.status.is_finished:
                        break
            await channel.close()
            done.set()

        channel = SyncTrainingChannel(settings=settings)
        channel.create_experiment("sentinel-run", {"agent_type": "PPO"})
        channel.flush()
        threading.Thread(target=lambda: asyncio.run(follow()), daemon=True).start()
        channel.publish_status("sentinel-run", "running", "training")
        first = cluster.primary_port()
        total = 600
        for step in range(1, total + 1):
            channel.publish_progress("sentinel-run", step, total)
            if step == 150:
                channel.flush()
                time.sleep(0.5)  # replicated
                cluster.primary.stop()  # the primary dies mid-training
                # a status change while no primary answers: kept, sent to the new primary
                channel.publish_status("sentinel-run", "running", "primary lost")
            time.sleep(0.01)
        deadline = time.monotonic() + 30
        while cluster.primary_port() == first:
            assert time.monotonic() < deadline, "no failover"
            time.sleep(0.2)
        channel.publish_status("sentinel-run", "completed", "done")
        channel.flush(30)
        state = channel.get_experiment("sentinel-run")
        assert state is not None
        assert state.status.value == "completed" and state.current_step == total
        channel.close()
        assert done.wait(30), seen
        assert seen[-2:] == [("running", "primary lost"), ("completed", "done")], seen
        assert cluster.replica is not None and cluster.primary_port() == cluster.replica.port
    finally:
        cluster.stop()


def test_sentinel_addresses_are_validated() -> None:
    assert load_settings(redis_sentinels="a:1, b:26379").sentinel_addresses() == [
        ("a", 1),
        ("b", 26379),
    ]
    with pytest.raises(SettingsError, match="REDIS_SENTINELS"):
        load_settings(redis_sentinels="localhost")
    located = load_settings(redis_sentinels="s1:26379", redis_sentinel_master="prod")
    assert located.redis_location() == "sentinel://s1:26379/prod"
