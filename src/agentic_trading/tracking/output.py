"""A training's console output, kept with its run (artifact ``output.log``).

:class:`OutputCapture` tees ``sys.stdout`` and ``sys.stderr`` (and the logging handlers that
write to them) while a training runs: every write still reaches the terminal at once, and the
complete lines are also kept, without colour codes, for the tracker to hand to its writer. A
progress bar's redraws (a carriage return, then the bar again) leave one line: the bar's last
state. The writer appends the lines to the run's ``output.log`` (at most
``ML_CAPTURE_OUTPUT_MAX_LINES``) and stores it when the run ends, also when the training
process died.
"""

from __future__ import annotations

import logging
import re
import sys
import threading
from typing import Any, TextIO

__all__ = ["OUTPUT_ARTIFACT", "OutputCapture", "clean_line"]

#: The artifact holding a training's console lines.
OUTPUT_ARTIFACT = "output.log"

#: ANSI escape sequences (colours, cursor moves, erases) and other control characters.
_ESCAPES = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]|\x1b[@-Z\\-_]|[\x00-\x08\x0b-\x1f\x7f]")
_MAX_LINE = 10_000  # characters of one line kept


def clean_line(text: str) -> str:
    """A line as a reader wants it: what follows its last carriage return (a redrawn bar's
    last state), without escape sequences, at most 10,000 characters."""
    return _ESCAPES.sub("", text.rsplit("\r", 1)[-1])[:_MAX_LINE]


class _Tee:
    """A text stream that writes through to ``target`` and hands the text to the hub."""

    def __init__(self, target: TextIO, hub: _Hub, name: str) -> None:
        self._target = target
        self._hub = hub
        self._name = name

    def write(self, text: str) -> int:
        written = self._target.write(text)
        self._hub.add(self._name, text)
        return written

    def __getattr__(self, name: str) -> Any:  # isatty, fileno, encoding, flush, ...
        return getattr(self._target, name)


class _Hub:
    """The process's one tee: installed while some capture runs (trainings in threads of one
    process, as the dashboard's, each get every line written meanwhile)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._captures: list[OutputCapture] = []
        self._saved: tuple[TextIO, TextIO] | None = None
        self._handlers: list[tuple[logging.StreamHandler[Any], Any]] = []

    def add(self, stream: str, text: str) -> None:
        with self._lock:
            captures = list(self._captures)
        for capture in captures:
            capture.add(stream, text)

    def join(self, capture: OutputCapture) -> None:
        with self._lock:
            self._captures.append(capture)
            if self._saved is not None:
                return
            out, err = sys.stdout, sys.stderr
            self._saved = (out, err)
            tees = {id(out): _Tee(out, self, "stdout"), id(err): _Tee(err, self, "stderr")}
            sys.stdout, sys.stderr = tees[id(out)], tees[id(err)]
            for handler in _stream_handlers():
                tee = tees.get(id(handler.stream))
                if tee is not None:
                    self._handlers.append((handler, handler.stream))
                    handler.setStream(tee)

    def leave(self, capture: OutputCapture) -> None:
        with self._lock:
            if capture in self._captures:
                self._captures.remove(capture)
            if self._captures or self._saved is None:
                return
            sys.stdout, sys.stderr = self._saved
            self._saved = None
            for handler, stream in self._handlers:
                handler.setStream(stream)
            self._handlers.clear()


_hub = _Hub()


class OutputCapture:
    """Keeps the lines the process writes to stdout and stderr (and its logging handlers
    writing there) between :meth:`start` and :meth:`stop`; :meth:`take` hands over those
    completed since the last call. Writes reach the terminal as before."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._lines: list[str] = []
        self._partial: dict[str, str] = {}  # per stream: the line not finished yet
        self._started = False

    def add(self, stream: str, text: str) -> None:
        """Keep the lines ``text`` completes on ``stream`` (the tee calls this)."""
        with self._lock:
            *done, self._partial[stream] = (self._partial.get(stream, "") + text).split("\n")
            self._lines.extend(clean_line(line) for line in done)

    def take(self) -> list[str]:
        """The lines completed since the last call."""
        with self._lock:
            lines, self._lines = self._lines, []
        return lines

    def start(self) -> None:
        """Begin keeping lines."""
        if not self._started:
            self._started = True
            _hub.join(self)

    def stop(self) -> list[str]:
        """Stop keeping lines; those not taken yet, the unfinished one included."""
        if self._started:
            self._started = False
            _hub.leave(self)
        with self._lock:
            for partial in self._partial.values():
                if clean_line(partial).strip():
                    self._lines.append(clean_line(partial))
            self._partial.clear()
        return self.take()


def _stream_handlers() -> list[logging.StreamHandler[Any]]:
    loggers: list[logging.Logger] = [logging.getLogger()]
    loggers += [
        logger for logger in logging.Logger.manager.loggerDict.values()
        if isinstance(logger, logging.Logger)
    ]  # fmt: skip
    return [
        handler
        for logger in loggers
        for handler in logger.handlers
        if type(handler) is logging.StreamHandler
    ]
