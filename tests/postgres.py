"""PostgreSQL for tests: a database of its own on the machine's server, or a private server.

The machine's PostgreSQL 15 answers at 127.0.0.1:5432 (trust auth, user ``postgres``); each test
that uses it creates a database with a unique name and drops it afterwards. Tests that stop or
restart PostgreSQL start a private server (``initdb`` + ``postgres`` as the ``postgres`` user)
on a free port instead.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tests.redis_server import free_port

SHARED = ("127.0.0.1", 5432)
BIN = Path("/usr/lib/postgresql/15/bin")


def _connect(host: str, port: int, database: str = "postgres") -> object:
    import psycopg

    return psycopg.connect(
        host=host, port=port, user="postgres", dbname=database, connect_timeout=3, autocommit=True
    )


def shared_available() -> bool:
    try:
        _connect(*SHARED).close()  # type: ignore[attr-defined]
        return True
    except Exception:
        return False


@contextmanager
def database(host: str = SHARED[0], port: int = SHARED[1]) -> Iterator[str]:
    """A new database on a PostgreSQL server, as a ``postgresql://`` URL; dropped afterwards."""
    name = f"test_{uuid.uuid4().hex[:12]}"
    _admin(host, port, f'CREATE DATABASE "{name}"')
    try:
        yield f"postgresql://postgres@{host}:{port}/{name}"
    finally:  # a new connection: the test may have restarted the server meanwhile
        _admin(host, port, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _admin(host: str, port: int, statement: str) -> None:
    connection = _connect(host, port)
    try:
        connection.execute(statement)  # type: ignore[attr-defined]
    finally:
        connection.close()  # type: ignore[attr-defined]


def as_postgres(*command: str) -> list[str]:
    """``command`` run as the ``postgres`` user (when we are root)."""
    if os.geteuid() == 0:
        return ["runuser", "-u", "postgres", "--", *command]
    return list(command)


class PostgresServer:
    """A private PostgreSQL server on ``host``:``port`` over a data folder of its own (under
    /tmp, which the ``postgres`` user can reach; pytest's folders it cannot); ``prefix`` runs
    it in another network namespace, ``trusted`` (a CIDR) lets clients of a test network in
    without a password. :meth:`remove` deletes the folder."""

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int | None = None,
        prefix: tuple[str, ...] = (),
        trusted: str | None = None,
    ) -> None:
        if not (BIN / "postgres").exists():
            raise RuntimeError(f"PostgreSQL 15 is not installed ({BIN} is missing)")
        self.workdir = Path(tempfile.mkdtemp(prefix="agentic-trading-pg-"))
        self.data = self.workdir / "data"
        self.host = host
        self.port = port or free_port()
        self.prefix = prefix
        self.trusted = trusted
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"postgresql://postgres@{self.host}:{self.port}/postgres"

    def init(self) -> PostgresServer:
        if os.geteuid() == 0:
            shutil.chown(self.workdir, "postgres", "postgres")
        subprocess.run(
            as_postgres(str(BIN / "initdb"), "-D", str(self.data), "-A", "trust", "-U", "postgres"),
            check=True,
            capture_output=True,
            timeout=60,
        )
        if self.trusted:  # clients from a test network, as from inside a private one
            with (self.data / "pg_hba.conf").open("a") as rules:
                rules.write(f"host all all {self.trusted} trust\n")
        return self

    def start(self) -> PostgresServer:
        if not self.data.exists():
            self.init()
        self.process = subprocess.Popen(
            [
                *self.prefix,
                *as_postgres(
                    str(BIN / "postgres"),
                    "-D",
                    str(self.data),
                    "-h",
                    self.host,
                    "-p",
                    str(self.port),
                    "-k",
                    str(self.workdir),
                    "-c",
                    "fsync=off",
                    "-c",
                    "max_connections=100",
                ),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"postgres exited with {self.process.returncode}")
            ready = subprocess.run(
                [*self.prefix, str(BIN / "pg_isready"), "-h", self.host, "-p", str(self.port)],
                capture_output=True,
                check=False,
            )
            if ready.returncode == 0:
                return self
            time.sleep(0.2)
        raise RuntimeError(f"postgres did not start on {self.host}:{self.port}")

    def stop(self) -> None:
        """A fast shutdown (SIGINT to the postmaster): sessions are cut, as in a restart."""
        if self.process is None:
            return
        pid_file = self.data / "postmaster.pid"
        if pid_file.exists():
            os.kill(int(pid_file.read_text().split()[0]), signal.SIGINT)
        try:
            self.process.wait(30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.process = None

    def remove(self) -> None:
        """Stop it and delete its data folder."""
        self.stop()
        shutil.rmtree(self.workdir, ignore_errors=True)
