"""MLflow backend: what ``log_metrics`` costs the caller against raw ``MlflowClient.log_metric``,
and how many points per second reach MLflow against raw ``log_batch`` (1,000 a request), on a
local SQLite store and on a real ``mlflow server`` over PostgreSQL, in the same run."""

from __future__ import annotations

import tempfile
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from tests.mlflow_server import mlflow_server
from tests.postgres import database, shared_available

from agentic_trading.config import Settings, load_settings
from agentic_trading.tracking import get_sync_tracker
from benchmarks.common import percentiles

CALLS = 300  # raw log_metric costs milliseconds a call: enough for stable percentiles
POINTS = 20_000  # points written through each path for throughput
METRICS = ("reward", "loss", "entropy", "episode_length")


def _raw(uri: str) -> dict[str, Any]:
    from mlflow import MlflowClient
    from mlflow.entities import Metric

    client = MlflowClient(uri)
    experiment = client.create_experiment(f"bench-raw-{time.time_ns()}")
    run_id = client.create_run(experiment).info.run_id
    calls: list[float] = []
    for step in range(CALLS):
        start = time.perf_counter()
        client.log_metric(run_id, "reward", 1.0 + step, step=step)
        calls.append(time.perf_counter() - start)
    now = int(time.time() * 1000)
    points = [
        Metric(name, float(step), now, step) for step in range(POINTS // len(METRICS))
        for name in METRICS
    ]  # fmt: skip
    start = time.perf_counter()
    for first in range(0, len(points), 1000):
        client.log_batch(run_id, metrics=points[first : first + 1000])
    batch_seconds = time.perf_counter() - start
    client.set_terminated(run_id)
    return {
        "log_metric_call": percentiles(calls),
        "log_batch_points_per_second": round(len(points) / batch_seconds),
    }


def _ours(settings: Settings) -> dict[str, Any]:
    tracker = get_sync_tracker(settings.model_copy(update={"ml_queue_size": POINTS * 2}))
    run = tracker.create_run("bench-ours", {"bench": True})
    tracker.flush()  # the writer is up and the run exists: time the points alone
    calls: list[float] = []
    for step in range(CALLS):
        start = time.perf_counter()
        tracker.log_metrics(run, {"reward": 1.0 + step}, step=step)
        calls.append(time.perf_counter() - start)
    tracker.flush()
    values = dict.fromkeys(METRICS, 1.0)
    start = time.perf_counter()
    for step in range(POINTS // len(METRICS)):
        tracker.log_metrics(run, values, step=CALLS + step)
    tracker.flush()
    seconds = time.perf_counter() - start
    tracker.finish_run(run)
    tracker.close()
    return {
        "log_metrics_call": percentiles(calls),
        "points_per_second_to_store": round(POINTS / seconds),
    }


def _compare(settings: Settings) -> dict[str, Any]:
    raw = _raw(settings.mlflow_store_uri())
    ours = _ours(settings)
    return {
        "raw": raw,
        "ours": ours,
        "cheaper_at_p50": round(
            raw["log_metric_call"]["p50_us"] / ours["log_metrics_call"]["p50_us"], 1
        ),
        "share_of_log_batch_throughput": round(
            ours["points_per_second_to_store"] / raw["log_batch_points_per_second"], 3
        ),
    }


def run() -> dict[str, Any]:
    out: dict[str, Any] = {"targets": {"cheaper_at_p50": 20, "share_of_log_batch_throughput": 0.8}}
    with tempfile.TemporaryDirectory() as tmp, ExitStack() as stack:
        root = Path(tmp)
        local = load_settings(ml_tracking_backend="mlflow", ml_storage_path=str(root / "local"))
        out["local_sqlite"] = _compare(local)
        if shared_available():
            server = stack.enter_context(mlflow_server(stack.enter_context(database()), root))
            remote = load_settings(
                ml_tracking_backend="mlflow",
                mlflow_tracking_uri=server.url,
                ml_storage_path=str(root / "remote"),
            )
            out["server_postgresql"] = _compare(remote)
    return out
