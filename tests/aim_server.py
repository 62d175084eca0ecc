"""``aim server`` over a repository folder, on a free port, for tests that stop or restart it."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from tests.redis_server import free_port

AIM = str(Path(sys.executable).with_name("aim"))


def wait_for_port(
    port: int, proc: subprocess.Popen[bytes], timeout: float = 60, host: str = "127.0.0.1"
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"server exited with {proc.returncode}")
        with socket.socket() as sock:
            if sock.connect_ex((host, port)) == 0:
                return
        time.sleep(0.2)
    raise AssertionError(f"nothing listens on {host}:{port} after {timeout} s")


def stop_process(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


class AimServer:
    """Aim's remote tracking server over ``repo`` (created if new), bound to ``host``:``port``;
    ``prefix`` runs it in another network namespace (``["ip", "netns", "exec", name]``)."""

    def __init__(
        self,
        repo: Path,
        *,
        host: str = "127.0.0.1",
        port: int | None = None,
        prefix: tuple[str, ...] = (),
    ) -> None:
        self.repo = repo
        self.host = host
        self.port = port or free_port()
        self.prefix = prefix
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"aim://{self.host}:{self.port}"

    def start(self) -> AimServer:
        import aim

        if not (self.repo / ".aim").is_dir():
            self.repo.mkdir(parents=True, exist_ok=True)
            aim.Repo.from_path(str(self.repo), init=True)
        command = [AIM, "server", "--repo", str(self.repo), "--host", self.host]
        self.process = subprocess.Popen(
            [*self.prefix, *command, "--port", str(self.port)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        if not self.prefix:
            wait_for_port(self.port, self.process, host=self.host)
        return self

    def stop(self) -> None:
        if self.process is not None:
            stop_process(self.process)
            self.process = None
