"""Reads runs back from MLflow: summaries in bulk, one run in full, metric series."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

from agentic_trading.config import Settings
from agentic_trading.status import ExperimentStatus
from agentic_trading.tracking.artifact_files import path_bytes, uri_path
from agentic_trading.tracking.backends.mlflow._storage import (
    ARTIFACT_PREFIX,
    FINAL_PREFIX,
    LABEL_PREFIX,
    PARAM_PREFIX,
    TAG,
    connect,
    has_error,
    import_mlflow,
    is_unreachable,
    local_database,
    run_filter,
)
from agentic_trading.tracking.errors import TrackingUnavailableError, describe
from agentic_trading.tracking.records import MetricSeries, RunDetail, RunSummary

logger = logging.getLogger("agentic_trading.tracking")

__all__ = ["MlflowRunReader"]

_PAGE = 10_000
_STATUS = {"FINISHED": "completed", "FAILED": "failed", "KILLED": "cancelled"}


class MlflowRunReader:
    """A :class:`~agentic_trading.tracking.base.RunReader` over MLflow.

    ``list_runs(query)`` takes MLflow's own search filter (``params.gamma = '0.99' and
    tags.`agentic.status` = 'completed'``). Runs that this project did not write (no
    ``agentic.run_id`` tag) are left out.
    """

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._store: Any = None  # MLflow's own store, to purge runs (False: it cannot)
        self.location = settings.tracking_location()
        self._client: Any = None
        self._names: dict[str, str] = {}  # experiment id -> name
        self._ids: dict[str, str] = {}  # our run id -> MLflow's

    def _connect(self) -> Any:
        if self._client is None:
            self._client = self._call("open", lambda: connect(self._settings))
        return self._client

    def _call(self, what: str, action: Any) -> Any:
        try:
            return action()
        except (TrackingUnavailableError, ValueError):
            raise
        except Exception as exc:
            if is_unreachable(exc):
                raise TrackingUnavailableError(
                    f"the MLflow server at {self.location} does not answer: {describe(exc, 200)}"
                ) from None
            if what == "search" and has_error(exc, "INVALID_PARAMETER_VALUE"):
                raise ValueError(f"MLflow refused the search: {describe(exc)}") from None
            raise TrackingUnavailableError(
                f"cannot {what} in MLflow at {self.location}: {describe(exc)}"
            ) from None

    def _empty(self) -> bool:
        database = local_database(self._settings.mlflow_store_uri())
        return database is not None and not database.is_file()

    def refresh(self) -> None:
        self._names.clear()

    def _experiment_ids(self) -> list[str]:
        client = self._connect()
        if not self._names:
            self._names = {
                e.experiment_id: e.name
                for e in self._pages(
                    "list experiments",
                    lambda token: client.search_experiments(max_results=1000, page_token=token),
                )
            }
        return list(self._names)

    def _search(self, query: str = "") -> Iterator[Any]:
        if self._empty():
            return
        ids = self._experiment_ids()
        client = self._connect()
        for start in range(0, len(ids), 100):  # MLflow's servers take up to 100 ids a search
            chunk = ids[start : start + 100]
            for run in self._pages(
                "search",
                lambda token, chunk=chunk: client.search_runs(
                    chunk, query, max_results=_PAGE, page_token=token
                ),
            ):
                if TAG["run_id"] in run.data.tags:
                    self._ids[run.data.tags[TAG["run_id"]]] = run.info.run_id
                    yield run

    def _pages(self, what: str, fetch: Any) -> Iterator[Any]:
        token = None
        while True:
            page = self._call(what, lambda token=token: fetch(token))
            yield from page
            token = page.token
            if not token:
                return

    def list_runs(self, query: str | None = None) -> list[RunSummary]:
        if query is not None and not isinstance(query, str):
            raise ValueError(f"query must be an MLflow search filter (a string), got {query!r}")
        if query:  # MLflow's own parser: refused even before any run exists
            self._call("search", lambda: _parse_filter(query))
        return [self._record(RunSummary, run) for run in self._search(query or "")]

    def run_ids(self) -> set[str]:
        return {run.data.tags[TAG["run_id"]] for run in self._search()}

    def _find(self, run_id: str) -> Any:
        if self._empty():
            return None
        client = self._connect()
        known = self._ids.get(run_id)
        if known is not None:
            run = self._call("read a run", lambda: _get(client, known))
            if run is not None and run.info.lifecycle_stage == "active":
                return run
        found = list(self._search(run_filter(run_id)))
        return found[0] if found else None

    def mlflow_run_id(self, run_id: str) -> str | None:
        """MLflow's own id of our run ``run_id``, or ``None`` if MLflow has no such run."""
        run = self._find(run_id)
        return None if run is None else str(run.info.run_id)

    def get_run(self, run_id: str) -> RunDetail | None:
        run = self._find(run_id)
        if run is None:
            return None
        detail: RunDetail = self._record(RunDetail, run)
        detail.metrics = sorted(k for k in run.data.metrics if not k.startswith(FINAL_PREFIX))
        skipped = _loads(run.data.tags.get(TAG["skipped_non_finite"]), {})
        detail.skipped_non_finite = {str(k): int(v) for k, v in skipped.items()}
        values = _loads(run.data.tags.get(TAG["values_logged"]), None)
        detail.values_logged = values if isinstance(values, int) else None
        environment = _loads(run.data.tags.get(TAG["environment"]), {})
        detail.environment = environment if isinstance(environment, dict) else {}
        if TAG["config"] not in run.data.tags:  # too long for a tag: read the whole file
            detail.config = self._config_file(run) or detail.config
        return detail

    def _config_file(self, run: Any) -> dict[str, Any] | None:
        import mlflow

        try:
            text = mlflow.artifacts.load_text(f"{run.info.artifact_uri}/config.json")
            value = json.loads(text)
        except Exception:
            return None
        return value if isinstance(value, dict) else None

    def get_series(self, run_id: str, name: str) -> MetricSeries | None:
        run = self._find(run_id)
        if run is None or name not in run.data.metrics or name.startswith(FINAL_PREFIX):
            return None
        client = self._connect()
        history = self._call(
            "read a metric", lambda: client.get_metric_history(run.info.run_id, name)
        )
        points = sorted(history, key=lambda m: (m.step, m.timestamp))
        return MetricSeries(
            run_id=run_id,
            name=name,
            steps=[int(m.step) for m in points],
            values=[float(m.value) for m in points],
            timestamps=[m.timestamp / 1000.0 for m in points],
        )

    def delete_run(self, run_id: str) -> bool:
        run = self._find(run_id)
        if run is None:
            return False
        client = self._connect()
        # Deleted first (no reader sees it any more), then purged: artifacts, then the row,
        # as `mlflow gc` does. A purge cut short is finished by finish_deletions.
        self._call("delete a run", lambda: client.delete_run(run.info.run_id))
        self._ids.pop(run_id, None)
        self._purge(run)
        return True

    def stored_bytes(self, run_id: str) -> int:
        run = self._find(run_id)
        path = uri_path(run.info.artifact_uri) if run is not None else None
        return path_bytes(path) if path is not None else 0

    def finish_deletions(self) -> int:
        if self._empty():
            return 0
        from mlflow.entities import ViewType

        client = self._connect()
        freed = 0
        for experiment in self._experiment_ids():
            for run in self._pages(
                "search",
                lambda token, e=experiment: client.search_runs(
                    [e], "", run_view_type=ViewType.DELETED_ONLY, max_results=_PAGE,
                    page_token=token,
                ),
            ):  # fmt: skip
                if TAG["run_id"] in run.data.tags:
                    path = uri_path(run.info.artifact_uri)
                    freed += path_bytes(path) if path is not None else 0
                    self._purge(run)
        return freed

    def _purge(self, run: Any) -> None:
        """Delete a deleted run's artifacts, then its row where the store allows it (a
        database; an MLflow server purges with its own `mlflow gc`)."""
        from mlflow.store.artifact.artifact_repository_registry import get_artifact_repository

        try:
            get_artifact_repository(run.info.artifact_uri).delete_artifacts()  # type: ignore[no-untyped-call]
        except Exception as exc:
            logger.warning("run %s: artifacts not deleted: %s", run.info.run_id, describe(exc))
        store = self._hard_store()
        if store is not None:
            self._call("purge a run", lambda: store._hard_delete_run(run.info.run_id))

    def _hard_store(self) -> Any:
        if self._store is None:
            from mlflow.tracking._tracking_service.utils import _get_store

            uri = self._settings.mlflow_store_uri()
            remote = uri.startswith(("http://", "https://"))
            store = None if remote else _get_store(uri)  # type: ignore[no-untyped-call]
            self._store = store if hasattr(store, "_hard_delete_run") else False
        return self._store or None

    def _record(self, cls: type[Any], run: Any) -> Any:
        tags = run.data.tags
        info = run.info
        word = tags.get(TAG["status"]) or _STATUS.get(info.status, "running")
        try:
            status = ExperimentStatus.parse(word)
        except ValueError:
            status = ExperimentStatus.RUNNING
        config = _loads(tags.get(TAG["config"]), None)
        if not isinstance(config, dict):
            config = dict(run.data.params)
        pid = tags.get(TAG["pid"])
        if info.experiment_id not in self._names:
            self._names.clear()
            self._experiment_ids()
        return cls(
            run_id=tags[TAG["run_id"]],
            experiment=self._names.get(info.experiment_id, ""),
            status=status,
            config=config,
            final_metrics={
                str(k): float(v)
                for k, v in _loads(tags.get(TAG["final_metrics"]), {}).items()
                if isinstance(v, int | float)
            },
            error=tags.get(TAG["error"]),
            tags=sorted(k[len(LABEL_PREFIX) :] for k in tags if k.startswith(LABEL_PREFIX)),
            artifacts={
                k[len(ARTIFACT_PREFIX) :]: v
                for k, v in tags.items()
                if k.startswith(ARTIFACT_PREFIX)
            },
            params={
                k[len(PARAM_PREFIX) :]: _loads(v, v)
                for k, v in tags.items()
                if k.startswith(PARAM_PREFIX)
            },
            created_at=_time(info.start_time) or datetime.now(UTC),
            ended_at=_time(info.end_time),
            heartbeat_at=_seconds(tags.get(TAG["heartbeat_at"])),
            host=tags.get(TAG["host"]),
            pid=int(pid) if pid and pid.isdigit() else None,
        )


def _get(client: Any, mlflow_id: str) -> Any:
    try:
        return client.get_run(mlflow_id)
    except Exception as exc:
        if has_error(exc, "RESOURCE_DOES_NOT_EXIST") or "not found" in str(exc):
            return None
        raise


def _loads(text: str | None, default: Any) -> Any:
    if text is None:
        return default
    try:
        return json.loads(text)
    except ValueError:
        return default


def _time(millis: int | None) -> datetime | None:
    return None if not millis else datetime.fromtimestamp(millis / 1000.0, tz=UTC)


def _seconds(text: str | None) -> datetime | None:
    try:
        return None if text is None else datetime.fromtimestamp(float(text), tz=UTC)
    except ValueError:
        return None


def _parse_filter(query: str) -> None:
    import_mlflow()
    from mlflow.utils.search_utils import SearchUtils

    parse: Any = SearchUtils.parse_search_filter
    parse(query)
