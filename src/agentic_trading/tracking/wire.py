"""What the tracker and its writer say to each other: typed operations and replies, one frame
codec (length-prefixed JSON, never pickle) and one mapping of errors.

The same protocol runs over a writer process's standard streams and over the pipes of a
writer thread (``ML_WRITER``). The caller sends frames that are lists of operations; the
writer answers with frames that are lists of replies:

* ``{"taken": n}``: the writer read ``n`` operations (it holds them; the caller may send more);
* ``{"applied": n}``: ``n`` operations reached the store (or failed there);
* ``{"id": i, "ok": true, "result": ...}`` or ``{"id": i, "ok": false, "error": ..., "message":
  ...}``: the outcome of operation ``i`` (only operations with an ``id`` expect one);
* ``{"fault": why}``: the store refuses writes for good (a full or read-only disk).

End of input means the caller closed the writer or died: the writer applies what it read,
records the runs still open as ``crashed`` with :data:`EXIT_ERROR`, and exits.
"""

from __future__ import annotations

import json
import struct
from typing import IO, Any, Literal, NotRequired, TypedDict

from agentic_trading.tracking.errors import (
    RunFinishedError,
    RunNotFoundError,
    TrackingError,
    TrackingUnavailableError,
)

__all__ = [
    "CALLS",
    "EXIT_ERROR",
    "CallOp",
    "CaptureOp",
    "CloseOp",
    "FlushOp",
    "Hello",
    "OpenOp",
    "Operation",
    "OutputOp",
    "Point",
    "TrackOp",
    "error_from_wire",
    "error_to_wire",
    "read_frame",
    "write_frame",
]

#: The error recorded on a run whose process ended without finishing it.
EXIT_ERROR = "the process exited before finish_run was called"

#: Store methods a ``call`` operation may name.
CALLS = frozenset({"set_attributes", "add_tags", "log_artifact"})

#: One point: ``[step, {name: finite value}, [names of values skipped as not finite]]``.
Point = list[Any]


class Hello(TypedDict):
    """The first frame: the tracking settings and the process whose runs these are."""

    settings: dict[str, Any]
    owner_pid: int


class OpenOp(TypedDict):
    kind: Literal["open"]
    id: NotRequired[int]
    run: str
    experiment: str
    config: dict[str, Any]
    tags: list[str]


class TrackOp(TypedDict):
    kind: Literal["track"]
    run: str
    points: list[Point]


class CallOp(TypedDict):
    kind: Literal["call"]
    id: NotRequired[int]
    run: str
    method: str
    args: list[Any]


class CloseOp(TypedDict):
    kind: Literal["close"]
    id: NotRequired[int]
    run: str
    status: str
    final: dict[str, float]
    error: str | None
    values: NotRequired[int]


class CaptureOp(TypedDict):
    """Where the run came from, as the training process knows it; the writer adds the rest
    (``tracking.environment``)."""

    kind: Literal["capture"]
    id: NotRequired[int]
    run: str
    facts: dict[str, Any]


class OutputOp(TypedDict):
    """Lines the training wrote to its console, for the run's ``output.log``."""

    kind: Literal["output"]
    run: str
    lines: list[str]


class FlushOp(TypedDict):
    kind: Literal["flush"]
    id: NotRequired[int]


Operation = OpenOp | TrackOp | CallOp | CaptureOp | OutputOp | CloseOp | FlushOp

_HEADER = struct.Struct(">I")


def write_frame(stream: IO[bytes], data: Any) -> None:
    """Write one JSON document, length-prefixed."""
    body = json.dumps(data, separators=(",", ":"), allow_nan=False).encode()
    stream.write(_HEADER.pack(len(body)) + body)
    stream.flush()


def read_frame(stream: IO[bytes]) -> Any:
    """The next JSON document, or ``None`` at end of stream."""
    header = stream.read(_HEADER.size)
    if len(header) < _HEADER.size:
        return None
    (size,) = _HEADER.unpack(header)
    body = stream.read(size)
    if len(body) < size:
        return None
    return json.loads(body)


_ERRORS: dict[str, type[Exception]] = {
    cls.__name__: cls
    for cls in (
        TrackingError,
        TrackingUnavailableError,
        RunNotFoundError,
        RunFinishedError,
        ValueError,
        TypeError,
        FileNotFoundError,
        PermissionError,
    )
}


def error_to_wire(exc: BaseException) -> dict[str, str]:
    """An exception as data, for a reply."""
    return {"error": type(exc).__name__, "message": str(exc)}


def error_from_wire(reply: dict[str, Any]) -> Exception:
    """The exception a reply describes (our own errors and a few built-ins keep their class)."""
    cls = _ERRORS.get(str(reply.get("error")), TrackingError)
    return cls(str(reply.get("message", "the tracking writer failed")))
