"""SIGTERM and SIGHUP stop trainings the way a stop request does.

systemd, Kubernetes, Slurm, ``docker stop`` and ``kill`` stop a process with SIGTERM (a closed
terminal sends SIGHUP). While a training runs, :func:`watch` has those signals ask it to stop:
it ends ``cancelled`` ("terminated by SIGTERM") in messaging and tracking with everything
logged so far written, and the process then exits with the conventional code, 128 + the
signal's number (143 for SIGTERM, 129 for SIGHUP). A second signal exits at once.

Handlers are installed only from the main thread (Python's rule), only while something is
watched, and the handlers found there before are called too (chained) and put back afterwards.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
from collections.abc import Callable
from types import FrameType
from typing import Any

__all__ = ["TERMINATING", "exit_code", "received", "reset", "unwatch", "watch"]

logger = logging.getLogger("agentic_trading")

#: The signals that stop a training.
TERMINATING = (signal.SIGTERM, signal.SIGHUP)

_lock = threading.RLock()
_stoppers: dict[int, Callable[[str], None]] = {}
_what: dict[int, str] = {}  # what each stopper stops, for the line a signal prints
_previous: dict[int, Any] = {}
_next_token = [0]
_received: list[int] = []


def exit_code(signum: int) -> int:
    """The conventional exit code of a process ended by ``signum``: 128 + its number."""
    return 128 + signum


def received() -> int | None:
    """The first terminating signal received while something was watched, if any."""
    return _received[0] if _received else None


def reset() -> None:
    """Forget a received signal and put the previous handlers back (a long-lived process that
    goes on after one)."""
    with _lock:
        _received.clear()
        if not _stoppers and _previous:
            _restore()


def watch(stop: Callable[[str], None], what: str = "the training") -> int:
    """Call ``stop(reason)`` when SIGTERM or SIGHUP arrives; returns a token for
    :func:`unwatch`. Installs the handlers when called from the main thread; from another
    thread ``stop`` is called only if the main thread installed them (a dashboard does)."""
    with _lock:
        _next_token[0] += 1
        token = _next_token[0]
        _stoppers[token] = stop
        _what[token] = what
        if not _previous and threading.current_thread() is threading.main_thread():
            _install()
        return token


def unwatch(token: int) -> None:
    """Stop watching for ``token``; the last one out puts the previous handlers back."""
    with _lock:
        _stoppers.pop(token, None)
        _what.pop(token, None)
        # After a signal the process is on its way out: a second one must still exit at once.
        if (
            not _stoppers
            and _previous
            and not _received
            and threading.current_thread() is threading.main_thread()
        ):
            _restore()


def _install() -> None:
    for signum in TERMINATING:
        try:
            _previous[signum] = signal.signal(signum, _handle)
        except (ValueError, OSError):  # not the main thread, or not allowed here
            continue


def _restore() -> None:
    for signum, handler in list(_previous.items()):
        try:
            signal.signal(signum, handler if handler is not None else signal.SIG_DFL)
        except (ValueError, OSError):
            pass
    _previous.clear()


def _handle(signum: int, frame: FrameType | None) -> None:
    name = signal.Signals(signum).name
    if _received:
        # A second signal: the user means it. Leave now, writing nothing more.
        os.write(2, f"\n{name} again: exiting at once\n".encode())
        os._exit(exit_code(signum))
    _received.append(signum)
    with _lock:
        stoppers = list(reversed(_stoppers.values()))  # newest first: trainings, then hosts
        what = " and ".join(dict.fromkeys(reversed(_what.values()))) or "this process"
        previous = _previous.get(signum)
    logger.warning("%s received: stopping %s (send it again to exit at once)", name, what)
    for stop in stoppers:
        try:
            stop(f"terminated by {name}")
        except Exception as exc:  # one training's trouble must not keep the others running
            logger.error("could not stop a training on %s: %s", name, exc)
    if callable(previous):  # the user's own handler runs too
        previous(signum, frame)
