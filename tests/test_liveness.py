"""One liveness rule for messaging and tracking: closed without a status, process gone on this
host, heartbeat too old."""

from __future__ import annotations

import socket
import subprocess
import sys
import time

from agentic_trading.liveness import Liveness, pid_alive
from agentic_trading.messaging.messages import ExperimentState
from agentic_trading.status import ExperimentStatus

HOST = socket.gethostname()


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_the_rule_in_its_order() -> None:
    rule = Liveness(10.0)
    now = time.time()
    alive = {"now": now, "heartbeat_at": now - 5, "host": HOST, "pid": None}
    assert rule.dead_reason(**alive) is None
    assert rule.dead_reason(**alive, closed=True) == "the run was closed without a final status"
    gone = _dead_pid()
    assert not pid_alive(gone)
    assert (
        rule.dead_reason(**{**alive, "pid": gone}) == f"its process (pid {gone} on {HOST}) is gone"
    )
    # Another host's pid says nothing here: only its heartbeat counts.
    assert rule.dead_reason(**{**alive, "pid": gone, "host": "elsewhere"}) is None
    late = rule.dead_reason(**{**alive, "heartbeat_at": now - 11})
    assert late is not None and late.startswith("no heartbeat for over 10 s (last: 11 s ago")
    assert rule.dead_reason(**{**alive, "heartbeat_at": None}) is not None
    assert rule.stale_before(now) == now - 10.0


def test_a_live_experiment_whose_process_is_gone_reads_crashed_at_once() -> None:
    now = time.time()
    state = ExperimentState(
        experiment_id="e1",
        namespace="n",
        status=ExperimentStatus.RUNNING,
        created_at=now,
        updated_at=now,
        heartbeat_at=now,  # a fresh heartbeat: only the process says it is dead
        host=HOST,
        pid=_dead_pid(),
    )
    read = state.with_liveness(Liveness(30.0), now)
    assert read.status is ExperimentStatus.CRASHED
    assert read.message is not None and "is gone; the training is presumed dead" in read.message
    mine = state.model_copy(update={"pid": None})
    assert mine.with_liveness(Liveness(30.0), now) is mine
