"""Network hosts for scale-out and chaos runs: Linux network namespaces joined by veth pairs to
a bridge. Addresses exist only inside the namespaces made here (root or CAP_NET_ADMIN)."""

from __future__ import annotations

import subprocess
import uuid

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
