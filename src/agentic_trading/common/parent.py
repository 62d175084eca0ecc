"""A child process that dies with its parent: the parent holds the write end of a pipe whose
read end the child watches (its stdin, or another descriptor it was given); the child sees it
close when the parent dies, however it died, and exits at once, as if killed with it. A Ray
task's training runs in such a child (``studies/ray_engine.py``, ``pbt/member_process.py``)."""

from __future__ import annotations

import os
import signal
import threading

__all__ = ["EXIT_PARENT_GONE", "exit_with_parent", "take_ctrl_c"]

#: The exit code of a child whose parent died (128 + SIGKILL's number: it ends as if killed).
EXIT_PARENT_GONE = 137

STDIN = 0


def _exit_when_closed(fd: int) -> None:
    # The file descriptor, not sys.stdin: a daemon thread blocked in a buffered read would
    # hold the reader's lock at interpreter shutdown (a fatal error).
    while os.read(fd, 4096):
        pass  # until end of file: the parent's end closed
    os._exit(EXIT_PARENT_GONE)  # no clean-up: as a kill would, its trial left to its heartbeat


def exit_with_parent(fd: int = STDIN) -> None:
    """Exit this process at once when ``fd`` (stdin by default) reaches end of file: the
    parent, which alone holds the other end, died."""
    threading.Thread(
        target=_exit_when_closed, args=(fd,), name="exit-with-parent", daemon=True
    ).start()


def take_ctrl_c() -> None:
    """Ctrl-C (SIGINT from the parent) raises ``KeyboardInterrupt`` again where the parent
    blocked or ignored it (a Ray worker blocks it, and a child inherits that). Call from the
    main thread."""
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})
    signal.signal(signal.SIGINT, signal.default_int_handler)
