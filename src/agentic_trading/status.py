"""Experiment status, shared by messaging and tracking, with its legal transitions."""

from __future__ import annotations

from enum import Enum

__all__ = ["ExperimentStatus", "InvalidTransitionError", "check_transition"]


class ExperimentStatus(str, Enum):
    """The life cycle of an experiment: ``pending`` -> ``running`` -> one finished status.

    Finished: ``completed``, ``failed``, ``cancelled`` (a stop request, Ctrl-C), ``crashed``
    (the process died), ``pruned`` (a study stopped the trial early: it looked hopeless).
    """

    PENDING = "pending"
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"
    CRASHED = "crashed"
    PRUNED = "pruned"

    def __str__(self) -> str:
        return self.value

    @property
    def is_finished(self) -> bool:
        """True for the statuses an experiment never leaves."""
        return self in _FINISHED

    @classmethod
    def parse(cls, value: object) -> ExperimentStatus:
        """Accept an ``ExperimentStatus`` or its name (any case); raise ``ValueError`` otherwise."""
        if isinstance(value, ExperimentStatus):
            return value
        if isinstance(value, str):
            try:
                return cls(value.strip().lower())
            except ValueError:
                pass
        allowed = ", ".join(s.value for s in cls)
        raise ValueError(f"status {value!r} is not allowed: expected one of {allowed}")


_FINISHED = frozenset(
    {
        ExperimentStatus.COMPLETED,
        ExperimentStatus.FAILED,
        ExperimentStatus.CANCELLED,
        ExperimentStatus.CRASHED,
        ExperimentStatus.PRUNED,
    }
)


class InvalidTransitionError(ValueError):
    """A status change that the life cycle does not allow."""


def check_transition(current: ExperimentStatus, new: ExperimentStatus, what: str = "") -> None:
    """Raise :class:`InvalidTransitionError` unless ``current -> new`` is legal.

    Legal: anything from ``pending``; ``running`` to ``running`` or a finished status; and a
    finished status repeated (so a retried announcement is harmless). Nothing returns to
    ``pending``, and a finished experiment never changes again.
    """
    if current == new or current == ExperimentStatus.PENDING:
        return
    if current == ExperimentStatus.RUNNING and new != ExperimentStatus.PENDING:
        return
    name = f"{what} " if what else ""
    raise InvalidTransitionError(
        f"experiment {name}is {current.value} and cannot become {new.value}"
        + (": it has finished" if current.is_finished else "")
    )
