"""The tracker's writer: ``python -m agentic_trading.tracking.writer_process``, or :func:`serve`
in a thread.

:class:`~agentic_trading.tracking.writer.BackgroundWriter` starts one per process that tracks
(``ML_WRITER=process``) and every run of that process goes through it. It reads frames of
operations (``wire``) on stdin and answers on stdout; anything else printed (by Aim, say)
goes to stderr so that it cannot corrupt the replies. End of input means the training
process closed it or died: it applies what it read, records the runs still open as
``crashed``, and exits.
"""

from __future__ import annotations

import logging
import os
import queue
import signal
import sys
import threading
from collections.abc import Callable
from typing import IO, Any

from agentic_trading.alerts.sender import EXIT_WAIT
from agentic_trading.tracking.executor import RunExecutor
from agentic_trading.tracking.wire import EXIT_ERROR, Hello, error_to_wire, read_frame, write_frame

__all__ = ["main", "serve"]


def serve(
    stdin: IO[bytes],
    stdout: IO[bytes],
    executor_for: Callable[[Hello], RunExecutor],
) -> None:
    """Serve one tracker: read the hello frame, make the executor (``executor_for``), then
    apply each frame's operations in order, reply, and beat; at end of input record the open
    runs as ``crashed``.

    Operations are acknowledged as *taken* when read, up to ``ML_WRITER_BUFFER`` of them not
    yet applied: while a tracking server is away the training goes on and the writer holds its
    data; beyond that the training waits (back-pressure), and nothing is dropped.
    """
    hello: Hello | None = read_frame(stdin)
    if hello is None:
        return
    executor = executor_for(hello)
    executor.prepare()
    limit = int(hello["settings"].get("ml_writer_buffer") or 100_000)
    frames: queue.Queue[Any] = queue.Queue()
    held = threading.Condition()
    held_ops = [0]  # operations read but not yet applied
    out_lock = threading.Lock()
    peer_gone = False

    def send(replies: list[dict[str, Any]]) -> None:
        nonlocal peer_gone
        with out_lock:
            if peer_gone:
                return
            try:
                write_frame(stdout, replies)
            except (OSError, ValueError):
                # The training process died: nobody reads replies any more. Keep applying what
                # it sent before dying, then record its open runs as crashed below.
                peer_gone = True

    def read_all() -> None:
        while (frame := read_frame(stdin)) is not None:
            with held:
                held.wait_for(lambda: held_ops[0] < limit)
                held_ops[0] += len(frame)
            frames.put(frame)
            send([{"taken": len(frame)}])
        frames.put(None)

    threading.Thread(target=read_all, name="agentic-trading-writer-input", daemon=True).start()
    fault_told = False
    while True:
        try:
            batch = frames.get(timeout=executor.seconds_to_beat())
        except queue.Empty:
            executor.beat_if_due()
            continue
        if batch is None:
            break
        replies: list[dict[str, Any]] = []
        for op in batch:
            try:
                result = executor.apply(op)
            except Exception as exc:
                if "id" in op:
                    replies.append({"id": op["id"], "ok": False, **error_to_wire(exc)})
            else:
                if "id" in op:
                    replies.append({"id": op["id"], "ok": True, "result": result})
            if executor.fault is not None and not fault_told:
                # Told at once: a store that refuses writes may also hang on the next one.
                fault_told = True
                send([{"fault": executor.fault}])
        with held:
            held_ops[0] -= len(batch)
            held.notify_all()
        replies.append({"applied": len(batch)})
        send(replies)
        if frames.empty():
            executor.settle()  # after the replies: whoever waits on one goes on meanwhile
        executor.beat_if_due()
    executor.settle()
    executor.abandon(EXIT_ERROR)
    executor.store.close()
    executor.close_alerts(EXIT_WAIT)


def _executor(hello: Hello) -> RunExecutor:
    from agentic_trading.config import Settings
    from agentic_trading.tracking.backends import create_run_store

    settings = Settings(_env_file=None, **hello["settings"])
    owner = int(hello["owner_pid"])
    return RunExecutor.for_settings(create_run_store(settings, owner), settings, owner)


def _quiet_aim_finalizers(unraisable: Any) -> None:
    # Aim's remote objects release their server-side resources from finalizers; after the
    # server restarted those resources are gone and each finalizer would print a traceback.
    # Our own log says what happened to the server.
    frame = unraisable.exc_traceback
    while frame is not None:
        if "aim/ext/transport" in frame.tb_frame.f_code.co_filename:
            return
        frame = frame.tb_next
    sys.__unraisablehook__(unraisable)


def main() -> None:
    """Serve the training process on stdin/stdout until it closes them or dies."""
    # Ctrl-C, a closed terminal and a stop of the whole process group (systemd, say) reach
    # this process too: the training decides, records the outcome through this writer, and
    # this writer exits when the training's end closes its input.
    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, signal.SIG_IGN)
    sys.unraisablehook = _quiet_aim_finalizers
    logging.getLogger("aim.ext.transport").setLevel(logging.CRITICAL)  # we log outages ourselves
    replies = os.fdopen(os.dup(sys.stdout.fileno()), "wb")
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())
    serve(sys.stdin.buffer, replies, _executor)


if __name__ == "__main__":
    main()
