"""Redis-only behaviour: the wire format other clients read, outages, and authentication."""

from __future__ import annotations

import asyncio
import json
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from agentic_trading.messaging import (
    BrokerUnavailableError,
    EventType,
    ExperimentStatus,
    SyncTrainingChannel,
    TrainingChannel,
    create_broker,
)
from tests.conftest import delete_namespace, make_settings
from tests.redis_server import RedisServer

pytestmark = pytest.mark.redis


def redis_settings(url: str, namespace: str, **overrides: Any) -> Any:
    return make_settings(
        message_broker_type="redis", redis_url=url, message_namespace=namespace, **overrides
    )


async def test_redis_cli_reads_what_the_channel_wrote(redis_url: str, namespace: str) -> None:
    settings = redis_settings(redis_url, namespace)
    broker = create_broker(settings)
    channel = TrainingChannel(settings=settings, broker=broker, heartbeats=False)
    await channel.create_experiment("exp_123", {"agent_type": "PPO", "learning_rate": 0.0003})
    await channel.publish_progress("exp_123", 1000, 50000)
    await broker.close()
    try:
        base = ["redis-cli", "-u", redis_url, "--raw"]
        newest = subprocess.run(
            [*base, "HGET", f"at:{{{namespace}}}:exp:exp_123", "event"],
            check=True,
            capture_output=True,
            text=True,
        ).stdout
        parsed = json.loads(newest)["state"]
        assert parsed["status"] == "running"
        assert parsed["current_step"] == 1000
        config = subprocess.run(
            [*base, "HGET", f"at:{{{namespace}}}:exp:exp_123", "config"],
            check=True,
            capture_output=True,
            text=True,
        ).stdout
        assert json.loads(config) == {"agent_type": "PPO", "learning_rate": 0.0003}
        newest = subprocess.run(
            [*base, "XREVRANGE", f"at:{{{namespace}}}:events", "+", "-", "COUNT", "1"],
            check=True,
            capture_output=True,
            text=True,
        ).stdout.splitlines()
        assert newest[1] == "data"
        event = json.loads(newest[2])
        assert (event["v"], event["type"], event["experiment_id"]) == (1, "progress", "exp_123")
        assert event["state"]["progress"] == pytest.approx(2.0)
    finally:
        delete_namespace(redis_url, namespace)


def test_redis_down_mid_publishing_loses_no_status_change(
    private_redis: RedisServer, namespace: str
) -> None:
    settings = redis_settings(
        private_redis.url,
        namespace,
        message_heartbeat_interval=0.2,
        message_heartbeat_timeout=5,
        redis_connect_timeout=0.5,
    )
    training = SyncTrainingChannel(settings=settings, broker=lambda: create_broker(settings))
    training.create_experiment("survivor", {"agent_type": "PPO"})
    training.publish_status("survivor", "running", "started")
    for step in range(1, 1001):
        training.publish_progress("survivor", step, 4000)
    training.flush()

    private_redis.stop()
    # The training loop goes on; nothing raises into it, nothing blocks it for long.
    started = time.monotonic()
    for step in range(1001, 2001):
        training.publish_progress("survivor", step, 4000)
    training.publish_status("survivor", "running", "still going during the outage")
    for step in range(2001, 3001):
        training.publish_progress("survivor", step, 4000)
        time.sleep(0.0005)
    assert time.monotonic() - started < 5, "publishing waited on the dead broker"
    assert not training.connected

    async def reads_fail() -> None:
        broker = create_broker(settings)
        with pytest.raises(BrokerUnavailableError, match="unreachable"):
            await TrainingChannel(settings=settings, broker=broker).list_experiments()
        await broker.close()

    asyncio.run(reads_fail())

    private_redis.start()  # same port, empty: Redis here keeps nothing on disk
    for step in range(3001, 4001):
        training.publish_progress("survivor", step, 4000)
        time.sleep(0.0005)
    training.publish_status("survivor", "completed", "finished after the outage")
    training.close(timeout=15)

    async def check() -> None:
        broker = create_broker(settings)
        channel = TrainingChannel(settings=settings, broker=broker)
        state = await channel.get_experiment("survivor")
        assert state is not None
        assert state.status == ExperimentStatus.COMPLETED
        assert state.current_step == 4000
        assert state.config == {"agent_type": "PPO"}  # restored after the restart
        messages = []
        async for event in channel.subscribe("survivor", last_event_id="0"):
            if event.type == EventType.STATUS and event.state is not None:
                messages.append(event.state.message)
                if event.state.status == ExperimentStatus.COMPLETED:
                    break
        assert messages == ["still going during the outage", "finished after the outage"]
        await broker.close()

    asyncio.run(check())


async def test_subscriber_resumes_after_an_outage(
    private_redis: RedisServer, namespace: str
) -> None:
    settings = redis_settings(private_redis.url, namespace, redis_connect_timeout=0.5)
    publisher_broker = create_broker(settings)
    publisher = TrainingChannel(settings=settings, broker=publisher_broker, heartbeats=False)
    reader_broker = create_broker(settings)
    reader = TrainingChannel(settings=settings, broker=reader_broker)
    await publisher.create_experiment("flaky")
    events = reader.subscribe("flaky", last_event_id=await reader.last_event_id())
    await publisher.publish_progress("flaky", 1, 10)
    assert (await asyncio.wait_for(events.__anext__(), 5)).type == EventType.PROGRESS

    private_redis.stop()
    pending = asyncio.ensure_future(events.__anext__())
    await asyncio.sleep(0.5)
    assert not pending.done()
    private_redis.start()
    await publisher.publish_status("flaky", "completed", "after restart")
    event = await asyncio.wait_for(pending, 15)
    assert event.state is not None and event.state.message == "after restart"
    await events.aclose()
    await publisher_broker.close()
    await reader_broker.close()


async def test_wrong_password_is_one_clear_error(tmp_path: Path, namespace: str) -> None:
    server = RedisServer(tmp_path / "auth", "--requirepass", "s3cret-pass").start()
    try:
        for password in (None, "wrong-pass"):
            settings = redis_settings(server.url, namespace, redis_password=password)
            broker = create_broker(settings)
            with pytest.raises(BrokerUnavailableError) as caught:
                await TrainingChannel(settings=settings, broker=broker).list_experiments()
            assert "REDIS_PASSWORD" in str(caught.value)
            assert "wrong-pass" not in str(caught.value)
            await broker.close()
        settings = redis_settings(server.url, namespace, redis_password="s3cret-pass")
        broker = create_broker(settings)
        channel = TrainingChannel(settings=settings, broker=broker, heartbeats=False)
        await channel.create_experiment("authed")
        assert [s.experiment_id for s in await channel.list_experiments()] == ["authed"]
        await broker.close()
    finally:
        server.stop()


async def test_acl_user_limited_to_the_key_prefix(tmp_path: Path, namespace: str) -> None:
    server = RedisServer(tmp_path / "acl").start()
    try:
        admin = server.client()
        admin.execute_command(
            "ACL", "SETUSER", "trainer", "on", ">trainer-pass", "~at:*", "+@all", "-@dangerous"
        )
        admin.close()
        settings = redis_settings(
            server.url, namespace, redis_username="trainer", redis_password="trainer-pass"
        )
        broker = create_broker(settings)
        channel = TrainingChannel(settings=settings, broker=broker, heartbeats=False)
        await channel.create_experiment("acl-ok", {"x": 1})
        await channel.publish_progress("acl-ok", 5, 10)
        [state] = await channel.list_experiments()
        assert (state.experiment_id, state.current_step) == ("acl-ok", 5)
        await broker.close()
    finally:
        server.stop()


def _make_tls_files(folder: Path) -> dict[str, Path]:
    """A private CA and a server certificate for 127.0.0.1, made with openssl."""
    folder.mkdir(parents=True, exist_ok=True)
    files = {name: folder / f"{name}.pem" for name in ("ca", "ca-key", "server", "server-key")}
    ext = folder / "san.ext"
    ext.write_text("subjectAltName=IP:127.0.0.1\n")

    def openssl(*args: str) -> None:
        subprocess.run(["openssl", *args], check=True, capture_output=True)

    openssl(
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-days",
        "2",
        "-subj",
        "/CN=test-ca",
        "-keyout",
        str(files["ca-key"]),
        "-out",
        str(files["ca"]),
    )
    csr = folder / "server.csr"
    openssl(
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-subj",
        "/CN=127.0.0.1",
        "-keyout",
        str(files["server-key"]),
        "-out",
        str(csr),
    )
    openssl(
        "x509",
        "-req",
        "-in",
        str(csr),
        "-CA",
        str(files["ca"]),
        "-CAkey",
        str(files["ca-key"]),
        "-CAcreateserial",
        "-days",
        "2",
        "-extfile",
        str(ext),
        "-out",
        str(files["server"]),
    )
    return files


async def test_tls_with_a_private_ca(tmp_path: Path, namespace: str) -> None:
    from tests.redis_server import free_port

    files = _make_tls_files(tmp_path / "tls")
    port = free_port()
    server = RedisServer(
        tmp_path / "redis-tls",
        "--port",
        "0",
        "--tls-port",
        str(port),
        "--tls-cert-file",
        str(files["server"]),
        "--tls-key-file",
        str(files["server-key"]),
        "--tls-ca-cert-file",
        str(files["ca"]),
        "--tls-auth-clients",
        "no",
        port=port,
    ).start()
    try:
        trusted = make_settings(
            message_broker_type="redis",
            message_namespace=namespace,
            redis_host="127.0.0.1",
            redis_port=port,
            redis_ssl=True,
            redis_ssl_ca_certs=str(files["ca"]),
        )
        broker = create_broker(trusted)
        channel = TrainingChannel(settings=trusted, broker=broker, heartbeats=False)
        await channel.create_experiment("over-tls", {"secure": True})
        [state] = await channel.list_experiments()
        assert state.config == {"secure": True}
        await broker.close()

        url = make_settings(
            message_broker_type="redis",
            message_namespace=namespace,
            redis_url=f"rediss://127.0.0.1:{port}/0",
            redis_ssl_ca_certs=str(files["ca"]),
        )
        broker = create_broker(url)
        assert [
            s.experiment_id
            for s in await TrainingChannel(settings=url, broker=broker).list_experiments()
        ] == ["over-tls"]
        await broker.close()

        untrusted = make_settings(
            message_broker_type="redis",
            message_namespace=namespace,
            redis_host="127.0.0.1",
            redis_port=port,
            redis_ssl=True,
        )
        broker = create_broker(untrusted)
        with pytest.raises(BrokerUnavailableError, match="unreachable"):
            await TrainingChannel(settings=untrusted, broker=broker).list_experiments()
        await broker.close()
    finally:
        server.stop()
