"""The experiment repository: find, read, compare and delete tracked runs.

:class:`SyncExperimentRepository` holds the logic (for the CLI and the dashboard's callbacks);
:class:`ExperimentRepository` is the seed's async API over it. Both read through a
:class:`~agentic_trading.tracking.base.RunReader`, so they work with any tracking backend.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import math
import threading
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, Concatenate, Generic, Literal, ParamSpec, TypeVar

from agentic_trading.config import Settings
from agentic_trading.liveness import Liveness
from agentic_trading.status import ExperimentStatus
from agentic_trading.tracking.base import RunReader
from agentic_trading.tracking.catalogue import (
    RunCatalogue,
    RunQuery,
    StatusFilter,
    SyncReport,
    scratch_catalogue,
)
from agentic_trading.tracking.errors import RunNotFoundError, TrackingError
from agentic_trading.tracking.records import (
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
#: How often, at most, the catalogue is caught up with the tracking store before a read.
SYNC_SECONDS = 10.0
#: How often, at most, that catch-up compares the two lists of runs id by id; in between it
#: compares their lengths (reading 100,000 ids costs a few hundred milliseconds).
THOROUGH_SECONDS = 300.0
#: How long ``get_run`` looks again at a run the store has but could not give yet (a run
#: being created, or re-indexed while its writer writes).
UNREADABLE_WAIT_SECONDS = 2.0

logger = logging.getLogger("agentic_trading.tracking")

Mode = Literal["max", "min"]
R = TypeVar("R", bound=RunSummary)
P = ParamSpec("P")
T = TypeVar("T")


class SyncExperimentRepository:
    """Every tracked run, read back; a run left ``running`` by a dead process reads ``crashed``.

    A ``running`` run is ``crashed`` by the rule of :mod:`agentic_trading.liveness`: closed
    without a status, its process gone (same host, pid no longer alive), or its heartbeat older
    than ``ML_HEARTBEAT_TIMEOUT`` seconds.

    Lists, counts and summaries are answered by one path: a :class:`RunQuery` over the run
    catalogue. Without a catalogue (``ML_CATALOG_URL=none``, or an Aim server without one) a
    private one in a temporary folder stands in, caught up with the store before every read.
    """

    def __init__(
        self, reader: RunReader, settings: Settings, catalogue: RunCatalogue | None = None
    ) -> None:
        self._reader = reader
        self._catalogue = catalogue
        self._index = catalogue or scratch_catalogue(reader.location, settings.ml_heartbeat_timeout)
        self._liveness = Liveness(settings.ml_heartbeat_timeout)
        self._lock = threading.Lock()
        self._synced_at = -math.inf
        self._compared_at = time.monotonic()  # a new reader's first look compares lengths

    @property
    def catalogue(self) -> RunCatalogue | None:
        """The shared run catalogue lists are answered from, if there is one."""
        return self._catalogue

    @property
    def catalogue_location(self) -> str | None:
        """Where the run catalogue is (no password), or ``None`` without one."""
        return None if self._catalogue is None else self._catalogue.location

    def _caught_up(self) -> RunCatalogue:
        """The catalogue, caught up with the store (a shared one at most every
        ``SYNC_SECONDS``): runs written without it are added, deleted ones removed, running
        ones re-read."""
        index = self._index
        if self._catalogue is None:
            with self._lock:
                self._reader.refresh()
                runs = {run.run_id: run for run in self._reader.list_runs()}
                index.sync(set(runs), runs.get)
            return index
        if time.monotonic() - self._synced_at >= SYNC_SECONDS:
            with self._lock:
                self._reader.refresh()
                ids = self._reader.run_ids()
                thorough = time.monotonic() - self._compared_at >= THOROUGH_SECONDS
                report = index.sync(ids, self._reader.get_run, thorough=thorough)
                if thorough:
                    self._compared_at = time.monotonic()
            # A run the store could not give yet (being created) is looked at again soon.
            self._synced_at = time.monotonic() - (SYNC_SECONDS - 1.0 if report.unreadable else 0)
            if report.added or report.removed:
                logger.info("run catalogue caught up with %s: %s", self.location, report)
        return index

    def current_catalogue(self) -> RunCatalogue | None:
        """The shared run catalogue, caught up with the tracking store (at most
        ``SYNC_SECONDS`` behind), or ``None`` without one."""
        return None if self._catalogue is None else self._caught_up()

    def reindex(self) -> SyncReport:
        """Rebuild the catalogue from the tracking store: every run re-read; returns what was
        added, fixed and removed. :class:`TrackingError` without a catalogue."""
        if self._catalogue is None:
            raise TrackingError(
                f"there is no run catalogue for {self.location} (set ML_CATALOG_URL)"
            )
        with self._lock:
            self._reader.refresh()
            ids = self._reader.run_ids()
            report = self._catalogue.sync(ids, self._reader.get_run, full=True)
        self._synced_at = time.monotonic()
        return report

    @property
    def location(self) -> str:
        """The repository's folder or ``aim://`` URL."""
        return self._reader.location

    def _live(self, run: R) -> R:
        if run.status is not ExperimentStatus.RUNNING:
            return run
        reason = self._liveness.dead_reason(
            now=time.time(),
            heartbeat_at=run.heartbeat_at.timestamp() if run.heartbeat_at else None,
            host=run.host,
            pid=run.pid,
            closed=run.ended_at is not None,
        )
        if reason is None:
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
        index = self._caught_up()
        return [
            ExperimentSummary(
                name=e["name"],
                run_count=e["run_count"],
                status_counts=e["status_counts"],
                last_activity=datetime.fromtimestamp(e["last"], tz=UTC) if e["last"] else None,
                metric=metric,
                best_value=e.get("best_value"),
                best_run_id=e.get("best_run_id"),
            )
            for e in index.experiments(metric, mode, self._dead(index))
        ]

    def list_runs(
        self,
        experiment: str | None = None,
        status: StatusFilter = None,
        query: str | None = None,
        order_by: str | None = None,
        limit: int | None = None,
        offset: int = 0,
        *,
        group: str | None = None,
        study: str | None = None,
        since: datetime | None = None,
        where: Sequence[str] = (),
    ) -> list[RunSummary]:
        """Runs, newest first unless ``order_by`` says otherwise.

        ``status`` is one status or several; ``query`` is the backend's own query language
        (AimQL: ``run.hparams.gamma > 0.9``); ``order_by`` is ``created_at``, ``ended_at``,
        ``duration``, ``experiment``, ``status``, ``run_id``, ``final_metrics.NAME`` or
        ``config.NAME``, with ``-`` for descending; runs without the value come last.
        ``limit`` and ``offset`` page through the result. ``group`` keeps the trainings of one
        walk-forward evaluation (its group run's id), ``study`` the trials of one study,
        ``since`` those created from then on; ``where`` holds conditions such as
        ``final_metrics.sharpe_ratio > 1`` or ``config.agent_type == PPO``.
        """
        selection = RunQuery.parse(
            experiment, status, order_by=order_by, limit=limit, offset=offset,
            group=group, study=study, since=since, where=where,
        )  # fmt: skip
        return self.select(selection, query)

    def select(self, selection: RunQuery, query: str | None = None) -> list[RunSummary]:
        """The runs a parsed :class:`RunQuery` selects (and, with ``query``, the backend's
        query language matches), one page."""
        index = self._caught_up()
        if query:
            selection = selection.among(run.run_id for run in self._reader.list_runs(query))
        return [self._live(run) for run in index.list_runs(selection, self._dead(index))]

    def count_runs(
        self,
        experiment: str | None = None,
        status: StatusFilter = None,
        query: str | None = None,
        *,
        group: str | None = None,
        study: str | None = None,
        since: datetime | None = None,
        where: Sequence[str] = (),
    ) -> int:
        """How many runs :meth:`list_runs` with these filters lists over all pages."""
        selection = RunQuery.parse(
            experiment, status, group=group, study=study, since=since, where=where
        )
        index = self._caught_up()
        if query:
            selection = selection.among(run.run_id for run in self._reader.list_runs(query))
        return index.count_runs(selection, self._dead(index))

    def _dead(self, index: RunCatalogue) -> set[str]:
        """Running rows of this host whose process is gone: crashed, as ``_live`` says."""
        return index.dead_here()

    def experiment_names(self) -> list[str]:
        """Every experiment name, sorted."""
        return self._caught_up().experiment_names()

    def metric_names(self) -> list[str]:
        """Every final metric name any run has, sorted."""
        return self._caught_up().metric_names()

    def get_run(self, run_id: str) -> RunDetail:
        """One run in full; :class:`RunNotFoundError` if there is none."""
        run_id = _check_run_id(run_id)
        deadline = time.monotonic() + UNREADABLE_WAIT_SECONDS
        while True:
            with self._lock:
                self._reader.refresh()
                detail = self._reader.get_run(run_id)
                stored = detail is None and run_id in self._reader.run_ids()
            if not stored or time.monotonic() >= deadline:
                break
            time.sleep(0.1)
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
        ids = list(dict.fromkeys(_check_run_id(run_id) for run_id in run_ids))
        details = self._summaries_of(ids)
        names = list(metrics) if metrics else _union(d.final_metrics for d in details.values())
        table: dict[str, dict[str, float | None]] = {}
        for run_id, summary in details.items():
            row: dict[str, float | None] = {}
            for name in names:
                value = summary.final_metrics.get(name)
                if value is None:  # no final value: the last tracked one, read from the store
                    detail = summary if isinstance(summary, RunDetail) else self.get_run(run_id)
                    details[run_id] = detail
                    if name in detail.metrics:
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

    def _summaries_of(self, run_ids: list[str]) -> dict[str, RunSummary]:
        """These runs' summaries in this order: one query to the catalogue, and for any it
        lacks a read from the store; :class:`RunNotFoundError` for an unknown id."""
        index = self._caught_up()
        selection = RunQuery(run_ids=tuple(run_ids))
        found = {
            run.run_id: self._live(run) for run in index.list_runs(selection, self._dead(index))
        }
        return {run_id: found.get(run_id) or self.get_run(run_id) for run_id in run_ids}

    def best_run(self, experiment: str, metric: str, mode: Mode = "max") -> RunSummary | None:
        """The completed run of ``experiment`` with the best final ``metric``, if any."""
        _check_mode(mode)
        return self._caught_up().best_run(experiment, metric, mode)

    def delete_run(self, run_id: str, *, force: bool = False) -> int:
        """Delete a run for good: its record, series and artifacts; the bytes it freed. A live
        run needs ``force=True``.

        The catalogue's row goes first, so lists stop showing the run; then the backend's run,
        then its artifacts. Cut short, the run is either whole (readers catch the catalogue
        up with it again, and the next delete finishes) or gone but for artifact files that
        :meth:`finish_deletions` removes."""
        detail = self.get_run(run_id)
        if detail.status is ExperimentStatus.RUNNING and not force:
            raise TrackingError(
                f"run {run_id} is still running; finish it first or delete with force=True"
            )
        with self._lock:
            size = self._reader.stored_bytes(run_id)
            self._index.delete_run(run_id)
            if not self._reader.delete_run(run_id):
                raise RunNotFoundError(f"no run {run_id!r} in {self.location}")
        return size

    def stored_bytes(self, run_id: str) -> int:
        """Bytes that deleting the run would free (series and artifacts kept as files)."""
        return self._reader.stored_bytes(run_id)

    def finish_deletions(self) -> int:
        """Finish deletions cut short (artifact files of runs that are gone; MLflow runs
        deleted but not purged); the bytes freed."""
        with self._lock:
            return self._reader.finish_deletions()

    def registered_runs(self) -> dict[str, list[str]]:
        """Runs behind a registered model version: run id -> ``NAME vN`` (none without a
        catalogue: there is no registry then)."""
        return self._catalogue.registered_runs() if self._catalogue is not None else {}


class _InThread(Generic[P, T]):
    """A method of :class:`SyncExperimentRepository`, run in a worker thread and awaited."""

    def __init__(self, method: Callable[Concatenate[SyncExperimentRepository, P], T]) -> None:
        self.method = method

    def __get__(
        self, owner: ExperimentRepository | None, kind: type | None = None
    ) -> Callable[P, Awaitable[T]]:
        assert owner is not None, "an instance attribute"
        method = self.method

        @functools.wraps(method)
        async def call(*args: P.args, **kwargs: P.kwargs) -> T:
            return await asyncio.to_thread(method, owner.sync, *args, **kwargs)

        return call


class ExperimentRepository:
    """The seed's async repository (``await get_experiment_repository()``).

    Each method is :class:`SyncExperimentRepository`'s, run in a worker thread, so reading a
    large repository never stalls the event loop.
    """

    def __init__(self, sync: SyncExperimentRepository) -> None:
        self.sync = sync

    @property
    def location(self) -> str:
        """The repository's folder or ``aim://`` URL."""
        return self.sync.location

    list_experiments = _InThread(SyncExperimentRepository.list_experiments)
    list_runs = _InThread(SyncExperimentRepository.list_runs)
    select = _InThread(SyncExperimentRepository.select)
    count_runs = _InThread(SyncExperimentRepository.count_runs)
    reindex = _InThread(SyncExperimentRepository.reindex)
    get_run = _InThread(SyncExperimentRepository.get_run)
    get_metric_series = _InThread(SyncExperimentRepository.get_metric_series)
    get_metrics = _InThread(SyncExperimentRepository.get_metrics)
    compare_runs = _InThread(SyncExperimentRepository.compare_runs)
    best_run = _InThread(SyncExperimentRepository.best_run)
    delete_run = _InThread(SyncExperimentRepository.delete_run)
    finish_deletions = _InThread(SyncExperimentRepository.finish_deletions)
    stored_bytes = _InThread(SyncExperimentRepository.stored_bytes)
    registered_runs = _InThread(SyncExperimentRepository.registered_runs)


def _check_mode(mode: str) -> None:
    if mode not in ("max", "min"):
        raise ValueError(f"mode must be 'max' or 'min', got {mode!r}")


def _check_run_id(run_id: object) -> str:
    if not isinstance(run_id, str) or not run_id.isalnum() or len(run_id) > 64:
        raise ValueError(f"run id {run_id!r} is not allowed: expected an Aim run hash (hex)")
    return run_id


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
