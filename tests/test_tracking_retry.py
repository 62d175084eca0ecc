"""The writer's retries while a tracking server does not answer (the real outage, with a real
``aim server`` stopped mid-training, is in make stress)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from agentic_trading import ExperimentStatus
from agentic_trading.common.retry import ServerRetry
from agentic_trading.tracking import TrackingError, get_sync_experiment_repository
from agentic_trading.tracking.backends import create_run_store
from agentic_trading.tracking.errors import TrackingServerUnreachableError
from agentic_trading.tracking.executor import RunExecutor
from tests.conftest import make_settings


class Unanswered:
    """A real store behind a server that misses the next ``misses`` calls."""

    def __init__(self, store: Any) -> None:
        self.store = store
        self.misses = 0
        self.location = store.location

    def __getattr__(self, name: str) -> Any:
        method = getattr(self.store, name)

        def call(*args: Any) -> Any:
            if self.misses > 0:
                self.misses -= 1
                raise TrackingServerUnreachableError("the Aim server at aim://test does not answer")
            return method(*args)

        return call


class Clock:
    def __init__(self) -> None:
        self.now = 0.0
        self.slept: list[float] = []

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def executor(tmp_path: Path, timeout: float) -> tuple[RunExecutor, Unanswered, Clock]:
    settings = make_settings(ml_storage_path=str(tmp_path / "aim"))
    store = Unanswered(create_run_store(settings))
    clock = Clock()
    retry = ServerRetry(timeout, sleep=clock.sleep, clock=lambda: clock.now)
    return RunExecutor(store, 60.0, retry), store, clock  # type: ignore[arg-type]


def open_op(run_id: str) -> dict[str, Any]:
    return {"kind": "open", "run": run_id, "experiment": "retry", "config": {}, "tags": []}


def track_op(run_id: str, step: int) -> dict[str, Any]:
    return {"kind": "track", "run": run_id, "points": [[step, {"reward": step}, []]]}


def close_op(run_id: str) -> dict[str, Any]:
    return {
        "kind": "close",
        "run": run_id,
        "status": "completed",
        "final": {"x": 1.0},
        "error": None,
    }


def test_operations_are_retried_in_order_until_the_server_answers(tmp_path: Path) -> None:
    run_id = "a" * 24
    ex, store, clock = executor(tmp_path, timeout=300)
    store.misses = 3  # the server is away when the run is created
    ex.apply(open_op(run_id))
    for step in range(50):
        if step == 20:
            store.misses = 5  # and again mid-run
        ex.apply(track_op(run_id, step))
    store.misses = 2
    ex.apply(close_op(run_id))
    assert clock.slept == [0.1, 0.2, 0.4, 0.1, 0.2, 0.4, 0.8, 1.6, 0.1, 0.2]  # backoff per outage

    repo = get_sync_experiment_repository(make_settings(ml_storage_path=str(tmp_path / "aim")))
    assert repo.get_run(run_id).status is ExperimentStatus.COMPLETED
    assert repo.get_metric_series(run_id, "reward").steps == list(range(50))


def test_after_the_retry_timeout_a_point_fails_and_finish_reports_it(tmp_path: Path) -> None:
    run_id = "b" * 24
    ex, store, clock = executor(tmp_path, timeout=10)
    ex.apply(open_op(run_id))
    store.misses = 1_000  # away for longer than ML_RETRY_TIMEOUT
    with pytest.raises(TrackingServerUnreachableError):
        ex.apply(track_op(run_id, 0))
    assert 10 <= clock.now < 13  # gave up after the timeout, not before
    store.misses = 0
    ex.apply(track_op(run_id, 1))
    with pytest.raises(TrackingError, match="1 points could not be written"):
        ex.apply(close_op(run_id))


def test_a_run_the_server_never_created_is_reported_on_its_next_call(tmp_path: Path) -> None:
    run_id = "c" * 24
    ex, store, _ = executor(tmp_path, timeout=5)
    store.misses = 1_000
    with pytest.raises(TrackingServerUnreachableError):
        ex.apply(open_op(run_id))
    store.misses = 0
    with pytest.raises(TrackingError, match=f"run {run_id} could not be created"):
        ex.apply(close_op(run_id))


def test_mlflow_points_retried_after_an_outage_are_stored_once(tmp_path: Path) -> None:
    # Found by the chaos soak: the MLflow store flushed its full buffer inside track(), after
    # the call's points had joined it; when the server did not answer, the writer retried the
    # call and its points were buffered, and stored, twice.
    run_id = "d" * 24
    settings = make_settings(ml_tracking_backend="mlflow", ml_storage_path=str(tmp_path / "m"))
    store = create_run_store(settings)
    ex = RunExecutor(store, 60.0, ServerRetry(300))  # real waits: 0.1 s, then 0.2 s
    ex.apply(open_op(run_id))  # type: ignore[arg-type]
    real = store.client.log_batch  # type: ignore[attr-defined]
    away = [2]

    def log_batch(*args: Any, **kwargs: Any) -> Any:
        if away[0] > 0 and kwargs.get("metrics"):
            away[0] -= 1
            raise ConnectionError("the MLflow server does not answer")
        return real(*args, **kwargs)

    store.client.log_batch = log_batch  # type: ignore[attr-defined]
    for step in range(1500):  # past one batch of 1,000: the buffer is flushed mid-run
        ex.apply({"kind": "track", "run": run_id, "points": [[step, {"reward": step}, []]]})
    ex.apply({**close_op(run_id), "values": 1500})  # type: ignore[arg-type]
    assert away == [0]  # the outage happened, and was waited out
    repo = get_sync_experiment_repository(settings)
    assert repo.get_metric_series(run_id, "reward").steps == list(range(1500))
    assert repo.get_run(run_id).values_logged == 1500
