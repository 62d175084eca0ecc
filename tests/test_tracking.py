"""The tracker and the experiment repository: one behavioural suite over every tracking backend.

Each test runs against a real Aim repository in a temporary folder, a local MLflow store (SQLite)
and a real ``mlflow server`` backed by a PostgreSQL database of its own. A few tests read what
was written with the backend's own tools (Aim's SDK and CLI, MLflow's client).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import math
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any
from unittest.mock import ANY

import numpy as np
import pytest
from pydantic import SecretStr

from agentic_trading import ExperimentStatus
from agentic_trading.config import Settings
from agentic_trading.tracking import (
    RunFinishedError,
    RunNotFoundError,
    SyncExperimentRepository,
    Tracker,
    TrackingError,
    TrackingUnavailableError,
    TrainingMetrics,
    get_experiment_repository,
    get_ml_tracker,
    get_sync_experiment_repository,
    get_sync_tracker,
)
from agentic_trading.tracking.executor import EXIT_ERROR
from tests.conftest import make_settings

ROOT = Path(__file__).resolve().parents[1]
BACKENDS = ["aim", "mlflow", "mlflow-server"]


@pytest.fixture(scope="module", params=BACKENDS)
def store(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, Any]]:
    """The settings of one store for the module (a new one costs seconds to set up): an Aim
    repository, a local MLflow store, or an ``mlflow server`` over PostgreSQL."""
    folder = tmp_path_factory.mktemp(request.param)
    if request.param == "aim":
        yield {"ml_storage_path": str(folder)}
    elif request.param == "mlflow":
        yield {"ml_tracking_backend": "mlflow", "ml_storage_path": str(folder)}
    else:
        yield {
            "ml_tracking_backend": "mlflow",
            "mlflow_tracking_uri": request.getfixturevalue("mlflow_server_url"),
            "ml_storage_path": str(folder),
        }


@pytest.fixture
def settings(store: dict[str, Any]) -> Settings:
    return make_settings(**store, ml_heartbeat_interval=0.2, ml_heartbeat_timeout=3)


def is_mlflow(settings: Settings) -> bool:
    return settings.ml_tracking_backend == "mlflow"


def read_artifact(uri: str, settings: Settings) -> bytes:
    """The bytes of an artifact, through the backend's own client where it is not a file."""
    if uri.startswith("file://"):
        return Path(uri.removeprefix("file://")).read_bytes()
    import mlflow

    local = mlflow.artifacts.download_artifacts(
        artifact_uri=uri, tracking_uri=settings.mlflow_store_uri()
    )
    return Path(local).read_bytes()


@pytest.fixture(params=["process", "thread"])
def any_writer(request: pytest.FixtureRequest, settings: Settings) -> Settings:
    """The settings with each writer mode (ML_WRITER) in turn."""
    return settings.model_copy(update={"ml_writer": request.param})


@pytest.fixture
async def tracker(settings: Settings) -> AsyncIterator[Tracker]:
    """A tracker with a writer thread: what these tests check does not depend on the writer
    (``any_writer`` tests run both), and a writer process costs seconds to start per test."""
    tracker = await get_ml_tracker(settings.model_copy(update={"ml_writer": "thread"}))
    yield tracker
    await tracker.close()


@pytest.fixture
def repo(settings: Settings) -> SyncExperimentRepository:
    return get_sync_experiment_repository(settings)


@pytest.fixture
def experiment() -> str:
    return f"exp-{uuid.uuid4().hex[:10]}"


def worker(mode: str, experiment: str, points: int, settings: Settings) -> subprocess.Popen[str]:
    env = {
        **os.environ,
        "ML_STORAGE_PATH": settings.ml_storage_path,
        "ML_TRACKING_BACKEND": settings.ml_tracking_backend,
        "MLFLOW_TRACKING_URI": settings.mlflow_tracking_uri or "",
        "ML_WRITER": settings.ml_writer,
        "ML_HEARTBEAT_INTERVAL": str(settings.ml_heartbeat_interval),
        "ML_HEARTBEAT_TIMEOUT": str(settings.ml_heartbeat_timeout),
        "PYTHONPATH": str(ROOT),
    }
    return subprocess.Popen(
        [sys.executable, "-m", "tests.tracking_worker", mode, experiment, str(points)],
        env=env,
        stdout=subprocess.PIPE,
        text=True,
        cwd=ROOT,
        start_new_session=True,
    )


# --- the seed's API ----------------------------------------------------------------------------


async def test_seed_data_flow_is_stored_and_read_back(any_writer: Settings) -> None:
    settings = any_writer
    tracker = await get_ml_tracker(settings)
    run = await tracker.create_run(
        experiment_name="PPO_EUR_USD_Training",
        config={"agent_type": "PPO", "learning_rate": 0.0003},
    )
    assert len(run.run_id) == 24 and run.id == run.run_id
    for step in range(0, 5000, 1000):
        await tracker.log_metrics(
            run, TrainingMetrics(step=step, loss=0.045, reward=1250.5 + step, episode_length=100)
        )
    await tracker.finish_run(
        run,
        status=ExperimentStatus.COMPLETED,
        final_metrics={"total_reward": 5250.75, "win_rate": 0.684},
    )
    await tracker.close()

    repo = await get_experiment_repository(settings)
    detail = await repo.get_run(run.run_id)
    assert detail.experiment == "PPO_EUR_USD_Training"
    assert detail.status is ExperimentStatus.COMPLETED
    assert detail.config == {"agent_type": "PPO", "learning_rate": 0.0003}
    assert detail.final_metrics == {"total_reward": 5250.75, "win_rate": 0.684}
    assert detail.metrics == ["episode_length", "loss", "reward"]
    assert detail.ended_at is not None and detail.duration is not None and detail.duration >= 0
    series = await repo.get_metric_series(run.run_id, "reward")
    assert series.steps == [0, 1000, 2000, 3000, 4000]
    assert series.values == [1250.5, 2250.5, 3250.5, 4250.5, 5250.5]


async def test_pattern_one_status_positional_and_default_experiment(
    tracker: Tracker, settings: Settings
) -> None:
    run = await tracker.create_run(config={"agent_type": "PPO"})
    assert run.experiment == settings.ml_experiment_name == "AgenticTrading"
    await tracker.log_metrics(run, TrainingMetrics(step=0, loss=0.5, reward=1.0))
    await tracker.finish_run(run, ExperimentStatus.COMPLETED)
    detail = get_sync_experiment_repository(settings).get_run(run.run_id)
    assert detail.status is ExperimentStatus.COMPLETED and detail.final_metrics == {}


async def test_all_training_signals_and_extras_become_metrics(
    tracker: Tracker, repo: SyncExperimentRepository, experiment: str
) -> None:
    run = await tracker.create_run(experiment, {})
    point = TrainingMetrics(
        step=7,
        loss=np.float32(0.25),
        reward=1.0,
        episode_length=200,
        value_loss=0.1,
        policy_loss=-0.02,
        entropy=0.69,
        learning_rate=3e-4,
        explained_variance=0.8,
        portfolio_value=10_250.0,
        sortino=np.float64(1.7),
    )
    await tracker.log_metrics(run, point)
    await tracker.log_metrics(run, {"custom": 3}, step=8)
    await tracker.finish_run(run)
    detail = repo.get_run(run.run_id)
    assert set(detail.metrics) == set(point.values()) | {"custom"}
    assert repo.get_metric_series(run.run_id, "sortino").values == [1.7]
    assert repo.get_metric_series(run.run_id, "custom").steps == [8]


async def test_failed_run_keeps_its_error_and_params_and_tags(
    tracker: Tracker, repo: SyncExperimentRepository, experiment: str, settings: Settings
) -> None:
    run = await tracker.create_run(experiment, {"seed": 1}, tags=["baseline"])
    await tracker.log_params(run, {"dataset": "EURUSD_1H", "window": {"train": 0.8}})
    await tracker.add_tags(run, "eurusd", "ppo")
    await tracker.finish_run(run, "failed", error="RuntimeError: the loss diverged")
    detail = repo.get_run(run.run_id)
    assert detail.status is ExperimentStatus.FAILED
    assert detail.error == "RuntimeError: the loss diverged"
    assert set(detail.tags) == {"baseline", "eurusd", "ppo"}
    assert detail.params == {"dataset": "EURUSD_1H", "window": {"train": 0.8}}
    # The backend's own query language: AimQL, or an MLflow search filter.
    query = (
        """tags.`agentic.param.dataset` = '"EURUSD_1H"'"""
        if is_mlflow(settings)
        else "run.dataset == 'EURUSD_1H'"
    )
    runs = repo.list_runs(query=query)
    assert [r.run_id for r in runs] == [run.run_id]


async def test_finished_run_takes_no_more_writes(tracker: Tracker, experiment: str) -> None:
    run = await tracker.create_run(experiment, {})
    await tracker.finish_run(run)
    with pytest.raises(RunFinishedError, match=run.run_id):
        await tracker.finish_run(run)
    with pytest.raises(RunFinishedError, match="finished"):
        await tracker.log_metrics(run, TrainingMetrics(step=1, loss=1.0))


async def test_artifact_is_copied_with_the_run(
    tracker: Tracker,
    repo: SyncExperimentRepository,
    experiment: str,
    tmp_path: Path,
    settings: Settings,
) -> None:
    model = tmp_path / "model.zip"
    model.write_bytes(b"PK\x03\x04 trained weights")
    run = await tracker.create_run(experiment, {})
    where = await tracker.log_artifact(run, model, "model.zip")
    await tracker.finish_run(run)
    model.unlink()  # the copy must not depend on the original
    detail = repo.get_run(run.run_id)
    assert detail.artifacts == {"model.zip": where, "requirements.txt": ANY}  # + environment's
    assert read_artifact(where, settings) == b"PK\x03\x04 trained weights"
    if settings.ml_tracking_backend == "aim":
        assert Path(where.removeprefix("file://")).is_relative_to(Path(repo.location) / "artifacts")
    elif not settings.is_remote_tracking():  # beside the local MLflow store
        assert where.startswith((Path(settings.ml_storage_path) / "mlartifacts").as_uri())
    else:  # kept by the MLflow server's artifact store, not on this host's disk
        assert where.startswith("mlflow-artifacts:/")


# --- bad input: one clear error, nothing lost --------------------------------------------------


async def test_non_finite_values_are_skipped_counted_and_warned(
    tracker: Tracker,
    repo: SyncExperimentRepository,
    experiment: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    run = await tracker.create_run(experiment, {})
    with caplog.at_level(logging.WARNING, logger="agentic_trading.tracking"):
        for step in range(4):
            loss = math.nan if step in (1, 2) else 0.5
            await tracker.log_metrics(run, TrainingMetrics(step=step, loss=loss, reward=step))
        await tracker.log_metrics(run, TrainingMetrics(step=4, loss=math.inf, reward=4))
        await tracker.finish_run(run, final_metrics={"sharpe_ratio": math.nan, "ok": 1.0})
    assert sum("'loss' is not finite" in r.getMessage() for r in caplog.records) == 1
    assert any("sharpe_ratio" in r.getMessage() for r in caplog.records)
    detail = repo.get_run(run.run_id)
    assert detail.skipped_non_finite == {"loss": 3}
    assert detail.final_metrics == {"ok": 1.0}
    assert repo.get_metric_series(run.run_id, "loss").steps == [0, 3]
    assert repo.get_metric_series(run.run_id, "reward").steps == [0, 1, 2, 3, 4]


async def test_a_batch_of_points_is_the_same_record_as_one_call_each(
    tracker: Tracker, repo: SyncExperimentRepository, experiment: str
) -> None:
    one = await tracker.create_run(experiment, {})
    batch = await tracker.create_run(experiment, {})
    points = [
        (step, {"reward": step / 4, "loss": math.nan if step == 2 else 1.0}) for step in range(5)
    ]
    for step, values in points:
        await tracker.log_metrics(one, values, step=step)
    await tracker.log_metrics_batch(batch, points)
    await tracker.log_metrics_batch(batch, [])  # nothing to write is fine
    for run in (one, batch):
        await tracker.finish_run(run)
    for name in ("reward", "loss"):
        expected = repo.get_metric_series(one.run_id, name)
        got = repo.get_metric_series(batch.run_id, name)
        assert (got.steps, got.values) == (expected.steps, expected.values)
    assert repo.get_metric_series(batch.run_id, "loss").steps == [0, 1, 3, 4]
    assert repo.get_run(batch.run_id).skipped_non_finite == {"loss": 1}


async def test_a_finished_run_says_how_many_values_it_logged_and_holds_them_all(
    tracker: Tracker, repo: SyncExperimentRepository, experiment: str
) -> None:
    run = await tracker.create_run(experiment, {})
    for step in range(40):
        values = {"reward": float(step), "loss": math.inf if step % 10 == 0 else 1.0}
        await tracker.log_metrics(run, values, step=step)
    await tracker.log_metrics_batch(run, [(step, {"extra": 0.5}) for step in range(40, 47)])
    await tracker.finish_run(run, final_metrics={"total": 1.0})
    detail = repo.get_run(run.run_id)
    assert detail.values_logged == 40 + 36 + 7  # the four infinite losses are not stored
    stored = sum(len(repo.get_metric_series(run.run_id, name).values) for name in detail.metrics)
    assert stored == detail.values_logged


@pytest.mark.parametrize(
    ("points", "error", "message"),
    [
        ([(1, {"loss": "x"})], ValueError, "metric 'loss' must be a number, got str"),
        ([(-1, {"loss": 1.0})], ValueError, "step must be a non-negative integer, got -1"),
        ([(1, {"loss": 1.0}), 7], ValueError, r"a \(step, metrics\) pair, got 7"),
        ({1: {"loss": 1.0}}, TypeError, "not a mapping"),
    ],
)
async def test_a_bad_point_refuses_the_whole_batch(
    tracker: Tracker,
    repo: SyncExperimentRepository,
    experiment: str,
    points: Any,
    error: type[Exception],
    message: str,
) -> None:
    run = await tracker.create_run(experiment, {})
    with pytest.raises(error, match=message):
        await tracker.log_metrics_batch(run, points)
    await tracker.finish_run(run)
    assert "loss" not in repo.get_run(run.run_id).metrics  # nothing of it was queued


def test_aim_stores_points_written_in_batches_exactly_as_its_own_track_does(
    tmp_path: Path,
) -> None:
    # The Aim store writes a batch of points straight into Aim's storage (one RocksDB write
    # batch instead of some ten writes a value): Aim's UI and SDK must find exactly what Aim's
    # own Run.track would have stored, key by key (only the write times differ).
    from aim.storage.rockscontainer import RocksContainer

    from agentic_trading.tracking.backends.aim import AimRunStore

    store = AimRunStore(make_settings(ml_storage_path=str(tmp_path)))
    ours, aims = "a" * 24, "b" * 24
    for run_id in (ours, aims):
        store.open_run(run_id, "series", {}, [])
    batches = [
        [(step, {"reward": math.sin(step), "loss": 1 / (step + 1)}) for step in range(300)],
        # A new minimum, then a new maximum, inside batches; steps written again; a new name.
        [(step, {"reward": (step - 300.0) * (step - 309)}) for step in range(300, 310)],
        [(step, {"reward": 9.0 * (step == 312), "equity": 1e6}) for step in range(305, 320)],
        [(0, {"reward": 0.5})],  # an early step written late
    ]
    for batch in batches:
        store.track(ours, batch)
        for step, values in batch:
            store._runs[aims].track(dict(values), step=step)
    for run_id in (ours, aims):
        store.close_run(run_id, ExperimentStatus.COMPLETED, {}, None)
    store.close()

    def stored(kind: str, run_id: str, keep: bytes) -> dict[bytes, bytes]:
        container = RocksContainer(
            str(tmp_path / ".aim" / kind / "chunks" / run_id), read_only=True
        )
        return {
            key.replace(run_id.encode(), b"<run>"): value
            for key, value in container.items()
            if keep in key and b"\xfetime\xfe" not in key
        }

    series = stored("seqs", ours, b"")
    assert len(series) > 3 * 330  # values, steps and epochs of every point
    assert series == stored("seqs", aims, b"")
    summary = stored("meta", ours, b"traces")  # first, last, min, max, dtype of each metric
    assert summary and summary == stored("meta", aims, b"traces")
    times = [
        key
        for key, _ in RocksContainer(
            str(tmp_path / ".aim" / "seqs" / "chunks" / ours), read_only=True
        ).items()
        if b"\xfetime\xfe" in key
    ]
    assert len(times) == len([key for key in series if b"\xfeval\xfe" in key])


@pytest.mark.parametrize("in_process_fails", [False, True])
def test_a_new_aim_repository_has_the_database_aims_own_set_up_makes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, in_process_fails: bool
) -> None:
    # Aim's migrations run in this process (2 s of CPU less than Aim's alembic subprocess):
    # the database must be the one Aim makes, this process's loggers must keep working, and
    # when the migrations fail here Aim's own way must still set the repository up.
    import sqlite3

    import aim

    from agentic_trading.tracking.backends.aim._storage import ensure_repository

    def database(folder: Path) -> tuple[set[tuple[str, ...]], list[tuple[str, ...]]]:
        connection = sqlite3.connect(folder / ".aim" / "run_metadata.sqlite")
        try:
            schema = set(connection.execute("SELECT type, name, tbl_name, sql FROM sqlite_master"))
            return schema, list(connection.execute("SELECT * FROM alembic_version"))
        finally:
            connection.close()

    aims = tmp_path / "aims"
    aim.Repo.from_path(str(aims), init=True)  # Aim's own set-up: alembic in a subprocess
    if in_process_fails:
        from alembic import command

        def fail(*args: Any, **kwargs: Any) -> None:
            raise RuntimeError("no migrations here")

        monkeypatch.setattr(command, "upgrade", fail)
    from aim.storage.migrations import utils

    spawned: list[list[str]] = []
    popen = subprocess.Popen

    def spawn(command: list[str], **kwargs: Any) -> Any:
        spawned.append(command)
        return popen(command, **kwargs)

    monkeypatch.setattr(utils.subprocess, "Popen", spawn)
    ours = tmp_path / "ours"
    ours.mkdir()
    ensure_repository(str(ours))
    assert len(spawned) == (1 if in_process_fails else 0)  # Aim's subprocess only as a fallback
    assert database(ours) == database(aims)
    assert database(ours)[1]  # at Aim's newest revision, not an empty database
    assert not logging.getLogger("agentic_trading.tracking").disabled
    assert (ours / ".aim" / "VERSION").read_text() == (aims / ".aim" / "VERSION").read_text()
    settings = make_settings(ml_storage_path=str(ours), ml_writer="thread")
    tracker = get_sync_tracker(settings)
    run = tracker.create_run("migrations", {"lr": 0.1})
    tracker.log_metrics(run, {"reward": 1.0}, step=1)
    tracker.finish_run(run, final_metrics={"sharpe_ratio": 1.0})
    tracker.close()
    assert get_sync_experiment_repository(settings).get_run(run.run_id).status == "completed"


def test_a_repository_set_up_killed_midway_is_set_up_again(tmp_path: Path) -> None:
    # SQLite runs the migrations without a transaction: a writer killed during them (at its
    # start-up) leaves a half-migrated database and no VERSION. The next set-up starts afresh.
    import sqlite3

    from agentic_trading.tracking.backends.aim._storage import ensure_repository

    folder = tmp_path / "aim"
    folder.mkdir()
    ensure_repository(str(folder))
    database = folder / ".aim" / "run_metadata.sqlite"
    schema = "SELECT type, name, tbl_name, sql FROM sqlite_master"
    complete = set(sqlite3.connect(database).execute(schema))
    (folder / ".aim" / "VERSION").unlink()
    connection = sqlite3.connect(database)
    with connection:  # the last step's first change done, its revision not yet recorded
        connection.execute("UPDATE alembic_version SET version_num = 'b07e7b07c8ce'")
    connection.close()
    ensure_repository(str(folder))
    assert (folder / ".aim" / "VERSION").is_file()
    assert set(sqlite3.connect(database).execute(schema)) == complete


@pytest.mark.parametrize(
    ("metrics", "message"),
    [
        ({"loss": "0.5"}, "metric 'loss' must be a number, got str"),
        ({"loss": None}, "metric 'loss' must be a number, got NoneType"),
        ({"done": True}, "metric 'done' must be a number, got bool"),
        ({"curve": [1.0, 2.0]}, "metric 'curve' must be a number, got list"),
        ({"": 1.0}, "metric name '' is not allowed"),
    ],
)
async def test_unknown_metric_types_raise_naming_the_metric(
    tracker: Tracker, experiment: str, metrics: dict[str, object], message: str
) -> None:
    run = await tracker.create_run(experiment, {})
    with pytest.raises(ValueError, match=message):
        await tracker.log_metrics(run, metrics, step=1)
    await tracker.finish_run(run)


async def test_bad_arguments_are_refused_at_the_call(
    tracker: Tracker, experiment: str, tmp_path: Path
) -> None:
    with pytest.raises(ValueError, match="experiment name 'a b' is not allowed"):
        await tracker.create_run("a b", {})
    with pytest.raises(ValueError, match="config is not JSON-serializable"):
        await tracker.create_run(experiment, {"env": object()})
    with pytest.raises(ValueError, match="step"):
        TrainingMetrics(step=-1, loss=1.0)
    run = await tracker.create_run(experiment, {})
    with pytest.raises(ValueError, match="'running' does not finish a run"):
        await tracker.finish_run(run, "running")
    with pytest.raises(ValueError, match="'exploded' is not"):
        await tracker.finish_run(run, "exploded")
    with pytest.raises(FileNotFoundError, match=r"missing\.zip"):
        await tracker.log_artifact(run, tmp_path / "missing.zip")
    (tmp_path / "f").write_text("x")
    with pytest.raises(ValueError, match=r"artifact name '\.\./x' is not allowed"):
        await tracker.log_artifact(run, tmp_path / "f", "../x")
    with pytest.raises(ValueError, match="reserved"):
        await tracker.log_params(run, {"status": "completed"})
    await tracker.finish_run(run)


@pytest.mark.parametrize("backend", ["aim", "mlflow"])
async def test_unwritable_storage_fails_at_create_run(tmp_path: Path, backend: str) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    settings = make_settings(ml_storage_path=str(blocker / "aim"), ml_tracking_backend=backend)
    tracker = await get_ml_tracker(settings)
    with pytest.raises(TrackingUnavailableError, match=r"/file/aim.* cannot be created"):
        await tracker.create_run("x", {})
    await tracker.close()


def test_repository_refuses_bad_queries_and_ids(
    repo: SyncExperimentRepository, settings: Settings
) -> None:
    if is_mlflow(settings):
        with pytest.raises(ValueError, match="MLflow refused the search"):
            repo.list_runs(query="params.lr <<< 1; DROP TABLE runs")
    else:
        with pytest.raises(ValueError, match="'__' has no place in a run query"):
            repo.list_runs(query="run.__class__.__bases__")
        with pytest.raises(ValueError, match="'import' has no place"):
            repo.list_runs(query="import os")
    with pytest.raises(ValueError, match="order_by 'sharpe' is not allowed"):
        repo.list_runs(order_by="sharpe")
    with pytest.raises(ValueError, match="'bogus' is not"):
        repo.list_runs(status="bogus")
    with pytest.raises(ValueError, match=r"run id '\.\./etc' is not allowed"):
        repo.get_run("../etc")
    with pytest.raises(RunNotFoundError, match="no run 'abc123'"):
        repo.get_run("abc123")


# --- throughput and back-pressure ----------------------------------------------------------------


def test_full_queue_applies_back_pressure_and_loses_nothing(
    any_writer: Settings, experiment: str
) -> None:
    settings = any_writer
    tracker = get_sync_tracker(settings.model_copy(update={"ml_queue_size": 8}))
    run = tracker.create_run(experiment, {})
    most_pending = 0
    for step in range(400):
        tracker.log_metrics(run, TrainingMetrics(step=step, reward=float(step)))
        most_pending = max(most_pending, tracker.pending)
    tracker.finish_run(run)
    tracker.close()
    assert most_pending <= 2 * 8  # queued + (writer process) in flight
    series = get_sync_experiment_repository(settings).get_metric_series(run.run_id, "reward")
    assert series.steps == list(range(400))


async def test_async_log_metrics_waits_off_the_loop_when_full(
    settings: Settings, experiment: str
) -> None:
    tracker = await get_ml_tracker(settings.model_copy(update={"ml_queue_size": 4}))
    run = await tracker.create_run(experiment, {})
    for step in range(200):
        await tracker.log_metrics(run, {"reward": step}, step=step)
    await tracker.finish_run(run)
    await tracker.close()
    series = get_sync_experiment_repository(settings).get_metric_series(run.run_id, "reward")
    assert series.values == [float(s) for s in range(200)]


def test_log_metrics_returns_before_the_point_is_written(
    settings: Settings, experiment: str
) -> None:
    tracker = get_sync_tracker(settings)
    run = tracker.create_run(experiment, {})
    started = time.perf_counter()
    for step in range(2000):
        tracker.log_metrics(run, {"a": 1.0, "b": 2.0, "c": 3.0, "d": 4.0}, step=step)
    elapsed = time.perf_counter() - started
    assert tracker.pending > 0, f"2000 points were written inline in {elapsed:.3f} s"
    tracker.finish_run(run)
    assert tracker.pending == 0
    tracker.close()


# --- across processes ----------------------------------------------------------------------------


@pytest.mark.parametrize("kill", ["trainer", "trainer and writer"])
def test_run_is_visible_while_written_and_crashed_after_kill(
    settings: Settings, experiment: str, kill: str
) -> None:
    proc = worker("hang", experiment, 300, settings)
    try:
        assert proc.stdout is not None
        run_id = proc.stdout.readline().strip()
        assert proc.stdout.readline().strip() == "flushed"
        repo = get_sync_experiment_repository(settings)
        live = repo.get_run(run_id)
        assert live.status is ExperimentStatus.RUNNING and live.pid == proc.pid
        assert live.config == {"mode": "hang", "points": 300}
        assert [r.run_id for r in repo.list_runs(experiment=experiment)] == [run_id]
        if kill == "trainer":  # its writer process sees the pipe close and records the crash
            proc.send_signal(signal.SIGKILL)
        else:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(10)
        dead = repo.get_run(run_id)
        assert dead.status is ExperimentStatus.CRASHED
        assert dead.error == EXIT_ERROR or "is gone" in (dead.error or "")
        assert repo.list_runs(experiment=experiment, status="crashed")[0].run_id == run_id
        assert repo.get_metric_series(run_id, "reward").steps == list(range(300))
    finally:
        proc.kill()
        proc.wait()


def test_a_training_killed_while_its_writer_starts_up_loses_nothing(
    tmp_path: Path, experiment: str
) -> None:
    # The writer process reads nothing before its imports and set-up are done: what the
    # training logged meanwhile waits in the pipe, and the writer records it all after the
    # training is gone.
    settings = make_settings(ml_storage_path=str(tmp_path / "aim"))
    proc = worker("sent", experiment, 200, settings)
    try:
        assert proc.stdout is not None
        run_id = proc.stdout.readline().strip()
        assert proc.stdout.readline().split() == ["sent", "0"]  # the writer had taken nothing
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        repo = get_sync_experiment_repository(settings)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            run = repo.get_run(run_id) if run_id in {r.run_id for r in repo.list_runs()} else None
            # Closed by the writer: it reads crashed as soon as its process is gone, while the
            # writer may still be writing what it was sent.
            if run is not None and run.status is ExperimentStatus.CRASHED and run.ended_at:
                break
            time.sleep(0.2)
        assert run is not None and run.status is ExperimentStatus.CRASHED
        assert repo.get_metric_series(run_id, "reward").steps == list(range(200))
    finally:
        proc.kill()
        proc.wait()


def test_a_dead_writer_process_never_breaks_the_training(
    settings: Settings, experiment: str, caplog: pytest.LogCaptureFixture
) -> None:
    tracker = get_sync_tracker(settings)
    run = tracker.create_run(experiment, {})
    tracker.log_metrics(run, {"reward": 1.0}, step=0)
    tracker.flush()
    child = tracker._writer._link.process
    assert child is not None
    child.kill()
    child.wait()
    deadline = time.monotonic() + 10
    with caplog.at_level(logging.ERROR, logger="agentic_trading.tracking"):
        while "exited unexpectedly" not in caplog.text and time.monotonic() < deadline:
            tracker.log_metrics(run, {"reward": 2.0}, step=1)  # never raises
            time.sleep(0.05)
    assert "exited unexpectedly (code -9)" in caplog.text  # killed: SIGKILL, as Popen says
    with pytest.raises(TrackingError, match="writer process exited unexpectedly"):
        tracker.finish_run(run)
    # The process's next tracker (a study worker's next trial) gets a new writer and tracks.
    fresh = get_sync_tracker(settings)
    assert fresh._writer is not tracker._writer
    again = fresh.create_run(experiment, {})
    fresh.log_metrics(again, {"reward": 3.0}, step=0)
    fresh.finish_run(again)
    assert get_sync_experiment_repository(settings).get_run(again.run_id).status == "completed"
    tracker.close()
    # What reached storage before the writer died is intact and reads crashed.
    repo = get_sync_experiment_repository(settings)
    assert repo.get_metric_series(run.run_id, "reward").steps == [0]


def _inotify_instances(pid: int) -> int:
    count = 0
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            count += os.readlink(f"/proc/{pid}/fd/{fd}") == "anon_inode:inotify"
        except OSError:
            continue
    return count


def test_writers_and_readers_hold_no_inotify_instance(tmp_path: Path) -> None:
    # A user has 128 inotify instances (the default limit) for every program they run. Aim's
    # index manager holds one for the life of its process: with one in every writer and
    # reader, a busy host ran out and a training's final record failed.
    settings = make_settings(ml_storage_path=str(tmp_path / "aim"))
    tracker = get_sync_tracker(settings)
    run = tracker.create_run("inotify", {})
    tracker.log_metrics(run, {"reward": 1.0}, step=0)
    tracker.finish_run(run)  # the writer indexes the run for Aim's readers
    pid = tracker._writer.writer_pid
    assert pid is not None and _inotify_instances(pid) == 0
    tracker.close()
    reader = (
        "import os, sys\n"
        "from agentic_trading.config import Settings\n"
        "from agentic_trading.tracking import get_sync_experiment_repository\n"
        "repo = get_sync_experiment_repository(Settings(ml_storage_path=sys.argv[1]))\n"
        "status = repo.get_run(sys.argv[2]).status.value\n"
        "count = sum(os.readlink(f'/proc/self/fd/{fd}') == 'anon_inode:inotify'\n"
        "            for fd in os.listdir('/proc/self/fd') if os.path.exists(f'/proc/self/fd/{fd}'))\n"
        "print(status, count)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", reader, settings.ml_storage_path, run.run_id],
        capture_output=True, text=True, timeout=120, check=False, cwd=ROOT,
    )  # fmt: skip
    assert done.stdout.split() == ["completed", "0"], done.stderr


def test_silent_heartbeat_on_another_host_reads_crashed(
    repo: SyncExperimentRepository, settings: Settings, experiment: str
) -> None:
    tracker = get_sync_tracker(settings)
    run = tracker.create_run(experiment, {})
    tracker.flush()
    summary = repo.get_run(run.run_id)
    assert summary.status is ExperimentStatus.RUNNING
    elsewhere = summary.model_copy(
        update={"host": "other-host", "heartbeat_at": summary.created_at}
    )
    assert repo._live(elsewhere).status is ExperimentStatus.RUNNING  # created under 3 s ago
    time.sleep(settings.ml_heartbeat_timeout + 0.2)
    assert repo._live(elsewhere).status is ExperimentStatus.CRASHED
    assert "no heartbeat for over 3 s" in (repo._live(elsewhere).error or "")
    fresh = repo.get_run(run.run_id)  # our own writer kept beating meanwhile
    assert fresh.status is ExperimentStatus.RUNNING
    assert fresh.heartbeat_at is not None and fresh.heartbeat_at > summary.heartbeat_at  # type: ignore[operator]
    tracker.finish_run(run)
    tracker.close()


def test_interpreter_exit_flushes_and_marks_the_unfinished_run(
    any_writer: Settings, experiment: str
) -> None:
    settings = any_writer
    proc = worker("exit", experiment, 3000, settings)
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode == 0
    run_id = out.split()[0]
    repo = get_sync_experiment_repository(settings)
    detail = repo.get_run(run_id)
    assert detail.status is ExperimentStatus.CRASHED and detail.error == EXIT_ERROR
    assert repo.get_metric_series(run_id, "reward").steps == list(range(3000))


def test_several_processes_log_into_one_repository(settings: Settings, experiment: str) -> None:
    procs = [worker("finish", experiment, 800, settings) for _ in range(4)]
    run_ids = []
    for proc in procs:
        out, _ = proc.communicate(timeout=120)
        assert proc.returncode == 0
        run_ids.append(out.split()[0])
    repo = get_sync_experiment_repository(settings)
    runs = repo.list_runs(experiment=experiment)
    assert sorted(r.run_id for r in runs) == sorted(run_ids)
    for run_id in run_ids:
        assert repo.get_run(run_id).status is ExperimentStatus.COMPLETED
        for name in ("reward", "loss"):
            assert repo.get_metric_series(run_id, name).steps == list(range(800))


#: Aim's own SDK, alone: the completed run of an experiment, looked for until a deadline.
_AIM_SDK_READ = """
import json, sys, time
from aim import Repo
location, experiment, deadline = sys.argv[1], sys.argv[2], time.monotonic() + float(sys.argv[3])
query = f"run.experiment == '{experiment}' and run.status == 'completed'"
while True:
    runs = [r.run for r in Repo(location).query_runs(query, report_mode=0).iter_runs()]
    if runs or time.monotonic() > deadline:
        break
    time.sleep(0.2)
run = runs[0]
metrics = {m.name: m.values.values_list() for m in run.metrics()}
print(json.dumps({"hash": run.hash, "hparams": run["hparams"], "final": run["final_metrics"],
                  "reward": metrics["reward"]}))
"""


def _read_with_aims_sdk(settings: Settings, experiment: str, wait: float) -> dict[str, Any]:
    """What Aim's SDK alone reads of ``experiment``'s completed run (see ``_AIM_SDK_READ``)."""
    reader = subprocess.run(
        [sys.executable, "-c", _AIM_SDK_READ, settings.ml_storage_path, experiment, str(wait)],
        capture_output=True,
        text=True,
        check=True,
        timeout=wait + 60,
    )
    result: dict[str, Any] = json.loads(reader.stdout.strip().splitlines()[-1])
    return result


def test_aim_sdk_reads_a_finished_run_while_its_training_process_goes_on(
    settings: Settings, experiment: str
) -> None:
    # finish_run returns once the run is closed; the writer indexes it right after, for Aim's
    # own readers, while this process goes on (a study worker's next trial, say).
    if is_mlflow(settings):
        pytest.skip("Aim's own tools read Aim repositories")
    tracker = get_sync_tracker(settings)
    run = tracker.create_run(experiment, {"mode": "live"})
    for step in range(5):
        tracker.log_metrics(run, {"reward": float(step)}, step=step)
    tracker.finish_run(run, "completed", {"total_reward": 10.0})
    seen = _read_with_aims_sdk(settings, experiment, wait=10)
    assert seen["hash"] == run.run_id
    assert seen["final"] == {"total_reward": 10.0}
    assert sorted(seen["reward"]) == [float(i) for i in range(5)]


def test_aim_sdk_and_cli_alone_read_what_the_tracker_wrote(
    settings: Settings, experiment: str
) -> None:
    if is_mlflow(settings):
        pytest.skip("Aim's own tools read Aim repositories")
    proc = worker("finish", experiment, 50, settings)
    out, _ = proc.communicate(timeout=120)
    run_id = out.split()[0]
    aim_cli = Path(sys.executable).with_name("aim")
    listed = subprocess.run(
        [str(aim_cli), "runs", "--repo", settings.ml_storage_path, "ls"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert run_id in listed.stdout
    seen = _read_with_aims_sdk(settings, experiment, wait=0)
    assert seen["hash"] == run_id
    assert seen["hparams"] == {"mode": "finish", "points": 50}
    assert seen["final"] == {"total_reward": 50.0}
    assert sorted(seen["reward"]) == [float(i) for i in range(50)]


# --- the repository's queries --------------------------------------------------------------------


@pytest.fixture
def three_runs(settings: Settings, experiment: str) -> list[str]:
    tracker = get_sync_tracker(settings)
    ids = []
    for lr, reward, status in (
        (1e-3, 10.0, "completed"),
        (3e-4, 30.0, "completed"),
        (1e-4, 50.0, "failed"),
    ):
        run = tracker.create_run(experiment, {"lr": lr, "gamma": 0.99, "net": {"layers": 2}})
        for step in range(3):
            tracker.log_metrics(run, TrainingMetrics(step=step, reward=reward + step, loss=lr))
        tracker.finish_run(run, status, {"total_reward": reward, "max_drawdown": reward / 100})
        ids.append(run.run_id)
    tracker.close()
    return ids


def test_list_runs_filters_orders_and_pages(
    repo: SyncExperimentRepository, experiment: str, three_runs: list[str], settings: Settings
) -> None:
    a, b, c = three_runs
    assert [r.run_id for r in repo.list_runs(experiment=experiment)] == [c, b, a]
    assert [r.run_id for r in repo.list_runs(experiment=experiment, status="failed")] == [c]
    assert [
        r.run_id for r in repo.list_runs(experiment=experiment, status=["completed", "failed"])
    ] == [c, b, a]
    by_reward = repo.list_runs(experiment=experiment, order_by="-final_metrics.total_reward")
    assert [r.run_id for r in by_reward] == [c, b, a]
    assert [r.run_id for r in repo.list_runs(experiment=experiment, order_by="config.lr")] == [
        c,
        b,
        a,
    ]
    page = repo.list_runs(experiment=experiment, order_by="created_at", limit=2, offset=1)
    assert [r.run_id for r in page] == [b, c]
    query = (
        "params.lr != '0.001' and params.gamma = '0.99'"
        if is_mlflow(settings)
        else "run.hparams.lr < 0.0005"
    )
    assert {r.run_id for r in repo.list_runs(experiment=experiment, query=query)} == {b, c}


def test_best_compare_experiments_and_delete(
    repo: SyncExperimentRepository, experiment: str, three_runs: list[str]
) -> None:
    a, b, c = three_runs
    best = repo.best_run(experiment, "total_reward")
    assert best is not None and best.run_id == b  # c scored more but failed
    worst = repo.best_run(experiment, "total_reward", mode="min")
    assert worst is not None and worst.run_id == a
    assert repo.best_run(experiment, "no_such_metric") is None

    comparison = repo.compare_runs([a, b], ["total_reward", "max_drawdown", "reward"])
    assert comparison.table[a] == {"total_reward": 10.0, "max_drawdown": 0.1, "reward": 12.0}
    assert comparison.best == {"total_reward": b, "max_drawdown": a, "reward": b}
    assert comparison.config_diff == {"lr": {a: 1e-3, b: 3e-4}}

    summary = next(e for e in repo.list_experiments() if e.name == experiment)
    assert summary.run_count == 3
    assert summary.status_counts == {"completed": 2, "failed": 1}
    assert summary.best_run_id == b and summary.best_value == 30.0

    repo.delete_run(a)
    with pytest.raises(RunNotFoundError):
        repo.get_run(a)
    assert {r.run_id for r in repo.list_runs(experiment=experiment)} == {b, c}


def test_deleting_a_live_run_needs_force(
    repo: SyncExperimentRepository, settings: Settings, experiment: str
) -> None:
    tracker = get_sync_tracker(settings)
    run = tracker.create_run(experiment, {})
    tracker.flush()
    with pytest.raises(TrackingError, match="still running"):
        repo.delete_run(run.run_id)
    tracker.finish_run(run)
    tracker.close()


@pytest.mark.parametrize("backend", ["aim", "mlflow"])
def test_empty_storage_path_reads_as_no_runs(tmp_path: Path, backend: str) -> None:
    settings = make_settings(ml_storage_path=str(tmp_path / "none"), ml_tracking_backend=backend)
    repo = get_sync_experiment_repository(settings)
    assert repo.list_runs() == [] and repo.list_experiments() == []
    with pytest.raises(RunNotFoundError):
        repo.get_run("abc")
    bad, refused = ("run.__class__", "'__' has no place") if backend == "aim" else ("a <<< 1", "")
    with pytest.raises(ValueError, match=refused or "MLflow refused the search"):
        repo.list_runs(query=bad)  # refused before any run exists, not answered empty


# --- where a run came from ----------------------------------------------------------------------


def _git(folder: Path, *args: str) -> str:
    done = subprocess.run(
        ["git", "-C", str(folder), *args], capture_output=True, text=True, check=True
    )
    return done.stdout.rstrip("\n")


async def test_a_run_records_its_environment_and_its_uncommitted_code(
    tracker: Tracker,
    repo: SyncExperimentRepository,
    settings: Settings,
    experiment: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    project = tmp_path / "project"
    project.mkdir()
    _git(project, "init", "-q", "-b", "research")
    _git(project, "config", "user.email", "r@example.com")
    _git(project, "config", "user.name", "Researcher")
    (project / "strategy.py").write_text("THRESHOLD = 1\n")
    _git(project, "add", "strategy.py")
    _git(project, "commit", "-q", "-m", "first")
    (project / "strategy.py").write_text("THRESHOLD = 2  # tried on the train bars\n")
    (project / "features.py").write_text("WINDOW = 24\n")  # new, not yet added
    data = project / "bars.csv"
    data.write_text("datetime,open,high,low,close\n2020-01-01,1,1,1,1\n")
    monkeypatch.chdir(project)

    run = await tracker.create_run(
        experiment, {"lr": 0.1}, environment={"data": {"path": str(data)}, "seeds": {"seed": 7}}
    )
    await tracker.finish_run(run, "completed", {"total_reward": 1.0})

    environment = repo.get_run(run.run_id).environment
    assert environment["git"]["commit"] == _git(project, "rev-parse", "HEAD")
    assert environment["git"]["branch"] == "research" and environment["git"]["dirty"] is True
    # The user's index is left alone: the new file is still untracked, the change unstaged.
    assert _git(project, "status", "--porcelain").splitlines() == [
        " M strategy.py",
        "?? bars.csv",
        "?? features.py",
    ]
    assert environment["data"]["sha256"] == hashlib.sha256(data.read_bytes()).hexdigest()
    assert environment["seeds"] == {"seed": 7} and environment["cwd"] == str(project)
    assert environment["versions"]["stable-baselines3"] and environment["python"]
    assert environment["settings"]["ML_STORAGE_PATH"] == settings.ml_storage_path
    detail = repo.get_run(run.run_id)
    patch = read_artifact(detail.artifacts["code.patch"], settings).decode()
    assert "+THRESHOLD = 2  # tried on the train bars" in patch and "+WINDOW = 24" in patch
    requirements = read_artifact(detail.artifacts["requirements.txt"], settings).decode()
    assert any(line.startswith("stable_baselines3==") or line.startswith("stable-baselines3==")
               for line in requirements.lower().splitlines())  # fmt: skip


async def test_secrets_never_reach_the_recorded_environment(
    settings: Settings, repo: SyncExperimentRepository, experiment: str
) -> None:
    secret = "s3cr3t-" + uuid.uuid4().hex[:8]
    with_secrets = settings.model_copy(
        update={"ml_writer": "thread", "dashboard_token": SecretStr(secret),
                "redis_url": f"redis://user:{secret}@127.0.0.1:6379/0"}
    )  # fmt: skip
    tracker = await get_ml_tracker(with_secrets)
    run = await tracker.create_run(experiment, {})
    await tracker.finish_run(run, "completed", {})
    await tracker.close()
    environment = repo.get_run(run.run_id).environment
    assert environment["settings"]["DASHBOARD_TOKEN"] == "********"
    assert secret not in json.dumps(environment)


async def test_capture_can_be_turned_off(
    settings: Settings, repo: SyncExperimentRepository, experiment: str
) -> None:
    tracker = await get_ml_tracker(
        settings.model_copy(update={"ml_writer": "thread", "ml_capture_environment": False})
    )
    run = await tracker.create_run(experiment, {})
    await tracker.finish_run(run, "completed", {})
    await tracker.close()
    detail = repo.get_run(run.run_id)
    assert detail.environment == {} and "code.patch" not in detail.artifacts


SYSTEM_SERIES = {
    "system/cpu_percent", "system/rss_mb", "system/threads", "system/load_1m",
    "system/memory_percent", "system/memory_available_mb",
}  # fmt: skip


async def test_the_writer_samples_system_metrics_into_every_open_run(
    settings: Settings, repo: SyncExperimentRepository, experiment: str
) -> None:
    tracker = await get_ml_tracker(  # the writer process: it samples its parent, the training
        settings.model_copy(update={"ml_writer": "process", "ml_system_metrics_interval": 0.25})
    )
    run = await tracker.create_run(experiment, {})
    await tracker.log_metrics(run, {"reward": 1.0}, step=1)
    await tracker.flush()  # the run is open in the writer (a writer process starts first)
    await asyncio.sleep(1.6)  # about six samples
    await tracker.finish_run(run, "completed", {})
    await tracker.close()

    detail = repo.get_run(run.run_id)
    assert set(detail.metrics) >= SYSTEM_SERIES
    series = repo.get_metrics(run.run_id, sorted(SYSTEM_SERIES))
    counts = {len(s.values) for s in series.values()}
    assert len(counts) == 1 and 3 <= counts.pop() <= 8
    samples = len(series["system/rss_mb"].values)
    steps = series["system/rss_mb"].steps
    assert steps == sorted(set(steps))  # one point a step, in order
    assert all(20 < mb < 24 * 1024 for mb in series["system/rss_mb"].values)
    assert all(value >= 1 for value in series["system/threads"].values)
    assert all(0 <= value <= 100 for value in series["system/memory_percent"].values)
    # They count among the values the run logged: its record is complete.
    assert detail.values_logged == 1 + len(SYSTEM_SERIES) * samples


async def test_system_metrics_can_be_turned_off(
    settings: Settings, repo: SyncExperimentRepository, experiment: str
) -> None:
    tracker = await get_ml_tracker(
        settings.model_copy(update={"ml_writer": "thread", "ml_system_metrics_interval": 0})
    )
    run = await tracker.create_run(experiment, {})
    await tracker.log_metrics(run, {"reward": 1.0}, step=1)
    await asyncio.sleep(0.5)
    await tracker.finish_run(run, "completed", {})
    await tracker.close()
    detail = repo.get_run(run.run_id)
    assert detail.metrics == ["reward"] and detail.values_logged == 1


async def test_console_output_is_capped_with_a_note(
    settings: Settings, repo: SyncExperimentRepository, experiment: str
) -> None:
    tracker = get_sync_tracker(
        settings.model_copy(update={"ml_writer": "thread", "ml_capture_output_max_lines": 5})
    )
    run = tracker.create_run(experiment, {})
    assert tracker.log_output(run, [f"line {n}" for n in range(3)])
    assert tracker.log_output(run, [f"line {n}" for n in range(3, 8)])
    tracker.finish_run(run, "completed", {})
    tracker.close()
    uri = repo.get_run(run.run_id).artifacts["output.log"]
    lines = read_artifact(uri, settings).decode().splitlines()
    assert lines[:5] == [f"line {n}" for n in range(5)]
    assert lines[5:] == ["[agentic-trading: 3 more lines not kept (ML_CAPTURE_OUTPUT_MAX_LINES=5)]"]
