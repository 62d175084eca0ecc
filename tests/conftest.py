"""Shared fixtures: settings, unique namespaces, a real Redis, channels on every broker."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from agentic_trading.config import Settings
from agentic_trading.messaging import TrainingChannel, create_broker
from tests.network import Network
from tests.redis_server import RedisServer

SHARED_REDIS = "redis://127.0.0.1:6379/0"

# MLflow's client sets and pops the variable _MLFLOW_TELEMETRY_SESSION_ID from a thread of its
# own; a test copying os.environ at that moment (to start a subprocess) failed with a KeyError
# now and then. Tests send no usage data anywhere, so its telemetry is off before mlflow loads.
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")


def pytest_configure(config: pytest.Config) -> None:
    """Under pytest-xdist (``make test`` runs two workers), give each worker its own range of
    ports for dash_duo's servers: Dash's test runner counts up from 58050 in every process."""
    worker = os.environ.get("PYTEST_XDIST_WORKER", "")
    if worker.startswith("gw"):
        try:
            from dash.testing.application_runners import BaseDashRunner
        except ImportError:  # the dashboard extra is not installed: no browser tests
            return
        BaseDashRunner._next_port = 58050 + 200 * int(worker[2:])


def make_settings(**overrides: Any) -> Settings:
    """Settings for a test: defaults and ``overrides`` only, no environment or .env."""
    return Settings(_env_file=None, **overrides)  # type: ignore[call-arg]


@pytest.fixture(autouse=True)
def _isolated_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No test reads the developer's environment or .env: settings come from the test."""
    import os

    for name in list(os.environ):
        if name.startswith(("MESSAGE_", "REDIS_", "ML_", "MLFLOW_", "DASHBOARD_", "ALERT_")):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)
    from agentic_trading.config import get_settings

    get_settings.cache_clear()


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The machine's Redis at 127.0.0.1:6379, or a private one when none answers there."""
    try:
        redis.Redis.from_url(SHARED_REDIS, socket_connect_timeout=1).ping()
        yield SHARED_REDIS
        return
    except redis.RedisError:
        pass
    server = RedisServer(tmp_path_factory.mktemp("redis")).start()
    try:
        yield server.url
    finally:
        server.stop()


@pytest.fixture
def namespace() -> str:
    return f"test-{uuid.uuid4().hex[:12]}"


def delete_namespace(url: str, namespace: str) -> None:
    """Remove this test's keys, and only them."""
    client = redis.Redis.from_url(url)
    keys = list(client.scan_iter(match=f"at:{{{namespace}}}:*", count=500))
    if keys:
        client.delete(*keys)
    client.close()


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path / "redis").start()
    try:
        yield server
    finally:
        server.stop()


BROKERS = ["memory", "redis"]


@pytest.fixture(params=BROKERS)
def broker_kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def settings_factory(
    broker_kind: str, request: pytest.FixtureRequest, namespace: str
) -> Iterator[Any]:
    """Make settings for the parametrized broker; Redis keys are removed afterwards."""
    url = request.getfixturevalue("redis_url") if broker_kind == "redis" else None

    def factory(**overrides: Any) -> Settings:
        values: dict[str, Any] = {
            "message_broker_type": broker_kind,
            "message_namespace": namespace,
        }
        if url:
            values["redis_url"] = url
        values.update(overrides)
        return make_settings(**values)

    yield factory
    if url:
        delete_namespace(url, namespace)


@pytest.fixture
async def channel(settings_factory: Any) -> AsyncIterator[TrainingChannel]:
    """A channel on the parametrized broker, in its own namespace, with fast heartbeats."""
    settings = settings_factory(message_heartbeat_interval=0.2, message_heartbeat_timeout=2.0)
    broker = create_broker(settings)
    chan = TrainingChannel(settings=settings, broker=broker)
    yield chan
    await chan.close()
    await broker.close()


@pytest.fixture(scope="session")
def mlflow_server_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """One real ``mlflow server`` for the session (it takes seconds to set up), over a
    PostgreSQL database of its own on the machine's server; tests use experiment and model
    names of their own. Tests that stop the server start their own."""
    from tests.mlflow_server import mlflow_server
    from tests.postgres import database, shared_available

    if not shared_available():
        pytest.skip("no PostgreSQL at 127.0.0.1:5432")
    with database() as url, mlflow_server(url, tmp_path_factory.mktemp("mlflow-server")) as server:
        yield server.url


@pytest.fixture
def network() -> Iterator[Network]:
    """Four network hosts (skipped where namespaces cannot be made)."""
    import shutil
    import subprocess
    import sys

    if sys.platform != "linux" or shutil.which("ip") is None:
        pytest.skip("needs Linux with iproute2 (ip netns) to make network hosts")
    net = Network()
    try:
        net.create()
    except (PermissionError, subprocess.CalledProcessError) as exc:
        net.delete()
        pytest.skip(f"cannot create network namespaces here (needs root or CAP_NET_ADMIN): {exc}")
    try:
        yield net
    finally:
        net.delete()
