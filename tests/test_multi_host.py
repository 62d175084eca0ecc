"""Scale-out on real network hosts: Linux network namespaces joined by veth pairs to a switch.

One host runs Redis and ``aim server``; two trainer hosts each run a short PPO training
against them; a fourth host watches with ``monitor --once --json`` and reads the runs back
through the Aim server. Addresses exist only inside the namespaces the test makes.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.aim_server import AimServer
from tests.trainings import CLI, ROOT, assert_complete, start_training

pytestmark = pytest.mark.timeout(300)

SUBNET = "10.231.{}.{}"
HOSTS = ("services", "trainer1", "trainer2", "watcher")


def _ip(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["ip", *args], capture_output=True, text=True, check=False)


class Network:
    """Four hosts, each a network namespace with one veth link to a bridge in a fifth."""

    def __init__(self) -> None:
        tag = uuid.uuid4().hex[:6]
        self.names = {host: f"at-{tag}-{host[:4]}{host[-1]}" for host in HOSTS}
        self.switch = f"at-{tag}-sw"
        self.octet = int(tag[:2], 16) % 200 + 20
        self.address = {host: SUBNET.format(self.octet, i + 1) for i, host in enumerate(HOSTS)}
        self.made: list[str] = []

    def create(self) -> None:
        for name in (self.switch, *self.names.values()):
            result = _ip("netns", "add", name)
            if result.returncode != 0:
                raise PermissionError(result.stderr.strip())
            self.made.append(name)
        self._run(self.switch, "ip", "link", "add", "br0", "type", "bridge")
        self._run(self.switch, "ip", "link", "set", "br0", "up")
        for i, (host, name) in enumerate(self.names.items()):
            inner, outer = f"veth{i}", f"port{i}"
            self._run(name, "ip", "link", "add", inner, "type", "veth", "peer", "name", outer)
            self._run(name, "ip", "link", "set", outer, "netns", self.switch)
            self._run(self.switch, "ip", "link", "set", outer, "master", "br0")
            self._run(self.switch, "ip", "link", "set", outer, "up")
            self._run(name, "ip", "addr", "add", f"{self.address[host]}/24", "dev", inner)
            self._run(name, "ip", "link", "set", inner, "up")
            self._run(name, "ip", "link", "set", "lo", "up")

    def _run(self, namespace: str, *command: str) -> None:
        subprocess.run(["ip", "netns", "exec", namespace, *command], check=True)

    def prefix(self, host: str) -> tuple[str, ...]:
        return ("ip", "netns", "exec", self.names[host])

    def delete(self) -> None:
        for name in reversed(self.made):
            _ip("netns", "delete", name)


@pytest.fixture
def network() -> Iterator[Network]:
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


def test_two_trainer_hosts_report_to_one_redis_and_one_aim_server(
    network: Network, tmp_path: Path
) -> None:
    services = network.address["services"]
    password = uuid.uuid4().hex  # Redis off loopback: protected mode wants a password, rightly
    redis = subprocess.Popen(
        [
            *network.prefix("services"),
            "redis-server",
            "--bind",
            services,
            "--port",
            "6379",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(tmp_path),
            "--requirepass",
            password,
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    aim = AimServer(
        tmp_path / "tracking", host=services, port=53800, prefix=network.prefix("services")
    ).start()
    env = {
        **os.environ,
        "MESSAGE_BROKER_TYPE": "redis",
        "REDIS_URL": f"redis://{services}:6379/0",
        "REDIS_PASSWORD": password,
        "MESSAGE_NAMESPACE": "multi-host",
        "ML_STORAGE_PATH": aim.url,
        # a folder every host sees, as an NFS mount would be
        "ML_ARTIFACTS_URI": (tmp_path / "shared-artifacts").as_uri(),
        "ML_HEARTBEAT_INTERVAL": "1",
    }

    def on(host: str, *args: str, timeout: float = 60) -> Any:
        done = subprocess.run(
            [*network.prefix(host), *CLI, *args],
            env=env,
            capture_output=True,
            text=True,
            timeout=timeout,
            cwd=ROOT,
            check=False,
        )
        assert done.returncode == 0, done.stderr
        return json.loads(done.stdout)

    trainings = []
    try:
        _wait_for_services(network, services)
        for host in ("trainer1", "trainer2"):
            trainings.append(start_training(env, host, 3000, prefix=network.prefix(host)))
        # Both trainings are visible live from the watcher host while they run.
        seen_running: set[str] = set()
        deadline = time.monotonic() + 120
        while seen_running != {"trainer1", "trainer2"} and time.monotonic() < deadline:
            for state in on("watcher", "monitor", "--once", "--json"):
                if state["status"] == "running" and state["current_step"] > 0:
                    seen_running.add(state["experiment_id"].rsplit("-", 1)[0])
            time.sleep(0.5)
        assert seen_running == {"trainer1", "trainer2"}
        outcomes = []
        for proc in trainings:
            out, err = proc.communicate(timeout=240)
            assert proc.returncode == 0, err
            outcomes.append(json.loads(out))
        # Every run is complete in tracking: read from the watcher host through the Aim server...
        runs = {run["experiment"]: run for run in on("watcher", "experiments", "list", "--json")}
        assert {runs["trainer1"]["status"], runs["trainer2"]["status"]} == {"completed"}
        # ...and in the server's own repository folder, every held-out point and the model.
        for outcome in outcomes:
            assert_complete(aim.repo, outcome["run_id"])
            model = on("watcher", "experiments", "show", outcome["run_id"], "--json")["artifacts"]
            assert model["model.zip"] == outcome["model"]
            assert outcome["model"].startswith((tmp_path / "shared-artifacts").as_uri())
        # The live state of both is final in Redis, as the watcher sees it.
        states = on("watcher", "monitor", "--once", "--json")
        final = {s["experiment_id"].rsplit("-", 1)[0]: s["status"] for s in states}
        assert final == {"trainer1": "completed", "trainer2": "completed"}
    finally:
        for proc in trainings:
            if proc.poll() is None:
                proc.kill()
        aim.stop()
        redis.terminate()
        redis.wait(10)


def _wait_for_services(network: Network, address: str) -> None:
    probe = (
        "import socket, sys, time\n"
        "deadline = time.time() + 60\n"
        "for port in (6379, 53800):\n"
        "    while socket.socket().connect_ex((sys.argv[1], port)) != 0:\n"
        "        assert time.time() < deadline, port\n"
        "        time.sleep(0.2)\n"
    )
    subprocess.run([*network.prefix("trainer1"), sys.executable, "-c", probe, address], check=True)
