"""``mlflow server`` for tests: on a free port, with a PostgreSQL database of its own as the
backend store and a temporary folder as its artifact store (served through the server)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from agentic_trading.common.databases import sqlalchemy_url
from tests.aim_server import stop_process, wait_for_port
from tests.redis_server import free_port

MLFLOW = str(Path(sys.executable).with_name("mlflow"))


class MlflowServer:
    """A real ``mlflow server`` (start, stop, start again on the same port and stores), bound to
    ``host``; ``prefix`` runs it in another network namespace (then :meth:`start` does not wait
    for it: this namespace cannot reach it)."""

    def __init__(
        self,
        backend_uri: str,
        artifacts: Path,
        port: int | None = None,
        *,
        host: str = "127.0.0.1",
        prefix: tuple[str, ...] = (),
    ) -> None:
        self.backend_uri = sqlalchemy_url(backend_uri)
        self.artifacts = artifacts
        self.port = port or free_port()
        self.host = host
        self.prefix = prefix
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self, timeout: float = 90) -> None:
        log = open(self.artifacts.parent / f"mlflow-server-{self.port}.log", "ab")  # noqa: SIM115
        self.process = subprocess.Popen(
            [
                *self.prefix, MLFLOW, "server", "--host", self.host, "--port", str(self.port),
                "--backend-store-uri", self.backend_uri,
                "--artifacts-destination", self.artifacts.as_uri(), "--workers", "1",
            ],
            stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
            env={**os.environ, "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0"},
        )  # fmt: skip
        if self.prefix:
            return
        wait_for_port(self.port, self.process, timeout)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:  # the port opens before the app answers
            try:
                with urllib.request.urlopen(f"{self.url}/health", timeout=2) as answer:
                    if answer.status == 200:
                        return
            except OSError:
                time.sleep(0.2)
        raise AssertionError(f"mlflow server at {self.url} did not answer /health")

    def stop(self) -> None:
        if self.process is not None:
            stop_process(self.process)
            self.process = None


@contextmanager
def mlflow_server(backend_uri: str, folder: Path) -> Iterator[MlflowServer]:
    """A started ``mlflow server`` over ``backend_uri``, artifacts under ``folder``."""
    artifacts = folder / "mlflow-artifacts"
    artifacts.mkdir(parents=True, exist_ok=True)
    server = MlflowServer(backend_uri, artifacts)
    server.start()
    try:
        yield server
    finally:
        server.stop()
