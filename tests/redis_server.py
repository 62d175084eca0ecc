"""A private redis-server on a free loopback port, for tests that stop, restart or lock it."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from pathlib import Path

import redis


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class RedisServer:
    """``redis-server`` bound to 127.0.0.1 on its own port, keeping nothing on disk."""

    def __init__(self, workdir: Path, *extra_args: str, port: int | None = None) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            raise RuntimeError("redis-server is not installed (make setup / .ci/run install it)")
        self.binary = binary
        self.workdir = workdir
        self.port = port or free_port()
        self.extra_args = extra_args
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> RedisServer:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.process = subprocess.Popen(
            [
                self.binary,
                "--bind",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self.workdir),
                *self.extra_args,
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    return self
            except OSError:
                time.sleep(0.05)
        raise RuntimeError(f"redis-server did not start on port {self.port}")

    def stop(self) -> None:
        if self.process is not None:
            self.process.kill()
            self.process.wait(10)
            self.process = None

    def client(self, **kwargs: object) -> redis.Redis:
        return redis.Redis(host="127.0.0.1", port=self.port, decode_responses=True, **kwargs)  # type: ignore[arg-type]


class SentinelSet:
    """A primary, one replica and three sentinels on free loopback ports (failover in ~2 s)."""

    MASTER = "mymaster"

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.primary = RedisServer(workdir / "primary")
        self.replica: RedisServer | None = None
        self.sentinels: list[subprocess.Popen[bytes]] = []
        self.sentinel_ports: list[int] = []

    @property
    def addresses(self) -> str:
        """``REDIS_SENTINELS`` for this set."""
        return ",".join(f"127.0.0.1:{port}" for port in self.sentinel_ports)

    def start(self) -> SentinelSet:
        self.primary.start()
        self.replica = RedisServer(
            self.workdir / "replica", "--replicaof", "127.0.0.1", str(self.primary.port)
        ).start()
        for index in range(3):
            port = free_port()
            folder = self.workdir / f"sentinel-{index}"
            folder.mkdir(parents=True, exist_ok=True)
            config = folder / "sentinel.conf"
            config.write_text(
                f"port {port}\nbind 127.0.0.1\ndir {folder}\n"
                f"sentinel monitor {self.MASTER} 127.0.0.1 {self.primary.port} 2\n"
                f"sentinel down-after-milliseconds {self.MASTER} 1000\n"
                f"sentinel failover-timeout {self.MASTER} 5000\n"
                f"sentinel parallel-syncs {self.MASTER} 1\n"
            )
            self.sentinels.append(
                subprocess.Popen(
                    [self.primary.binary, str(config), "--sentinel"],
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
            )
            self.sentinel_ports.append(port)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                if all(self._sees_replica(port) for port in self.sentinel_ports):
                    return self
            except (redis.RedisError, OSError):
                pass
            time.sleep(0.2)
        raise RuntimeError("the sentinels did not come up")

    def _sees_replica(self, port: int) -> bool:
        client = redis.Redis(host="127.0.0.1", port=port, decode_responses=True)
        try:
            replicas = client.execute_command("SENTINEL", "REPLICAS", self.MASTER)
            return bool(replicas)
        finally:
            client.close()

    def primary_port(self) -> int:
        """The port of the primary the sentinels name now."""
        client = redis.Redis(host="127.0.0.1", port=self.sentinel_ports[0], decode_responses=True)
        try:
            host_port = client.execute_command("SENTINEL", "GET-MASTER-ADDR-BY-NAME", self.MASTER)
            return int(host_port[1])
        finally:
            client.close()

    def stop(self) -> None:
        for process in self.sentinels:
            process.kill()
            process.wait(10)
        self.sentinels.clear()
        for server in (self.primary, self.replica):
            if server is not None:
                server.stop()
