"""ExperimentStatus: one life cycle for messaging and tracking."""

from __future__ import annotations

import pytest

from agentic_trading.status import ExperimentStatus as S
from agentic_trading.status import InvalidTransitionError, check_transition

FINISHED = [S.COMPLETED, S.FAILED, S.CANCELLED, S.CRASHED, S.PRUNED]


def test_the_finished_statuses() -> None:
    assert [s for s in S if s.is_finished] == FINISHED


@pytest.mark.parametrize("new", list(S))
def test_anything_may_follow_pending(new: S) -> None:
    check_transition(S.PENDING, new)


@pytest.mark.parametrize("new", [S.RUNNING, *FINISHED])
def test_running_may_finish_or_stay_running(new: S) -> None:
    check_transition(S.RUNNING, new)


def test_nothing_returns_to_pending() -> None:
    with pytest.raises(InvalidTransitionError, match="running and cannot become pending"):
        check_transition(S.RUNNING, S.PENDING)


@pytest.mark.parametrize("finished", FINISHED)
@pytest.mark.parametrize("new", list(S))
def test_a_finished_experiment_never_changes(finished: S, new: S) -> None:
    if new == finished:
        check_transition(finished, new)  # a repeated announcement is harmless
        return
    with pytest.raises(InvalidTransitionError, match="it has finished"):
        check_transition(finished, new)


def test_parse_accepts_names_and_names_what_is_allowed() -> None:
    assert S.parse("Completed") is S.COMPLETED
    assert S.parse(S.FAILED) is S.FAILED
    with pytest.raises(ValueError, match="expected one of pending, running"):
        S.parse("done")
    assert str(S.RUNNING) == "running" and S.RUNNING == "running"
