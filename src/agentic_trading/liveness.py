"""When a record that says ``running`` is dead: one rule for messaging and tracking alike.

A ``running`` experiment or run is dead (read as ``crashed``) when, checked in this order,

1. it was closed without a final status (a tracked run with an end time but no status);
2. its process is gone: it ran on this host and its pid no longer exists;
3. its heartbeat is older than the timeout (``MESSAGE_HEARTBEAT_TIMEOUT`` for live state,
   ``ML_HEARTBEAT_TIMEOUT`` for tracked runs), or it never sent one.

Messaging's readers, the experiment repository and the run catalogue's SQL all ask
:class:`Liveness`; the catalogue builds its SQL from :meth:`Liveness.stale_before` and the
processes :meth:`Liveness.process_gone` names, so a list and a single read always agree.
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass, field

__all__ = ["Liveness", "pid_alive"]


def pid_alive(pid: int) -> bool:
    """Whether a process with ``pid`` exists on this host (one of another user's counts)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # PermissionError: it exists, and is not ours
        return True
    return True


@dataclass(frozen=True)
class Liveness:
    """The rule, with the heartbeat timeout of the system that asks."""

    heartbeat_timeout: float
    host: str = field(default_factory=socket.gethostname)

    def stale_before(self, now: float) -> float:
        """Heartbeats before this moment (Unix seconds) are too old."""
        return now - self.heartbeat_timeout

    def process_gone(self, host: str | None, pid: int | None) -> bool:
        """Whether the record's process ran on this host and no longer exists."""
        return host == self.host and pid is not None and not pid_alive(pid)

    def dead_reason(
        self,
        *,
        now: float,
        heartbeat_at: float | None,
        host: str | None,
        pid: int | None,
        closed: bool = False,
    ) -> str | None:
        """Why a ``running`` record is dead, in words; ``None`` while it may be alive."""
        if closed:
            return "the run was closed without a final status"
        if self.process_gone(host, pid):
            return f"its process (pid {pid} on {host}) is gone"
        if heartbeat_at is None or heartbeat_at < self.stale_before(now):
            last = "never" if heartbeat_at is None else f"{now - heartbeat_at:.0f} s ago"
            where = f" from {host} pid {pid}" if host else ""
            return f"no heartbeat for over {self.heartbeat_timeout:g} s (last: {last}{where})"
        return None
