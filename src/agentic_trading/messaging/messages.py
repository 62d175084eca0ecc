"""The messages on the wire: versioned JSON, validated on the way in, never pickled.

Two shapes travel: an :class:`ExperimentState` (the current state of one experiment, kept per
experiment) and an :class:`Event` (one change, appended to the namespace's event log). Every
event carries the experiment's state after the change, so a reader never has to replay history
to know where an experiment stands.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from enum import Enum
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from agentic_trading.common.values import check_json_mapping, check_number
from agentic_trading.liveness import Liveness
from agentic_trading.status import ExperimentStatus

__all__ = [
    "MAX_MESSAGE_BYTES",
    "SCHEMA_VERSION",
    "Event",
    "EventType",
    "ExperimentState",
    "MessageDecodeError",
    "check_config",
    "check_metrics",
    "decode_event",
    "encode_event",
    "encode_event_around",
]

SCHEMA_VERSION = 1
MAX_MESSAGE_BYTES = 1_000_000
MAX_METRICS = 256


class EventType(str, Enum):
    """What an :class:`Event` reports."""

    CREATED = "created"
    STATUS = "status"
    PROGRESS = "progress"
    METRICS = "metrics"
    HEARTBEAT = "heartbeat"
    STOP_REQUESTED = "stop_requested"
    DELETED = "deleted"
    SNAPSHOT = "snapshot"
    """Not on the wire: the current state a new subscriber is given first."""


class ExperimentState(BaseModel):
    """The live state of one experiment, as every reader sees it.

    Times are Unix epoch seconds. ``progress`` is in percent. ``steps_per_second`` and
    ``eta_seconds`` are derived from the recent progress updates. ``status`` is ``crashed`` when
    a ``running`` experiment is dead by the rule of :mod:`agentic_trading.liveness` (its
    process gone on this host, or no heartbeat for ``MESSAGE_HEARTBEAT_TIMEOUT`` seconds).
    """

    model_config = ConfigDict(extra="ignore", frozen=False)

    experiment_id: str
    namespace: str
    status: ExperimentStatus = ExperimentStatus.PENDING
    message: str | None = None
    progress: float = 0.0
    current_step: int = 0
    total_steps: int | None = None
    config: dict[str, Any] = Field(default_factory=dict)
    created_at: float
    started_at: float | None = None
    updated_at: float
    heartbeat_at: float
    finished_at: float | None = None
    steps_per_second: float | None = None
    eta_seconds: float | None = None
    latest_metrics: dict[str, float] = Field(default_factory=dict)
    metrics_step: int | None = None
    stop_requested: bool = False
    host: str | None = None
    pid: int | None = None

    def with_liveness(self, liveness: Liveness, now: float) -> ExperimentState:
        """This state, or a copy reported as ``crashed`` if it is running and dead."""
        if self.status != ExperimentStatus.RUNNING:
            return self
        reason = liveness.dead_reason(
            now=now, heartbeat_at=self.heartbeat_at, host=self.host, pid=self.pid
        )
        if reason is None:
            return self
        return self.model_copy(
            update={
                "status": ExperimentStatus.CRASHED,
                "message": f"{reason}; the training is presumed dead",
                "eta_seconds": None,
                "steps_per_second": None,
            }
        )


class Event(BaseModel):
    """One change to an experiment, as appended to its namespace's event log.

    ``id`` is the position in the log (assigned by the broker, not part of the JSON); pass the
    last one you saw to ``subscribe(last_event_id=...)`` to resume after it.
    """

    model_config = ConfigDict(extra="ignore")

    v: Literal[1] = 1
    type: EventType
    namespace: str
    experiment_id: str
    ts: float
    state: ExperimentState | None = None
    step: int | None = None
    metrics: dict[str, float] | None = None
    id: str | None = Field(default=None, exclude=True)


class MessageDecodeError(ValueError):
    """Bytes on the wire that are not a message this version understands."""


def encode_event(event: Event) -> str:
    """The event as compact JSON (without its log position)."""
    return event.model_dump_json(exclude_none=True)


def decode_event(raw: str | bytes, event_id: str | None = None) -> Event:
    """Parse and validate one event; raise :class:`MessageDecodeError` saying what is wrong."""
    size = len(raw)
    if size > MAX_MESSAGE_BYTES:
        raise MessageDecodeError(f"message of {size} bytes exceeds {MAX_MESSAGE_BYTES}")
    try:
        event = Event.model_validate_json(raw)
    except ValidationError as exc:
        raise MessageDecodeError(_explain(raw, exc)) from None
    event.id = event_id
    return event


def _explain(raw: str | bytes, exc: ValidationError) -> str:
    first = exc.errors()[0]
    if first["type"] in ("json_invalid", "json_type"):
        return f"message is not JSON: {first['msg']}"
    if first["type"] == "model_type":
        return "message is not a JSON object"
    try:
        version = json.loads(raw).get("v")
    except (ValueError, AttributeError):
        version = None
    if version != SCHEMA_VERSION:
        return f"message schema version {version!r} is not supported (this reader knows {SCHEMA_VERSION})"
    where = ".".join(str(p) for p in first["loc"])
    return f"message field {where!r}: {first['msg']}"


def encode_event_around(
    kind: EventType,
    namespace: str,
    experiment_id: str,
    ts: float,
    state_json: str,
    **extra: Any,
) -> str:
    """The JSON of an event around an already-encoded state (saves encoding the state twice)."""
    head = json.dumps(
        {
            "v": SCHEMA_VERSION,
            "type": kind.value,
            "namespace": namespace,
            "experiment_id": experiment_id,
            "ts": ts,
            **extra,
        },
        separators=(",", ":"),
        allow_nan=False,
    )
    return f'{head[:-1]},"state":{state_json}}}'


def check_config(config: Mapping[str, Any] | None) -> dict[str, Any]:
    """Return ``config`` as plain JSON data, or raise ``ValueError`` naming what cannot be."""
    return check_json_mapping(config, "config", MAX_MESSAGE_BYTES // 2)


def check_metrics(metrics: Mapping[str, Any]) -> dict[str, float]:
    """Return ``metrics`` as ``{name: float}``, or raise ``ValueError`` naming the bad entry.

    Names are non-empty strings of at most 128 characters; values are finite real numbers
    (``bool`` is not a number here). NaN and infinity are refused: JSON cannot carry them.
    """
    if not isinstance(metrics, Mapping):
        raise ValueError(
            f"metrics must be a mapping of names to numbers, got {type(metrics).__name__}"
        )
    if len(metrics) > MAX_METRICS:
        raise ValueError(f"{len(metrics)} metrics in one call; at most {MAX_METRICS} are allowed")
    out: dict[str, float] = {}
    for name, value in metrics.items():
        if name.__class__ is not str or name not in _METRIC_NAMES:
            if not isinstance(name, str) or not name or len(name) > 128 or not name.isprintable():
                raise ValueError(
                    f"metric name {name!r} is not allowed: use 1-128 printable characters"
                )
            if len(_METRIC_NAMES) < 10_000:
                _METRIC_NAMES.add(name)
        if value.__class__ is float and value - value == 0.0:  # finite: the common case, fast
            out[name] = value
        else:
            out[name] = check_number(value, f"metric {name!r}")
    return out


_METRIC_NAMES: set[str] = set()  # names already checked: the same few arrive every step
