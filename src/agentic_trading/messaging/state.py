"""How an experiment's live state changes: pure functions, shared by every channel."""

from __future__ import annotations

import math
import os
import socket
from collections import deque

from agentic_trading.common.values import check_number
from agentic_trading.messaging.messages import ExperimentState
from agentic_trading.status import ExperimentStatus, check_transition

__all__ = [
    "RateEstimator",
    "apply_progress",
    "apply_status",
    "check_progress",
    "check_step",
    "new_state",
]

_HOST = socket.gethostname()


def new_state(
    namespace: str, experiment_id: str, config: dict[str, object], now: float
) -> ExperimentState:
    """A fresh ``pending`` experiment owned by this process."""
    return ExperimentState(
        experiment_id=experiment_id,
        namespace=namespace,
        config=config,
        created_at=now,
        updated_at=now,
        heartbeat_at=now,
        host=_HOST,
        pid=os.getpid(),
    )


def apply_status(
    state: ExperimentState, status: ExperimentStatus, message: str | None, now: float
) -> ExperimentState:
    """``state`` moved to ``status``; raises ``InvalidTransitionError`` for an illegal move."""
    check_transition(state.status, status, repr(state.experiment_id))
    update: dict[str, object] = {
        "status": status,
        "updated_at": now,
        "heartbeat_at": now,
        "message": message if message is not None else state.message,
    }
    if status == ExperimentStatus.RUNNING and state.started_at is None:
        update["started_at"] = now
    if status.is_finished:
        update["finished_at"] = state.finished_at or now
        update["eta_seconds"] = None
        if status == ExperimentStatus.COMPLETED and state.total_steps:
            update["progress"] = 100.0
            update["current_step"] = max(state.current_step, state.total_steps)
    return state.model_copy(update=update)


def check_progress(
    current_step: object, total_steps: object, progress: object | None
) -> tuple[int, int, float]:
    """Validated ``(current_step, total_steps, progress_percent)``, or ``ValueError``."""
    step = _whole(current_step, "current_step")
    total = _whole(total_steps, "total_steps")
    if total <= 0:
        raise ValueError(f"total_steps must be positive, got {total}")
    if step < 0:
        raise ValueError(f"current_step must not be negative, got {step}")
    if step > total:
        raise ValueError(f"current_step {step} is beyond total_steps {total}")
    if progress is None:
        return step, total, 100.0 * step / total
    percent = check_number(progress, "progress")
    if not 0.0 <= percent <= 100.0:
        raise ValueError(f"progress is a percentage from 0 to 100, got {percent!r}")
    return step, total, percent


def check_step(value: object) -> int:
    """A validated training step (a whole number >= 0), or ``ValueError``."""
    step = _whole(value, "step")
    if step < 0:
        raise ValueError(f"step must not be negative, got {step}")
    return step


def _whole(value: object, what: str) -> int:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, float) and math.isfinite(value) and value.is_integer():
        return int(value)
    index = getattr(value, "__index__", None)  # numpy integers
    if index is not None and not isinstance(value, bool):
        return int(index())
    raise ValueError(f"{what} must be a whole number, got {type(value).__name__} {value!r}")


class RateEstimator:
    """Steps per second over the recent progress updates (a sliding window of ``window`` s)."""

    def __init__(self, window: float = 30.0, points: int = 32) -> None:
        self._window = window
        self._points: deque[tuple[float, int]] = deque(maxlen=points)

    def add(self, at: float, step: int) -> float | None:
        if self._points and step < self._points[-1][1]:
            self._points.clear()  # the step counter went back: a restart
        self._points.append((at, step))
        while len(self._points) > 2 and at - self._points[0][0] > self._window:
            self._points.popleft()
        (t0, s0), (t1, s1) = self._points[0], self._points[-1]
        if t1 - t0 <= 0 or s1 == s0:
            return None
        return (s1 - s0) / (t1 - t0)


def apply_progress(
    state: ExperimentState,
    step: int,
    total: int,
    percent: float,
    now: float,
    rate: float | None,
) -> ExperimentState:
    """``state`` with new progress; a ``pending`` experiment becomes ``running``."""
    if state.status.is_finished:
        check_transition(state.status, ExperimentStatus.RUNNING, repr(state.experiment_id))
    update: dict[str, object] = {
        "current_step": step,
        "total_steps": total,
        "progress": percent,
        "updated_at": now,
        "heartbeat_at": now,
        "steps_per_second": rate,
        "eta_seconds": (total - step) / rate if rate else None,
    }
    if state.status == ExperimentStatus.PENDING:
        update["status"] = ExperimentStatus.RUNNING
        update["started_at"] = state.started_at or now
    return state.model_copy(update=update)
