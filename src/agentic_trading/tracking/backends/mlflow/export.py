"""Copy runs from another tracking store (an Aim repository) into MLflow, idempotently."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import unquote, urlparse

from agentic_trading.config import Settings
from agentic_trading.status import ExperimentStatus
from agentic_trading.tracking.backends.mlflow.reader import MlflowRunReader
from agentic_trading.tracking.backends.mlflow.store import MlflowRunStore
from agentic_trading.tracking.base import RunReader
from agentic_trading.tracking.errors import describe
from agentic_trading.tracking.records import RunDetail

__all__ = ["ExportReport", "export_to_mlflow"]

logger = logging.getLogger("agentic_trading.tracking")


@dataclass
class ExportReport:
    """What an export did: run ids copied, already there, still running, and failed (why)."""

    copied: list[str] = field(default_factory=list)
    present: list[str] = field(default_factory=list)
    running: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)
    points: int = 0
    artifacts_left: dict[str, str] = field(default_factory=dict)

    def as_data(self) -> dict[str, object]:
        """The report as JSON data."""
        return {
            "copied": self.copied,
            "already_in_mlflow": self.present,
            "still_running": self.running,
            "failed": self.failed,
            "points": self.points,
            "artifacts_not_copied": self.artifacts_left,
        }


def export_to_mlflow(
    source: RunReader,
    target: Settings,
    experiment: str | None = None,
    on_run: Callable[[str], None] | None = None,
) -> ExportReport:
    """Copy every finished run of ``source`` (of ``experiment``, if given) into the MLflow store
    of ``target``: config, metric series with steps and times, final metrics, status, error,
    params, tags and ``file://`` artifacts. A run already there complete is left alone; one
    left half-copied by an interrupted export is copied again. ``on_run`` is told each run id."""
    report = ExportReport()
    store = MlflowRunStore(target)
    mlflow_runs = MlflowRunReader(target)
    source.refresh()
    runs = [r for r in source.list_runs() if experiment is None or r.experiment == experiment]
    for summary in sorted(runs, key=lambda r: r.created_at):
        run_id = summary.run_id
        if on_run is not None:
            on_run(run_id)
        if not summary.status.is_finished:
            report.running.append(run_id)
            continue
        there = mlflow_runs.get_run(run_id)
        if there is not None and there.status.is_finished:
            report.present.append(run_id)
            continue
        if there is not None:  # an interrupted export: copy it again from scratch
            mlflow_runs.delete_run(run_id)
        detail = source.get_run(run_id)
        if detail is None:
            continue
        try:
            report.points += _copy(source, store, detail, report)
            report.copied.append(run_id)
        except Exception as exc:
            report.failed[run_id] = describe(exc)
            logger.error("run %s was not exported: %s", run_id, describe(exc))
    store.close()
    return report


def _copy(source: RunReader, store: MlflowRunStore, run: RunDetail, report: ExportReport) -> int:
    store.open_run(
        run.run_id, run.experiment, run.config, run.tags,
        started_at=run.created_at, host=run.host, pid=run.pid,
    )  # fmt: skip
    points = 0
    for name in run.metrics:
        series = source.get_series(run.run_id, name)
        if series is None:
            continue
        for step, value, at in zip(series.steps, series.values, series.timestamps, strict=True):
            store.track(run.run_id, [(step, {name: value})], at=at)
        points += len(series.steps)
    attributes = dict(run.params)
    if run.skipped_non_finite:
        attributes["skipped_non_finite"] = run.skipped_non_finite
    if attributes:
        store.set_attributes(run.run_id, attributes)
    for name, uri in run.artifacts.items():
        parsed = urlparse(uri)
        path = Path(unquote(parsed.path))
        if parsed.scheme == "file" and path.is_file():
            store.log_artifact(run.run_id, path, name)
        else:
            report.artifacts_left[f"{run.run_id}/{name}"] = uri
    status = run.status if run.status.is_finished else ExperimentStatus.CRASHED
    store.close_run(run.run_id, status, run.final_metrics, run.error, ended_at=run.ended_at)
    return points
