"""The experiment repository: find, read, compare and delete tracked runs.

:class:`SyncExperimentRepository` holds the logic (for the CLI and the dashboard's callbacks);
:class:`ExperimentRepository` is the seed's async API over it. Both read through a
:class:`~agentic_trading.tracking.base.RunReader`, so they work with any tracking backend.
"""

from __future__ import annotations

import asyncio
import logging
import math
import threading
import time
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, Literal, TypeVar

from agentic_trading.config import Settings
from agentic_trading.liveness import Liveness
from agentic_trading.status import ExperimentStatus
from agentic_trading.tracking.base import RunReader
from agentic_trading.tracking.catalogue import (
    Condition,
    RunCatalogue,
    RunQuery,
    SyncReport,
    check_order_by,
    parse_condition,
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

logger = logging.getLogger("agentic_trading.tracking")

Mode = Literal["max", "min"]
R = TypeVar("R", bound=RunSummary)


class SyncExperimentRepository:
    """Every tracked run, read back; a run left ``running`` by a dead process reads ``crashed``.

    A ``running`` run is ``crashed`` by the rule of :mod:`agentic_trading.liveness`: closed
    without a status, its process gone (same host, pid no longer alive), or its heartbeat older
    than ``ML_HEARTBEAT_TIMEOUT`` seconds.
    """

    def __init__(
        self, reader: RunReader, settings: Settings, catalogue: RunCatalogue | None = None
    ) -> None:
        self._reader = reader
        self._catalogue = catalogue
        self._liveness = Liveness(settings.ml_heartbeat_timeout)
        self._lock = threading.Lock()
        self._synced_at = -math.inf
        self._compared_at = time.monotonic()  # a new reader's first look compares lengths

    @property
    def catalogue(self) -> RunCatalogue | None:
        """The run catalogue lists are answered from, if there is one."""
        return self._catalogue

    @property
    def catalogue_location(self) -> str | None:
        """Where the run catalogue is (no password), or ``None`` without one."""
        return None if self._catalogue is None else self._catalogue.location

    def _caught_up(self) -> RunCatalogue | None:
        """The catalogue, caught up with the store at most every ``SYNC_SECONDS`` (runs written
        without it are added, deleted ones removed, running ones re-read)."""
        catalogue = self._catalogue
        if catalogue is None:
            return None
        if time.monotonic() - self._synced_at >= SYNC_SECONDS:
            with self._lock:
                self._reader.refresh()
                ids = self._reader.run_ids()
                thorough = time.monotonic() - self._compared_at >= THOROUGH_SECONDS
                report = catalogue.sync(ids, self._reader.get_run, thorough=thorough)
                if thorough:
                    self._compared_at = time.monotonic()
            # A run the store could not give yet (being created) is looked at again soon.
            self._synced_at = time.monotonic() - (SYNC_SECONDS - 1.0 if report.unreadable else 0)
            if report.added or report.removed:
                logger.info("run catalogue caught up with %s: %s", self.location, report)
        return catalogue

    def current_catalogue(self) -> RunCatalogue | None:
        """The run catalogue, caught up with the tracking store (at most ``SYNC_SECONDS``
        behind), or ``None`` without one."""
        return self._caught_up()

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

    def _summaries(self, query: str | None = None) -> list[RunSummary]:
        with self._lock:
            self._reader.refresh()
            runs = self._reader.list_runs(query)
        return [self._live(run) for run in runs]

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
        catalogue = self._caught_up()
        if catalogue is not None:
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
                for e in catalogue.experiments(metric, mode, self._dead(catalogue))
            ]
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
        since: datetime | None = None,
        where: Sequence[str] = (),
    ) -> list[RunSummary]:
        """Runs, newest first unless ``order_by`` says otherwise.

        ``status`` is one status or several; ``query`` is AimQL (``run.hparams.gamma > 0.9``);
        ``order_by`` is ``created_at``, ``ended_at``, ``duration``, ``experiment``, ``status``,
        ``run_id``, ``final_metrics.NAME`` or ``config.NAME``, with ``-`` for descending;
        runs without the value come last. ``limit`` and ``offset`` page through the result.
        ``group`` keeps the trainings of one walk-forward evaluation (its group run's id),
        ``study`` the trials of one study, ``since`` those created from then on; ``where``
        holds conditions such as ``final_metrics.sharpe_ratio > 1`` or
        ``config.agent_type == PPO``. With a catalogue (and no AimQL) this is one SQL query.
        """
        selection = self._selection(experiment, status, group, study, since, where)
        order = check_order_by(order_by or "-created_at")
        if limit is not None and (isinstance(limit, bool) or limit < 0):
            raise ValueError(f"limit must be a non-negative integer, got {limit!r}")
        if offset < 0:
            raise ValueError(f"offset must be a non-negative integer, got {offset!r}")
        catalogue = None if query else self._caught_up()
        if catalogue is not None:
            selection.order_by, selection.limit, selection.offset = order, limit, offset
            selection.dead = self._dead(catalogue)
            return [self._live(run) for run in catalogue.list_runs(selection)]
        runs = _ordered(self._selected(query, selection), order)
        return runs[offset : None if limit is None else offset + limit]

    def count_runs(
        self,
        experiment: str | None = None,
        status: ExperimentStatus | str | Iterable[ExperimentStatus | str] | None = None,
        query: str | None = None,
        *,
        group: str | None = None,
        study: str | None = None,
        since: datetime | None = None,
        where: Sequence[str] = (),
    ) -> int:
        """How many runs :meth:`list_runs` with these filters lists over all pages."""
        selection = self._selection(experiment, status, group, study, since, where)
        catalogue = None if query else self._caught_up()
        if catalogue is not None:
            selection.dead = self._dead(catalogue)
            return catalogue.count_runs(selection)
        return len(self._selected(query, selection))

    def _dead(self, catalogue: RunCatalogue) -> set[str]:
        """Running rows of this host whose process is gone: crashed, as ``_live`` says."""
        return {
            run_id
            for run_id, host, pid in catalogue.running_processes()
            if self._liveness.process_gone(host, pid)
        }

    def _selection(
        self,
        experiment: str | None,
        status: ExperimentStatus | str | Iterable[ExperimentStatus | str] | None,
        group: str | None,
        study: str | None,
        since: datetime | None,
        where: Sequence[str],
    ) -> RunQuery:
        if isinstance(where, str):
            where = [where]
        return RunQuery(
            experiment=experiment,
            statuses=_statuses(status),
            study=study,
            group=group,
            since=since,
            conditions=[parse_condition(text) for text in where],
        )

    def _selected(self, query: str | None, selection: RunQuery) -> list[RunSummary]:
        """The Aim-only path: every run read, then filtered here."""
        return [
            run
            for run in self._summaries(query)
            if (selection.experiment is None or run.experiment == selection.experiment)
            and (selection.statuses is None or run.status in selection.statuses)
            and (selection.group is None or run.config.get("group_id") == selection.group)
            and (selection.study is None or run.config.get("study") == selection.study)
            and (selection.since is None or run.created_at >= selection.since)
            and all(_holds(run, condition) for condition in selection.conditions)
        ]

    def experiment_names(self) -> list[str]:
        """Every experiment name, sorted."""
        catalogue = self._caught_up()
        if catalogue is not None:
            return catalogue.experiment_names()
        return sorted({run.experiment for run in self._summaries()})

    def metric_names(self) -> list[str]:
        """Every final metric name any run has, sorted."""
        catalogue = self._caught_up()
        if catalogue is not None:
            return catalogue.metric_names()
        return sorted({name for run in self._summaries() for name in run.final_metrics})

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
        """These runs' summaries in this order: one query to the catalogue, else (and for any
        it lacks) each read from the store; :class:`RunNotFoundError` for an unknown id."""
        found: dict[str, RunSummary] = {}
        catalogue = self._caught_up()
        if catalogue is not None:
            selection = RunQuery(run_ids=run_ids, dead=self._dead(catalogue))
            found = {run.run_id: self._live(run) for run in catalogue.list_runs(selection)}
        return {run_id: found.get(run_id) or self.get_run(run_id) for run_id in run_ids}

    def best_run(self, experiment: str, metric: str, mode: Mode = "max") -> RunSummary | None:
        """The completed run of ``experiment`` with the best final ``metric``, if any."""
        _check_mode(mode)
        catalogue = self._caught_up()
        if catalogue is not None:
            return catalogue.best_run(experiment, metric, mode)
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
            if self._catalogue is not None:
                self._catalogue.delete_run(run_id)


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
        since: datetime | None = None,
        where: Sequence[str] = (),
    ) -> list[RunSummary]:
        """See :meth:`SyncExperimentRepository.list_runs`."""
        return await asyncio.to_thread(
            lambda: self.sync.list_runs(
                experiment,
                status,
                query,
                order_by,
                limit,
                offset,
                group=group,
                study=study,
                since=since,
                where=where,
            )
        )

    async def count_runs(
        self,
        experiment: str | None = None,
        status: ExperimentStatus | str | Iterable[ExperimentStatus | str] | None = None,
        query: str | None = None,
        *,
        group: str | None = None,
        study: str | None = None,
        since: datetime | None = None,
        where: Sequence[str] = (),
    ) -> int:
        """See :meth:`SyncExperimentRepository.count_runs`."""
        return await asyncio.to_thread(
            lambda: self.sync.count_runs(
                experiment, status, query, group=group, study=study, since=since, where=where
            )
        )

    async def reindex(self) -> SyncReport:
        """See :meth:`SyncExperimentRepository.reindex`."""
        return await asyncio.to_thread(self.sync.reindex)

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


def _holds(run: RunSummary, condition: Condition) -> bool:
    """``condition`` evaluated on a run read from the store (the catalogue does it in SQL)."""
    if condition.scope == "final_metrics":
        value: Any = run.final_metrics.get(condition.name)
    else:
        value = run.config
        for part in condition.name.split("."):
            value = value.get(part) if isinstance(value, Mapping) else None
        value = _scalar_value(value)
    if value is None:
        return False
    wanted = condition.value
    if isinstance(wanted, float) != isinstance(value, float):
        return False
    return bool(
        {
            "==": value == wanted,
            "!=": value != wanted,
            "<": value < wanted,
            "<=": value <= wanted,
            ">": value > wanted,
            ">=": value >= wanted,
        }[condition.operator]
    )


def _scalar_value(value: Any) -> float | str | None:
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        return value
    return None


def _best(runs: Iterable[RunSummary], metric: str, mode: str) -> RunSummary | None:
    scored = [
        run
        for run in runs
        if run.status is ExperimentStatus.COMPLETED
        and math.isfinite(run.final_metrics.get(metric, math.nan))
    ]
    if not scored:
        return None
    scored.sort(key=lambda run: run.run_id)
    scored.sort(key=lambda run: run.created_at, reverse=True)  # a tie goes to the newest
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
    descending = check_order_by(order_by).startswith("-")
    field = order_by.lstrip("-+")
    # Equal values, and runs without one, stay newest first (then by id), as in the catalogue.
    runs = sorted(runs, key=lambda run: run.run_id)
    runs.sort(key=lambda run: run.created_at, reverse=True)
    numbers: list[tuple[float, RunSummary]] = []
    texts: list[tuple[str, RunSummary]] = []
    missing: list[RunSummary] = []
    for run in runs:
        value = _sort_value(run, field)
        if isinstance(value, int | float):
            numbers.append((float(value), run))
        elif isinstance(value, str):
            texts.append((value, run))
        elif isinstance(value, datetime):
            numbers.append((value.timestamp(), run))
        else:
            missing.append(run)
    numbers.sort(key=lambda pair: pair[0], reverse=descending)
    texts.sort(key=lambda pair: pair[0], reverse=descending)
    return [run for _, run in numbers] + [run for _, run in texts] + missing


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
