"""How the tracker's writer process starts on Linux: at the lowest priority, or, when other work
starves that start-up, at normal priority after the seconds its last argument says.

``BackgroundWriter`` runs this file (standard library only, so that nothing of ours is imported
at normal priority) as the writer process it watches. It reads the settings frame, then forks:
the child lowers itself to ``nice 19``, imports the writer and sets its store up (importing Aim
is about a second of CPU, which then takes only what the training leaves), says so, and reads
the training's operations only once this process answers "go". A child that has not said so in
time is killed, and this process becomes the writer itself at normal priority. Until one of them
reads them the operations wait in the pipe, so a training killed meanwhile loses nothing. The
child dies with this process (``PR_SET_PDEATHSIG``), so stopping this one stops the writer.
"""

from __future__ import annotations

import ctypes
import json
import os
import select
import signal
import struct
import sys
from typing import Any

_PR_SET_PDEATHSIG = 1


def _read_exact(size: int) -> bytes:
    """Exactly ``size`` bytes of stdin, unbuffered (what follows stays in the pipe)."""
    data = b""
    while len(data) < size:
        chunk = os.read(0, size - len(data))
        if not chunk:
            break
        data += chunk
    return data


def _writer(hello: dict[str, Any], prepared: Any = None) -> None:
    from agentic_trading.tracking.writer_process import main

    main(hello, prepared)


def _child(hello: dict[str, Any], ready: int, go: int) -> None:
    signal.signal(signal.SIGINT, signal.default_int_handler)  # as a writer started directly
    parent = os.getppid()
    ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != parent:  # the parent died before the line above
        os._exit(1)
    os.nice(19)

    def prepared() -> None:
        os.write(ready, b"r")
        if os.read(go, 1) != b"g":
            os._exit(0)  # replaced: the parent writes instead

    _writer(hello, prepared)


def main() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # this process waits; the writer decides
    seconds = float(sys.argv[-1])
    header = _read_exact(4)
    if len(header) < 4:
        return
    hello = json.loads(_read_exact(struct.unpack(">I", header)[0]))
    ready_read, ready_write = os.pipe()
    go_read, go_write = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(ready_read)
        os.close(go_write)
        _child(hello, ready_write, go_read)
        return
    os.close(ready_write)
    os.close(go_read)
    readable, _, _ = select.select([ready_read], [], [], seconds)
    if readable and os.read(ready_read, 1) == b"r":
        os.write(go_write, b"g")
        for signum in (signal.SIGTERM, signal.SIGHUP):
            signal.signal(signum, lambda number, _frame: os.kill(pid, number))
        _, status = os.waitpid(pid, 0)
        code = os.waitstatus_to_exitcode(status)
        sys.exit(code if code >= 0 else 128 - code)
    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)
    os.close(go_write)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    note = f"the tracking writer took over {seconds:g} s to start at low priority (busy cores)"
    _writer({**hello, "note": f"{note}; started again at normal priority"})


if __name__ == "__main__":
    main()
