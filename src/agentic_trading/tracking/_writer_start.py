"""How the tracker's writer process starts on Linux: at the lowest priority, or, when other work
starves that start-up, at normal priority after the seconds its last argument says.

``BackgroundWriter`` runs this file (standard library only, so that nothing of ours is imported
at normal priority) as the writer process it watches. It reads the settings frame and asks this
user's writer service (``_writer_service``, started now if there is none; not with
``ML_WRITER_SERVICE_IDLE=0``) for a writer forked from its warm, low-priority process; failing
that it forks one itself: the child imports the writer (about 1.5 s of CPU) in a thread at
``nice 19``, which takes only what the training leaves. Either writer sets its store up (a new
Aim repository, say) at low priority, says so, and reads the training's operations only once
this process answers "go"; it writes them at normal priority, from a scheduler group of its
own, so that other work on the host cannot hold up a training's final record. A writer that
has not said so in time is killed, and this process becomes the writer itself at normal
priority. When the training waits on a writer that has not started (``HURRY``), the writer
leaves its low-priority group at once; with none yet (a service still importing) this process
becomes the writer at once. Until one of them reads them the operations wait in the pipe, so a
training killed meanwhile loses nothing. The writer dies with this process (its own child by
``PR_SET_PDEATHSIG``, the service's when their connection closes), so stopping this one stops
the writer; this one passes SIGTERM and SIGHUP on.
"""

from __future__ import annotations

import ctypes
import importlib.util
import json
import os
import signal
import struct
import sys
from pathlib import Path
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


def _writer_main(backend: str | None = None) -> Any:
    """The writer's ``main``, with ``backend``'s SDK imported too if given."""
    from agentic_trading.tracking.writer_process import main, warm_up

    if backend is not None:
        warm_up(backend)
    return main


def _backend(hello: dict[str, Any]) -> str:
    return str(hello.get("settings", {}).get("ml_tracking_backend") or "aim")


def _child(hello: dict[str, Any], ready: int, go: int) -> None:
    signal.signal(signal.SIGINT, signal.default_int_handler)  # as a writer started directly
    service = _service()
    signal.signal(service.HURRY, service.leave_low_priority)
    parent = os.getppid()
    ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != parent:  # the parent died before the line above
        os._exit(1)

    def prepared() -> None:
        # The writing thread has the normal priority; RocksDB's threads, started by the set-up,
        # have nice 19 but, with autogroups, a scheduler group of their own to share with it.
        service.leave_low_priority()
        os.write(ready, b"r")
        if os.read(go, 1) != b"g":
            os._exit(0)  # replaced: the parent writes instead

    # The imports (1.5 s of CPU) and the store's set-up at the lowest priority, the writing at
    # normal priority (the writer is not starved by other work, which a final record waits on).
    low = service.at_low_priority
    main = low(lambda: _writer_main(_backend(hello)))
    main(hello, prepared, set_up=low)


def _service() -> Any:
    # Loaded by path: importing it as agentic_trading.tracking._writer_service would import
    # the package (and its dependencies) here, at normal priority.
    spec = importlib.util.spec_from_file_location(
        "_agentic_trading_writer_service", Path(__file__).with_name("_writer_service.py")
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _forward_signals(pid: int) -> None:
    for signum in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, lambda number, _frame: os.kill(pid, number))


def _exit(code: int) -> None:
    sys.exit(code if code >= 0 else 128 - code)


def _forked_writer(hello: dict[str, Any], deadline: Any, hurried: list[int]) -> None:
    """Fork a writer and exit with its code; return only when it was not ready by ``deadline``
    (it is killed then). Its pid goes into ``hurried``: a hurry is passed on to it."""
    ready_read, ready_write = os.pipe()
    go_read, go_write = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(ready_read)
        os.close(go_write)
        _child(hello, ready_write, go_read)
        sys.exit(0)
    hurried.append(pid)
    os.close(ready_write)
    os.close(go_read)
    if deadline.readable(ready_read) and os.read(ready_read, 1) == b"r":
        os.write(go_write, b"g")
        _forward_signals(pid)
        _, status = os.waitpid(pid, 0)
        _exit(os.waitstatus_to_exitcode(status))
    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)
    os.close(go_write)


def main() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # this process waits; the writer decides
    service = _service()
    seconds = float(sys.argv[-1])
    deadline = service.Deadline(seconds)
    hurried: list[int] = []  # the writer a hurry goes to; none yet: stop waiting for one

    def hurry(signum: int, _frame: Any) -> None:
        # The training waits on a writer that has not started yet: other work may be starving
        # its low-priority start-up. The writer, or the service still importing, leaves its
        # low-priority group; with neither yet this process becomes the writer at once.
        if hurried:
            try:
                os.kill(hurried[-1], signum)
            except OSError:
                pass
        else:
            deadline.at = 0.0

    signal.signal(service.HURRY, hurry)
    header = _read_exact(4)
    if len(header) < 4:
        return
    hello = json.loads(_read_exact(struct.unpack(">I", header)[0]))
    settings = hello.get("settings", {})
    idle = float(settings.get("ml_writer_service_idle") or 0)
    writer = None
    if idle > 0:
        try:
            writer = service.request_writer(hello, _backend(hello), idle, deadline, hurried)
        except Exception as exc:  # never worse than no service: this process forks its own
            print(f"agentic-trading: the tracking writer service failed: {exc!r}", file=sys.stderr)
    if writer is not None:
        hurried.append(writer.pid)
        if writer.ready(deadline) and writer.go():
            _forward_signals(writer.pid)
            _exit(writer.wait())
        writer.kill()
    elif deadline.left() > 0:
        _forked_writer(hello, deadline, hurried)
    signal.signal(service.HURRY, signal.SIG_IGN)  # this process is the writer now
    signal.signal(signal.SIGINT, signal.default_int_handler)
    if deadline.at == 0.0:
        note = "the tracking writer had not started at low priority when the training waited on it"
    else:
        note = f"the tracking writer took over {seconds:g} s to start at low priority"
    note += " (busy cores)"
    _writer_main()({**hello, "note": f"{note}; started again at normal priority"})


if __name__ == "__main__":
    main()
