"""Errors of the tracking system. Each message names the run, value or path at fault."""

from __future__ import annotations

__all__ = [
    "RunFinishedError",
    "RunNotFoundError",
    "TrackingError",
    "TrackingServerUnreachableError",
    "TrackingUnavailableError",
    "describe",
]


class TrackingError(Exception):
    """Base class of the tracking system's errors."""


class TrackingUnavailableError(TrackingError):
    """The tracking storage (an Aim repository or server) cannot be opened or written."""


class TrackingServerUnreachableError(TrackingUnavailableError):
    """The tracking server did not answer; the same operation may succeed when it is back."""


class RunNotFoundError(TrackingError, LookupError):
    """No run has the given id."""


class RunFinishedError(TrackingError):
    """The run was already finished (or never opened by this tracker): it takes no more writes."""


def describe(exc: BaseException, limit: int = 300) -> str:
    """``Type: message`` of ``exc`` in one line of at most ``limit`` characters (a storage
    engine's errors carry whole SQL statements and tracebacks after their first line)."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    line = f"{type(exc).__name__}: {text}" if text else type(exc).__name__
    return line if len(line) <= limit else line[: limit - 3] + "..."
