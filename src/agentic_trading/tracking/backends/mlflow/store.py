"""Writes runs into MLflow (a local SQLite store or an ``mlflow server``), from one thread."""

from __future__ import annotations

import json
import os
import shutil
import socket
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from agentic_trading.config import Settings
from agentic_trading.status import ExperimentStatus
from agentic_trading.tracking.backends.mlflow._storage import (
    ARTIFACT_PREFIX,
    FINAL_PREFIX,
    LABEL_PREFIX,
    MAX_METRICS_PER_BATCH,
    MAX_PARAMS_TAGS_PER_BATCH,
    MAX_TAG_VALUE,
    MLFLOW_STATUS,
    PARAM_PREFIX,
    TAG,
    artifact_root,
    check_mlflow_names,
    connect,
    ensure_writable,
    flatten,
    has_error,
    import_mlflow,
    is_unreachable,
    run_filter,
)
from agentic_trading.tracking.errors import (
    RunNotFoundError,
    TrackingError,
    TrackingServerUnreachableError,
    describe,
)
from agentic_trading.tracking.records import RECORD_ATTRIBUTES

__all__ = ["MlflowRunStore"]

EXPERIMENT_KIND = "mlflow.experimentKind"


def _json(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), allow_nan=False)


class MlflowRunStore:
    """A :class:`~agentic_trading.tracking.base.RunStore` over MLflow runs.

    Points are buffered and written with ``log_batch`` (up to 1,000 a request) when a run's
    buffer is full, before any other operation of the run, and when the writer has nothing else
    to do (:meth:`flush`). See ``_storage`` for what maps to what.
    """

    def __init__(self, settings: Settings, owner_pid: int | None = None) -> None:
        self._settings = settings
        self._owner_pid = owner_pid or os.getpid()
        self._host = socket.gethostname()
        self.location = settings.tracking_location()
        self._client: Any = None  # MLflow is imported by the writer, not on the caller's path
        self._experiments: dict[str, str] = {}
        self._runs: dict[str, str] = {}  # our run id -> MLflow's
        self._artifact_uris: dict[str, str] = {}
        self._created: dict[str, float] = {}
        self._points: dict[str, list[Any]] = {}
        self._tried_open: set[str] = set()

    # --- the caller's checks (milliseconds, no MLflow import) ------------------------------------

    def check_writable(self) -> None:
        ensure_writable(self._settings)

    @staticmethod
    def warm_up() -> None:
        """Import MLflow's client: the one-off work of any store."""
        import_mlflow()
        import mlflow.entities  # noqa: F401

    def prepare(self) -> None:
        self.warm_up()

    def check_metric_names(self, names: Sequence[str]) -> None:
        """``ValueError`` naming a metric name MLflow would refuse."""
        check_mlflow_names(names, "metric")

    def check_params(self, params: Mapping[str, Any]) -> None:
        """``ValueError`` naming a param MLflow could not keep (its name or its size)."""
        check_mlflow_names(params, "param", PARAM_PREFIX)
        for name, value in params.items():
            if len(_json(value)) > MAX_TAG_VALUE:
                raise ValueError(
                    f"param {name!r} is over {MAX_TAG_VALUE} characters as JSON: MLflow keeps "
                    "no more in one value (log a file with log_artifact instead)"
                )

    # --- MLflow ---------------------------------------------------------------------------------

    @contextmanager
    def _remote(self, what: str) -> Iterator[None]:
        """An MLflow server that does not answer -> ``TrackingServerUnreachableError`` (the
        writer retries the operation); other failures pass unchanged."""
        try:
            yield
        except (TrackingError, ValueError):
            raise
        except Exception as exc:
            if is_unreachable(exc):
                raise TrackingServerUnreachableError(
                    f"cannot {what}: the MLflow server at {self.location} does not answer "
                    f"({describe(exc, 200)})"
                ) from None
            raise TrackingError(
                f"cannot {what} in MLflow at {self.location}: {describe(exc)}"
            ) from None

    @property
    def client(self) -> Any:
        if self._client is None:
            with self._remote("connect"):
                self._client = connect(self._settings)
        return self._client

    def _experiment_id(self, name: str) -> str:
        found = self._experiments.get(name)
        if found is not None:
            return found
        client = self.client
        experiment = client.get_experiment_by_name(name)
        if experiment is None:
            root = artifact_root(self._settings)
            try:
                experiment_id = client.create_experiment(
                    name,
                    artifact_location=f"{root}/{name}" if root else None,
                    tags={EXPERIMENT_KIND: "custom_model_development"},  # UI: "Model training"
                )
            except Exception as exc:
                if not (has_error(exc, "RESOURCE_ALREADY_EXISTS") or "already exists" in str(exc)):
                    raise
                experiment = client.get_experiment_by_name(name)  # another process made it
                experiment_id = experiment.experiment_id
        else:
            experiment_id = experiment.experiment_id
            if experiment.lifecycle_stage == "deleted":
                client.restore_experiment(experiment_id)
        self._experiments[name] = experiment_id
        return str(experiment_id)

    def _mlflow_id(self, run_id: str) -> str:
        try:
            return self._runs[run_id]
        except KeyError:
            raise RunNotFoundError(f"run {run_id} is not open in this process") from None

    def _log(
        self, run_id: str, *, params: Mapping[str, str] = {}, tags: Mapping[str, str] = {}
    ) -> None:
        from mlflow.entities import Param, RunTag

        mlflow_id = self._mlflow_id(run_id)
        items = [Param(k, v) for k, v in params.items()]
        labels = [RunTag(k, v[:MAX_TAG_VALUE]) for k, v in tags.items()]
        for start in range(0, max(len(items), len(labels)), MAX_PARAMS_TAGS_PER_BATCH):
            end = start + MAX_PARAMS_TAGS_PER_BATCH
            self.client.log_batch(mlflow_id, params=items[start:end], tags=labels[start:end])

    # --- RunStore -------------------------------------------------------------------------------

    def open_run(
        self,
        run_id: str,
        experiment: str,
        config: Mapping[str, Any],
        tags: Sequence[str],
        *,
        started_at: datetime | None = None,
        host: str | None = None,
        pid: int | None = None,
    ) -> datetime:
        """See ``RunStore.open_run``; ``started_at``, ``host`` and ``pid`` record another
        process's run (an export) instead of this one."""
        ensure_writable(self._settings)
        with self._remote("create a run"):
            if run_id not in self._runs:
                self._create(run_id, experiment, started_at)
            whole = _json(dict(config))
            record = {
                TAG["status"]: ExperimentStatus.RUNNING.value,
                TAG["host"]: host or self._host,
                TAG["pid"]: str(pid or self._owner_pid),
                TAG["heartbeat_at"]: repr(self._created[run_id]),
                **{LABEL_PREFIX + tag: "true" for tag in tags},
            }
            if len(whole) <= MAX_TAG_VALUE:
                record[TAG["config"]] = whole
            self._log(run_id, params=flatten(config), tags=record)
            self.client.log_text(self._runs[run_id], whole, "config.json")
        return datetime.fromtimestamp(self._created[run_id], tz=UTC)

    def _create(self, run_id: str, experiment: str, started_at: datetime | None) -> None:
        client = self.client
        experiment_id = self._experiment_id(experiment)
        run = None
        if run_id in self._tried_open:  # an earlier attempt may have created it before failing
            found = client.search_runs([experiment_id], run_filter(run_id), max_results=1)
            run = found[0] if found else None
        self._tried_open.add(run_id)
        if run is None:
            start = None if started_at is None else int(started_at.timestamp() * 1000)
            run = client.create_run(
                experiment_id, start_time=start, tags={TAG["run_id"]: run_id}, run_name=run_id
            )
        self._runs[run_id] = run.info.run_id
        self._artifact_uris[run_id] = run.info.artifact_uri
        self._created[run_id] = run.info.start_time / 1000.0
        self._points[run_id] = []
        self._tried_open.discard(run_id)

    def track(
        self,
        run_id: str,
        points: Sequence[tuple[int, Mapping[str, float]]],
        at: float | None = None,
    ) -> None:
        """See ``RunStore.track``; ``at`` (seconds since the epoch) is the points' time when
        it is not now (an export)."""
        from mlflow.entities import Metric

        self._mlflow_id(run_id)
        held = self._points[run_id]
        if len(held) >= MAX_METRICS_PER_BATCH:
            # Before this call's points join the buffer: when the server does not answer, the
            # writer retries the whole call, and its points must be buffered once, not twice.
            self._flush_run(run_id)
        now = int((time.time() if at is None else at) * 1000)
        for step, values in points:
            held.extend(Metric(name, value, now, step) for name, value in values.items())

    def _flush_run(self, run_id: str) -> None:
        points = self._points.get(run_id)
        if not points:
            return
        mlflow_id = self._mlflow_id(run_id)
        with self._remote("write points"):
            while points:
                self.client.log_batch(mlflow_id, metrics=points[:MAX_METRICS_PER_BATCH])
                del points[:MAX_METRICS_PER_BATCH]  # only once stored: a retry sends the rest

    def flush(self) -> list[tuple[str, int, str]]:
        """Write every buffered point. Returns ``(run id, points, why)`` for points the store
        refused (they are dropped); raises ``TrackingServerUnreachableError`` while the server
        does not answer (nothing dropped: the writer retries)."""
        refused = []
        for run_id, points in self._points.items():
            try:
                self._flush_run(run_id)
            except TrackingServerUnreachableError:
                raise
            except Exception as exc:
                refused.append((run_id, len(points), describe(exc)))
                points.clear()
        return refused

    def set_attributes(self, run_id: str, attributes: Mapping[str, Any]) -> None:
        tags = {
            (TAG[k] if k in RECORD_ATTRIBUTES and k in TAG else PARAM_PREFIX + k): _json(v)
            for k, v in attributes.items()
        }
        with self._remote("set run attributes"):
            self._log(run_id, tags=tags)

    def add_tags(self, run_id: str, tags: Sequence[str]) -> None:
        with self._remote("tag a run"):
            self._log(run_id, tags={LABEL_PREFIX + tag: "true" for tag in tags})

    def log_artifact(self, run_id: str, path: Path, name: str) -> str:
        mlflow_id = self._mlflow_id(run_id)
        with self._remote("store an artifact"):
            if path.name == name:
                self.client.log_artifact(mlflow_id, str(path))
            else:
                with tempfile.TemporaryDirectory() as folder:
                    copy = Path(folder, name)
                    shutil.copyfile(path, copy)
                    self.client.log_artifact(mlflow_id, str(copy))
            uri = f"{self._artifact_uris[run_id]}/{name}"
            self._log(run_id, tags={ARTIFACT_PREFIX + name: uri})
        return uri

    def heartbeat(self, run_id: str, at: float) -> None:
        with self._remote("record a heartbeat"):
            self.client.set_tag(self._mlflow_id(run_id), TAG["heartbeat_at"], repr(at))

    def close_run(
        self,
        run_id: str,
        status: ExperimentStatus,
        final_metrics: Mapping[str, float],
        error: str | None,
        *,
        ended_at: datetime | None = None,
    ) -> None:
        """See ``RunStore.close_run``; ``ended_at`` when the run did not end now (an export)."""
        from mlflow.entities import Metric

        mlflow_id = self._mlflow_id(run_id)
        self._flush_run(run_id)
        now = int((time.time() if ended_at is None else ended_at.timestamp()) * 1000)
        with self._remote("finish a run"):
            finals = [Metric(FINAL_PREFIX + k, v, now, 0) for k, v in final_metrics.items()]
            for start in range(0, len(finals), MAX_METRICS_PER_BATCH):
                self.client.log_batch(
                    mlflow_id, metrics=finals[start : start + MAX_METRICS_PER_BATCH]
                )
            tags = {
                TAG["final_metrics"]: _json(dict(final_metrics)),
                TAG["heartbeat_at"]: repr(self._created[run_id]),  # as the catalogue records it
                TAG["status"]: status.value,
            }
            if error is not None:
                tags[TAG["error"]] = error
            self._log(run_id, tags=tags)
            self.client.set_terminated(mlflow_id, MLFLOW_STATUS[status], end_time=now)
        for table in (self._runs, self._artifact_uris, self._created, self._points):
            table.pop(run_id, None)  # only now: a retry after an outage finds it still open

    def close(self) -> None:
        self._client = None
