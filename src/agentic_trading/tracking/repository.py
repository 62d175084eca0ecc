"""The experiment repository: find, read, compare and delete tracked runs.

:class:`SyncExperimentRepository` holds the logic (for the CLI and the dashboard's callbacks);
:class:`ExperimentRepository` is the seed's async API over it. Both read through a
:class:`~agentic_trading.tracking.base.RunReader`, so they work with any tracking backend.
"""

from __future__ import annotations

import asyncio
import math
import os
import socket
import threading
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, Literal, TypeVar

from agentic_trading.config import Settings
from agentic_trading.status import ExperimentStatus
from agentic_trading.tracking.base import RunReader
from agentic_trading.tracking.errors import RunNotFoundError, TrackingError
from agentic_trading.tracking.models import (
    LOWER_IS_BETTER,
    ExperimentSummary,
    MetricSeries,
    RunComparison,
    RunDetail,
    RunSummary,
)

__all__ = ["DEFAULT_METRIC", "ExperimentRepository", "SyncExperimentRepository"]

#: The final metric that ranks an experiment's runs unless another is named.
DEFAULT_METRIC = "total_reward"

Mode = Literal["max", "min"]
R = TypeVar("R", bound=RunSummary)
_SORT_FIELDS = ("created_at", "ended_at", "duration", "experiment", "status", "run_id")


class SyncExperimentRepository:
    """Every tracked run, read back; a run left ``running`` by a dead process reads ``crashed``.

    A run is ``crashed`` when its process is gone (same host, pid no longer alive) or its
    heartbeat is older than ``ML_HEARTBEAT_TIMEOUT`` seconds.
    """

    def __init__(self, reader: RunReader, settings: Settings) -> None:
        self._reader = reader
        self._timeout = settings.ml_heartbeat_timeout
        self._lock = threading.Lock()
        self._host = socket.gethostname()

    @property
    def location(self) -> str:
        """The repository's folder or ``aim://`` URL."""
        return self._reader.location

    def _summaries(self, query: str | None = None) -> list[RunSummary]:
        with self._lock:
            self._reader.refresh()
            runs = self._reader.list_runs(query)
        return [self._live(run) for run in runs]

    def _live(self, run: R) -> R:
        if run.status is not ExperimentStatus.RUNNING:
            return run
        now = datetime.now(UTC)
        if run.ended_at is not None:
            reason = "the run was closed without a final status"
        elif run.host == self._host and run.pid is not None and not _pid_alive(run.pid):
            reason = f"its process (pid {run.pid} on {run.host}) is gone"
        elif run.heartbeat_at is None or (now - run.heartbeat_at).total_seconds() > self._timeout:
            last = run.heartbeat_at.isoformat(timespec="seconds") if run.heartbeat_at else "never"
            reason = f"no heartbeat for over {self._timeout:g} s (last: {last})"
        else:
            return run
        return run.model_copy(
            update={"status": ExperimentStatus.CRASHED, "error": run.error or f"crashed: {reason}"}
        )

    def list_experiments(
        self, metric: str = DEFAULT_METRIC, mode: Mode = "max"
    ) -> list[ExperimentSummary]:
        """One summary per experiment name, most recently active first.

        ``best_value`` is the best final ``metric`` among the experiment's completed runs.
        """
        _check_mode(mode)
        groups: dict[str, list[RunSummary]] = {}
        for run in self._summaries():
            groups.setdefault(run.experiment, []).append(run)
        out = []
        for name, runs in groups.items():
            best = _best(runs, metric, mode)
            out.append(
                ExperimentSummary(
                    name=name,
                    run_count=len(runs),
                    status_counts=dict(Counter(run.status.value for run in runs)),
                    last_activity=max(_activity(run) for run in runs),
                    metric=metric,
                    best_value=best.final_metrics[metric] if best else None,
                    best_run_id=best.run_id if best else None,
                )
            )
        out.sort(key=lambda e: e.last_activity or _EPOCH, reverse=True)
        return out

    def list_runs(
        self,
        experiment: str | None = None,
        status: ExperimentStatus | str | Iterable[ExperimentStatus | str] | None = None,
        query: str | None = None,
        order_by: str | None = None,
        limit: int | None = None,
        offset: int = 0,
        *,
        group: str | None = None,
        study: str | None = None,
    ) -> list[RunSummary]:
        """Runs, newest first unless ``order_by`` says otherwise.

        ``status`` is one status or several; ``query`` is AimQL (``run.hparams.gamma > 0.9``);
        ``order_by`` is ``created_at``, ``ended_at``, ``duration``, ``experiment``, ``status``,
        ``run_id``, ``final_metrics.NAME`` or ``config.NAME``, with ``-`` for descending;
        runs without the value come last. ``limit`` and ``offset`` page through the result.
        ``group`` keeps the trainings of one walk-forward evaluation (its group run's id),
        ``study`` the trials of one study.
        """
        statuses = _statuses(status)
        if limit is not None and (isinstance(limit, bool) or limit < 0):
            raise ValueError(f"limit must be a non-negative integer, got {limit!r}")
        if offset < 0:
            raise ValueError(f"offset must be a non-negative integer, got {offset!r}")
        runs = [
            run
            for run in self._summaries(query)
            if (experiment is None or run.experiment == experiment)
            and (statuses is None or run.status in statuses)
            and (group is None or run.config.get("group_id") == group)
            and (study is None or run.config.get("study") == study)
        ]
        runs = _ordered(runs, order_by or "-created_at")
        return runs[offset : None if limit is None else offset + limit]

    def get_run(self, run_id: str) -> RunDetail:
        """One run in full; :class:`RunNotFoundError` if there is none."""
        with self._lock:
            self._reader.refresh()
            detail = self._reader.get_run(_check_run_id(run_id))
        if detail is None:
            raise RunNotFoundError(f"no run {run_id!r} in {self.location}")
        detail = self._live(detail)
        detail.duration = detail.duration_seconds
        return detail

    def get_metric_series(self, run_id: str, name: str) -> MetricSeries:
        """The values of metric ``name`` of run ``run_id`` in step order."""
        detail = self.get_run(run_id)
        with self._lock:
            series = self._reader.get_series(run_id, name)
        if series is None:
            have = ", ".join(detail.metrics) or "none"
            raise RunNotFoundError(f"run {run_id} has no metric {name!r} (it has: {have})")
        return series

    def get_metrics(
        self, run_id: str, names: Sequence[str] | None = None
    ) -> dict[str, MetricSeries]:
        """Several metric series of one run at once (all of them by default); names the run
        lacks are left out."""
        detail = self.get_run(run_id)
        wanted = detail.metrics if names is None else [n for n in names if n in detail.metrics]
        out: dict[str, MetricSeries] = {}
        with self._lock:
            for name in wanted:
                series = self._reader.get_series(run_id, name)
                if series is not None:
                    out[name] = series
        return out

    def compare_runs(
        self, run_ids: Sequence[str], metrics: Sequence[str] | None = None
    ) -> RunComparison:
        """The runs side by side: each metric's final value (else its last tracked value),
        the best run per metric, and the config keys that differ."""
        if isinstance(run_ids, str) or len(run_ids) < 1:
            raise ValueError("compare_runs needs a list of one or more run ids")
        details = {run_id: self.get_run(run_id) for run_id in dict.fromkeys(run_ids)}
        names = list(metrics) if metrics else _union(d.final_metrics for d in details.values())
        table: dict[str, dict[str, float | None]] = {}
        for run_id, detail in details.items():
            row: dict[str, float | None] = {}
            for name in names:
                value = detail.final_metrics.get(name)
                if value is None and name in detail.metrics:
                    value = self.get_metric_series(run_id, name).last()
                row[name] = value
            table[run_id] = row
        best: dict[str, str] = {}
        for name in names:
            scored = [(v, r) for r, row in table.items() if (v := row[name]) is not None]
            if scored:
                pick = min if name in LOWER_IS_BETTER else max
                best[name] = pick(scored, key=lambda pair: pair[0])[1]
        return RunComparison(
            run_ids=list(details),
            metrics=names,
            table=table,
            best=best,
            config_diff=_config_diff({r: d.config for r, d in details.items()}),
            runs=dict(details),
        )

    def best_run(self, experiment: str, metric: str, mode: Mode = "max") -> RunSummary | None:
        """The completed run of ``experiment`` with the best final ``metric``, if any."""
        _check_mode(mode)
        return _best(self.list_runs(experiment=experiment), metric, mode)

    def delete_run(self, run_id: str, *, force: bool = False) -> None:
        """Delete a run and its data for good. A live run needs ``force=True``."""
        detail = self.get_run(run_id)
        if detail.status is ExperimentStatus.RUNNING and not force:
            raise TrackingError(
                f"run {run_id} is still running; finish it first or delete with force=True"
            )
        with self._lock:
            if not self._reader.delete_run(run_id):
                raise RunNotFoundError(f"no run {run_id!r} in {self.location}")


class ExperimentRepository:
    """The seed's async repository (``await get_experiment_repository()``).

    Each method runs :class:`SyncExperimentRepository`'s in a worker thread, so reading a large
    repository never stalls the event loop.
    """

    def __init__(self, sync: SyncExperimentRepository) -> None:
        self.sync = sync

    @property
    def location(self) -> str:
        """The repository's folder or ``aim://`` URL."""
        return self.sync.location

    async def list_experiments(
        self, metric: str = DEFAULT_METRIC, mode: Mode = "max"
    ) -> list[ExperimentSummary]:
        """See :meth:`SyncExperimentRepository.list_experiments`."""
        return await asyncio.to_thread(self.sync.list_experiments, metric, mode)

    async def list_runs(
        self,
        experiment: str | None = None,
        status: ExperimentStatus | str | Iterable[ExperimentStatus | str] | None = None,
        query: str | None = None,
        order_by: str | None = None,
        limit: int | None = None,
        offset: int = 0,
        *,
        group: str | None = None,
        study: str | None = None,
    ) -> list[RunSummary]:
        """See :meth:`SyncExperimentRepository.list_runs`."""
        return await asyncio.to_thread(
            lambda: self.sync.list_runs(
                experiment, status, query, order_by, limit, offset, group=group, study=study
            )
        )

    async def get_run(self, run_id: str) -> RunDetail:
        """See :meth:`SyncExperimentRepository.get_run`."""
        return await asyncio.to_thread(self.sync.get_run, run_id)

    async def get_metric_series(self, run_id: str, name: str) -> MetricSeries:
        """See :meth:`SyncExperimentRepository.get_metric_series`."""
        return await asyncio.to_thread(self.sync.get_metric_series, run_id, name)

    async def get_metrics(
        self, run_id: str, names: Sequence[str] | None = None
    ) -> dict[str, MetricSeries]:
        """See :meth:`SyncExperimentRepository.get_metrics`."""
        return await asyncio.to_thread(self.sync.get_metrics, run_id, names)

    async def compare_runs(
        self, run_ids: Sequence[str], metrics: Sequence[str] | None = None
    ) -> RunComparison:
        """See :meth:`SyncExperimentRepository.compare_runs`."""
        return await asyncio.to_thread(self.sync.compare_runs, run_ids, metrics)

    async def best_run(self, experiment: str, metric: str, mode: Mode = "max") -> RunSummary | None:
        """See :meth:`SyncExperimentRepository.best_run`."""
        return await asyncio.to_thread(self.sync.best_run, experiment, metric, mode)

    async def delete_run(self, run_id: str, *, force: bool = False) -> None:
        """See :meth:`SyncExperimentRepository.delete_run`."""
        await asyncio.to_thread(lambda: self.sync.delete_run(run_id, force=force))


_EPOCH = datetime.fromtimestamp(0, tz=UTC)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OSError):
        return True
    return True


def _activity(run: RunSummary) -> datetime:
    return max(t for t in (run.created_at, run.ended_at, run.heartbeat_at) if t is not None)


def _check_mode(mode: str) -> None:
    if mode not in ("max", "min"):
        raise ValueError(f"mode must be 'max' or 'min', got {mode!r}")


def _check_run_id(run_id: object) -> str:
    if not isinstance(run_id, str) or not run_id.isalnum() or len(run_id) > 64:
        raise ValueError(f"run id {run_id!r} is not allowed: expected an Aim run hash (hex)")
    return run_id


def _statuses(
    status: ExperimentStatus | str | Iterable[ExperimentStatus | str] | None,
) -> set[ExperimentStatus] | None:
    if status is None:
        return None
    if isinstance(status, str | ExperimentStatus):
        return {ExperimentStatus.parse(status)}
    return {ExperimentStatus.parse(s) for s in status}


def _best(runs: Iterable[RunSummary], metric: str, mode: str) -> RunSummary | None:
    scored = [
        run
        for run in runs
        if run.status is ExperimentStatus.COMPLETED
        and math.isfinite(run.final_metrics.get(metric, math.nan))
    ]
    if not scored:
        return None
    pick = max if mode == "max" else min
    return pick(scored, key=lambda run: run.final_metrics[metric])


def _sort_value(run: RunSummary, field: str) -> Any:
    if field.startswith("final_metrics."):
        return run.final_metrics.get(field.removeprefix("final_metrics."))
    if field.startswith("config."):
        value: Any = run.config
        for part in field.removeprefix("config.").split("."):
            value = value.get(part) if isinstance(value, Mapping) else None
        return value if isinstance(value, int | float | str) else None
    if field == "duration":
        return run.duration_seconds
    if field == "status":
        return run.status.value
    return getattr(run, field)


def _ordered(runs: list[RunSummary], order_by: str) -> list[RunSummary]:
    descending = order_by.startswith("-")
    field = order_by.lstrip("-+")
    if field not in _SORT_FIELDS and not field.startswith(("final_metrics.", "config.")):
        raise ValueError(
            f"order_by {order_by!r} is not allowed: use one of {', '.join(_SORT_FIELDS)}, "
            "final_metrics.NAME or config.NAME, with '-' in front for descending"
        )
    keyed = [(_sort_value(run, field), run) for run in runs]
    present = [(v, run) for v, run in keyed if v is not None]
    missing = [run for v, run in keyed if v is None]
    try:
        present.sort(key=lambda pair: pair[0], reverse=descending)
    except TypeError:  # mixed types in a config key: compare as text
        present.sort(key=lambda pair: str(pair[0]), reverse=descending)
    return [run for _, run in present] + missing


def _union(groups: Iterable[Mapping[str, Any]]) -> list[str]:
    names: dict[str, None] = {}
    for group in groups:
        names.update(dict.fromkeys(group))
    return list(names)


def _flatten(config: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in config.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            out.update(_flatten(value, f"{name}."))
        else:
            out[name] = value
    return out


def _config_diff(configs: Mapping[str, Mapping[str, Any]]) -> dict[str, dict[str, Any]]:
    flat = {run_id: _flatten(config) for run_id, config in configs.items()}
    keys = _union(flat.values())
    diff: dict[str, dict[str, Any]] = {}
    for key in keys:
        values = {run_id: flat[run_id].get(key) for run_id in flat}
        if len({repr(v) for v in values.values()}) > 1:
            diff[key] = values
    return diff
