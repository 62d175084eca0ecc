"""The run catalogue: one row per run in SQL, kept by the tracker's writer, read by the
repository for fast lists, sorts, filters and per-experiment summaries.

Every statement is built with SQLAlchemy Core and bound parameters; sort keys and filters are
parsed against what exists (``RunQuery``), never spliced into SQL. The catalogue is derived
data: :meth:`RunCatalogue.sync` and ``agentic-trading experiments reindex`` rebuild it from the
tracking store.
"""

from __future__ import annotations

import math
import time
from collections.abc import Collection, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from agentic_trading.config import mask_url
from agentic_trading.liveness import Liveness
from agentic_trading.status import ExperimentStatus
from agentic_trading.tracking.catalogue import schema as t
from agentic_trading.tracking.catalogue.database import CatalogueUnavailableError, connect
from agentic_trading.tracking.catalogue.query import RunQuery
from agentic_trading.tracking.errors import describe
from agentic_trading.tracking.records import RunSummary

__all__ = ["RunCatalogue", "SyncReport"]

#: Rows a catch-up or reindex writes after which the tables' statistics are refreshed.
ANALYZE_AFTER = 1000


@dataclass
class SyncReport:
    """What a catch-up or reindex changed."""

    added: int = 0
    fixed: int = 0
    removed: int = 0
    unreadable: int = 0  # runs the store lists but could not give yet (being created)

    def __str__(self) -> str:
        return f"{self.added} added, {self.fixed} fixed, {self.removed} removed"


def _epoch(moment: datetime | None) -> float | None:
    return None if moment is None else moment.timestamp()


def _moment(seconds: float | None) -> datetime | None:
    return None if seconds is None else datetime.fromtimestamp(seconds, tz=UTC)


def _scalars(
    config: Mapping[str, Any], prefix: str = ""
) -> dict[str, tuple[float | None, str | None]]:
    """Config flattened to ``key -> (number, text)`` for sorting and filtering."""
    out: dict[str, tuple[float | None, str | None]] = {}
    for key, value in config.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            out.update(_scalars(value, f"{name}."))
        elif isinstance(value, bool):
            out[name] = (float(value), str(value).lower())
        elif isinstance(value, int | float) and math.isfinite(value):
            out[name] = (float(value), None)
        elif isinstance(value, str) and len(value) <= 255:
            out[name] = (None, value)
    return {k: v for k, v in out.items() if len(k) <= 255}


class RunCatalogue:
    """The run table and its helpers in the database at ``url``.

    :param heartbeat_timeout: a ``running`` run whose heartbeat is older reads ``crashed``
        (``ML_HEARTBEAT_TIMEOUT``), in SQL as in the repository's own rule.
    """

    def __init__(self, url: str, heartbeat_timeout: float = 30.0) -> None:
        from agentic_trading.common.databases import sqlalchemy_url

        self.url = sqlalchemy_url(url)
        self.location = mask_url(self.url)
        self.liveness = Liveness(heartbeat_timeout)
        self._engine: Engine | None = None

    @property
    def engine(self) -> Engine:
        """The database engine, connected (and the schema upgraded) on first use."""
        if self._engine is None:
            self._engine = connect(self.url)
        return self._engine

    @contextmanager
    def reading(self) -> Iterator[sa.Connection]:
        """A connection for reads; :class:`CatalogueUnavailableError` naming the database if
        it does not answer."""
        with self._unavailable(), self.engine.connect() as db:
            yield db

    @contextmanager
    def writing(self) -> Iterator[sa.Connection]:
        """A transaction, committed at the end; errors as :meth:`reading`."""
        with self._unavailable(), self.engine.begin() as db:
            yield db

    @contextmanager
    def _unavailable(self) -> Iterator[None]:
        try:
            yield
        except sa.exc.OperationalError as exc:
            raise CatalogueUnavailableError(
                f"the run catalogue at {self.location} does not answer: {describe(exc)}"
            ) from None

    # --- the writer's side: one statement per change ----------------------------------------

    def open_run(
        self,
        run_id: str,
        experiment: str,
        config: Mapping[str, Any],
        tags: Sequence[str],
        created_at: float,
        host: str | None,
        pid: int | None,
    ) -> None:
        """A new run, ``running``."""
        row = {
            "run_id": run_id,
            "experiment": experiment,
            "status": ExperimentStatus.RUNNING.value,
            "created_at": created_at,
            "ended_at": None,
            "heartbeat_at": created_at,
            "host": host,
            "pid": pid,
            "error": None,
            "config": dict(config),
            "final_metrics": {},
            "params": {},
            "tags": list(tags),
            "artifacts": {},
        }
        with self.writing() as db:
            self._write(db, [row])

    def heartbeat(self, run_ids: Iterable[str], at: float) -> None:
        """The writer is alive at ``at`` for these runs."""
        ids = list(run_ids)
        if not ids:
            return
        with self.writing() as db:
            db.execute(
                sa.update(t.runs)
                .where(t.runs.c.run_id.in_(ids))
                .values(heartbeat_at=at, updated_at=time.time())
            )

    def close_run(
        self,
        run_id: str,
        status: ExperimentStatus,
        final_metrics: Mapping[str, float],
        error: str | None,
        ended_at: float,
    ) -> None:
        """The final record of a run."""
        with self.writing() as db:
            db.execute(
                sa.update(t.runs)
                .where(t.runs.c.run_id == run_id)
                .values(
                    status=status.value,
                    final_metrics=dict(final_metrics),
                    error=error,
                    ended_at=ended_at,
                    heartbeat_at=ended_at,
                    updated_at=time.time(),
                )
            )
            self._metrics(db, run_id, final_metrics)

    def update(self, run_id: str, **changes: Any) -> None:
        """Merge ``params``, ``tags`` or ``artifacts`` into a run's row."""
        with self.writing() as db:
            row = db.execute(sa.select(t.runs).where(t.runs.c.run_id == run_id)).mappings().first()
            if row is None:
                return
            values: dict[str, Any] = {"updated_at": time.time()}
            if "params" in changes:
                values["params"] = {**row["params"], **changes["params"]}
            if "tags" in changes:
                values["tags"] = list(dict.fromkeys([*row["tags"], *changes["tags"]]))
            if "artifacts" in changes:
                values["artifacts"] = {**row["artifacts"], **changes["artifacts"]}
            db.execute(sa.update(t.runs).where(t.runs.c.run_id == run_id).values(**values))

    def delete_run(self, run_id: str) -> None:
        """Forget a deleted run."""
        with self.writing() as db:
            for table in (t.run_metrics, t.run_config, t.runs):
                db.execute(sa.delete(table).where(table.c.run_id == run_id))

    # --- whole records: catch-up, reindex, bulk fill ----------------------------------------

    def upsert(self, runs: Iterable[RunSummary]) -> int:
        """Write these runs' rows as they are (replacing any), in one transaction."""
        rows = list({row["run_id"]: row for row in map(_row, runs)}.values())
        for attempt in range(3):
            try:
                with self.writing() as db:
                    self._write(db, rows)
                return len(rows)
            except sa.exc.IntegrityError:  # a writer inserted one of them meanwhile: again
                if attempt == 2:
                    raise
        return 0

    def _write(self, db: Any, rows: list[dict[str, Any]]) -> None:
        """Replace these runs' rows: a few statements for the whole batch."""
        if not rows:
            return
        ids = [row["run_id"] for row in rows]
        for table in (t.run_metrics, t.run_config, t.runs):
            db.execute(sa.delete(table).where(table.c.run_id.in_(ids)))
        now = time.time()
        db.execute(
            sa.insert(t.runs), [{**row, **_links(row["config"]), "updated_at": now} for row in rows]
        )
        scalars = [
            {"run_id": row["run_id"], "key": key, "number": number, "text": text}
            for row in rows
            for key, (number, text) in _scalars(row["config"]).items()
        ]
        if scalars:
            db.execute(sa.insert(t.run_config), scalars)
        metrics = [m for row in rows for m in _metric_rows(row["run_id"], row["final_metrics"])]
        if metrics:
            db.execute(sa.insert(t.run_metrics), metrics)

    def _metrics(self, db: Any, run_id: str, final: Mapping[str, float]) -> None:
        db.execute(sa.delete(t.run_metrics).where(t.run_metrics.c.run_id == run_id))
        rows = _metric_rows(run_id, final)
        if rows:
            db.execute(sa.insert(t.run_metrics), rows)

    def run_ids(self) -> set[str]:
        """Every run the catalogue holds."""
        with self.reading() as db:
            return set(db.execute(sa.select(t.runs.c.run_id)).scalars())

    def running_ids(self) -> set[str]:
        """Runs the catalogue believes are running (the only ones that still change)."""
        with self.reading() as db:
            query = sa.select(t.runs.c.run_id).where(t.runs.c.status == "running")
            return set(db.execute(query).scalars())

    def sync(
        self, store_ids: set[str], read: Any, *, full: bool = False, thorough: bool = True
    ) -> SyncReport:
        """Catch up with the tracking store: add the runs it has and the catalogue lacks,
        remove those it no longer has, re-read the ones still running (or, with ``full``,
        every run) and fix those that differ. ``read(run_id)`` returns a ``RunSummary`` or
        ``None``. Without ``thorough`` the two lists of runs are compared only when their
        lengths differ (reading 100,000 ids takes a few hundred milliseconds)."""
        report = SyncReport()
        c = t.runs.c
        with self.reading() as db:
            count = db.execute(sa.select(sa.func.count()).select_from(t.runs)).scalar_one()
            running = set(db.execute(sa.select(c.run_id).where(c.status == "running")).scalars())
        new: set[str] = set()
        if full or thorough or count != len(store_ids) or not running <= store_ids:
            with self.reading() as db:
                ids = set(db.execute(sa.select(c.run_id)).scalars())
            removed, new = ids - store_ids, store_ids - ids
            for run_id in removed:
                self.delete_run(run_id)
            report.removed = len(removed)
            if full:
                running = ids
        again = running & store_ids
        known = self._records(None if full else again) if again else {}
        batch: list[RunSummary] = []
        for run_id in sorted(new | again):
            summary = read(run_id)
            if summary is None:
                report.unreadable += 1
                continue
            if run_id not in known:
                report.added += 1
            elif _differs(known[run_id], _row(summary)):
                report.fixed += 1
            else:
                continue
            batch.append(summary)
            if len(batch) >= 500:
                self.upsert(batch)
                batch = []
        self.upsert(batch)
        if report.added + report.fixed >= ANALYZE_AFTER:
            self.analyze()
        return report

    def analyze(self) -> None:
        """Refresh the database's statistics of the run tables (after a bulk write, so the
        planner picks the indexes; PostgreSQL's autovacuum does it too, later)."""
        with self._unavailable(), self.engine.connect() as db:
            if db.dialect.name == "postgresql":
                db = db.execution_options(isolation_level="AUTOCOMMIT")
                db.execute(sa.text("ANALYZE runs, run_metrics, run_config"))
            else:
                db.execute(sa.text("ANALYZE"))
                db.commit()

    def _records(self, run_ids: set[str] | None) -> dict[str, Any]:
        statement = sa.select(t.runs)
        if run_ids is not None:
            statement = statement.where(t.runs.c.run_id.in_(sorted(run_ids)))
        with self.reading() as db:
            return {row["run_id"]: row for row in db.execute(statement).mappings()}

    # --- the reader's side -------------------------------------------------------------------

    def _effective_status(self, now: float, dead: Collection[str] = ()) -> Any:
        """The status a reader sees: ``running`` without a heartbeat for the timeout, closed
        without a final status, or whose process is known gone (``dead``), is ``crashed``."""
        c = t.runs.c
        signs = [
            c.ended_at.is_not(None),
            c.heartbeat_at.is_(None),
            c.heartbeat_at < self.liveness.stale_before(now),
        ]
        if dead:
            signs.append(c.run_id.in_(sorted(dead)))
        stale = sa.and_(c.status == "running", sa.or_(*signs))
        return sa.case((stale, sa.literal("crashed")), else_=c.status)

    def running_processes(self) -> list[tuple[str, str | None, int | None]]:
        """``(run_id, host, pid)`` of every row still ``running``: the repository checks which
        processes are gone on its host."""
        c = t.runs.c
        with self.reading() as db:
            rows = db.execute(sa.select(c.run_id, c.host, c.pid).where(c.status == "running"))
            return [(row[0], row[1], row[2]) for row in rows]

    def registered_runs(self) -> dict[str, list[str]]:
        """Runs behind a model version of the registry: run id -> ``NAME vN``."""
        v = t.model_versions.c
        found: dict[str, list[str]] = {}
        with self.reading() as db:
            for run_id, name, version in db.execute(sa.select(v.run_id, v.name, v.version)):
                found.setdefault(run_id, []).append(f"{name} v{version}")
        return found

    def dead_here(self) -> set[str]:
        """Running rows of this host whose process is gone: they read ``crashed``."""
        return {
            run_id
            for run_id, host, pid in self.running_processes()
            if self.liveness.process_gone(host, pid)
        }

    def ended_since(self, since: float, dead: Collection[str] = ()) -> list[RunSummary]:
        """Runs that ended, or read ``crashed``, with a change at or after ``since`` (Unix
        seconds), each with the status a reader sees: what an alert watcher looks at."""
        c = t.runs.c
        status = self._effective_status(time.time(), dead)
        statement = sa.select(t.runs, status.label("effective_status")).where(
            status.not_in(["running", "pending"]), c.updated_at >= since
        )
        with self.reading() as db:
            return [
                _summary(row).model_copy(
                    update={"status": ExperimentStatus.parse(row["effective_status"])}
                )
                for row in db.execute(statement).mappings()
            ]

    def list_runs(self, query: RunQuery, dead: Collection[str] = ()) -> list[RunSummary]:
        """The runs ``query`` selects, in its order, one page; ``dead`` are running runs whose
        process is known gone (they read crashed)."""
        metric = query.sort_metric
        if metric is None or query.limit is None:
            return self._page(self._select(query, dead), query.limit, query.offset)
        # Sorted by a final metric, a page is read in two parts so that the metric's index
        # serves each: the runs that have it, by value; then those without it, newest first.
        having = self._page(self._select(query, dead, part="with"), query.limit, query.offset)
        if len(having) == query.limit:
            return having
        # The page passed the last run with the metric: how many there are says where next.
        with_count = (
            query.offset + len(having) if having else self.count_runs(query, dead, part="with")
        )
        rest = self._select(query, dead, part="without")
        return having + self._page(
            rest, query.limit - len(having), max(0, query.offset - with_count)
        )

    def _page(self, statement: Any, limit: int | None, offset: int) -> list[RunSummary]:
        if limit is not None:
            statement = statement.limit(limit)
        if offset:
            statement = statement.offset(offset)
        with self.reading() as db:
            return [_summary(row) for row in db.execute(statement).mappings()]

    def count_runs(self, query: RunQuery, dead: Collection[str] = (), *, part: str = "all") -> int:
        """How many runs ``query`` selects (every page)."""
        inner = self._select(query, dead, ordered=False, part=part).subquery()
        with self.reading() as db:
            return int(db.execute(sa.select(sa.func.count()).select_from(inner)).scalar_one())

    def _select(
        self, query: RunQuery, dead: Collection[str], *, ordered: bool = True, part: str = "all"
    ) -> Any:
        """``part``: ``all`` runs, or (sorting by a final metric) those ``with`` or
        ``without`` it."""
        c = t.runs.c
        status = self._effective_status(time.time(), dead)
        statement = sa.select(t.runs, status.label("effective_status")).where(*query.where(status))
        if part == "without":
            m = t.run_metrics.c
            has = sa.exists().where(m.run_id == c.run_id, m.name == query.sort_metric)
            statement = statement.where(~has)
        elif part == "with" and not ordered:
            statement = query.ordered(statement, status, inner=True).order_by(None)
        if ordered:
            if part == "without":
                query = RunQuery(order_by="-created_at")
            statement = query.ordered(statement, status, inner=part == "with")
        return statement

    def experiment_names(self) -> list[str]:
        """Every experiment name, sorted."""
        with self.reading() as db:
            statement = sa.select(t.runs.c.experiment).distinct().order_by(t.runs.c.experiment)
            return [str(name) for name in db.execute(statement).scalars()]

    def metric_names(self) -> list[str]:
        """Every final metric name any run has, sorted."""
        with self.reading() as db:
            statement = sa.select(t.run_metrics.c.name).distinct().order_by(t.run_metrics.c.name)
            return [str(name) for name in db.execute(statement).scalars()]

    def experiments(
        self, metric: str, mode: str, dead: Collection[str] = ()
    ) -> list[dict[str, Any]]:
        """Per experiment: run count, count per (effective) status, last activity, and the best
        final ``metric`` among completed runs (``mode`` max or min) with its run; ``dead``
        are running runs whose process is known gone."""
        c = t.runs.c
        now = time.time()
        status = self._effective_status(now, dead).label("status")
        activity = sa.func.max(sa.func.coalesce(c.ended_at, c.heartbeat_at, c.created_at))
        counts = sa.select(
            c.experiment, status, sa.func.count().label("n"), activity.label("last")
        ).group_by(c.experiment, status)
        m = t.run_metrics.c
        order = m.value.desc() if mode == "max" else m.value.asc()
        ranked = (
            sa.select(
                c.experiment,
                c.run_id,
                m.value,
                sa.func.row_number()
                .over(partition_by=c.experiment, order_by=(order, c.created_at.desc(), c.run_id))
                .label("rank"),
            )
            .join(t.run_metrics, m.run_id == c.run_id)
            .where(m.name == metric, c.status == "completed")
            .subquery()
        )
        best = sa.select(ranked.c.experiment, ranked.c.run_id, ranked.c.value).where(
            ranked.c.rank == 1
        )
        out: dict[str, dict[str, Any]] = {}
        with self.reading() as db:
            for row in db.execute(counts).mappings():
                entry = out.setdefault(
                    row["experiment"], {"name": row["experiment"], "run_count": 0,
                                        "status_counts": {}, "last": 0.0}
                )  # fmt: skip
                entry["run_count"] += row["n"]
                entry["status_counts"][row["status"]] = row["n"]
                entry["last"] = max(entry["last"], row["last"] or 0.0)
            for row in db.execute(best).mappings():
                if row["experiment"] in out:
                    out[row["experiment"]]["best_value"] = row["value"]
                    out[row["experiment"]]["best_run_id"] = row["run_id"]
        return sorted(out.values(), key=lambda e: e["last"], reverse=True)

    def best_run(self, experiment: str, metric: str, mode: str) -> RunSummary | None:
        """The completed run of ``experiment`` with the best final ``metric``."""
        m = t.run_metrics.c
        c = t.runs.c
        order = m.value.desc() if mode == "max" else m.value.asc()
        statement = (
            sa.select(t.runs, c.status.label("effective_status"))
            .join(t.run_metrics, m.run_id == c.run_id)
            .where(c.experiment == experiment, c.status == "completed", m.name == metric)
            .order_by(order, c.created_at.desc(), c.run_id)  # a tie goes to the newest
            .limit(1)
        )
        with self.reading() as db:
            row = db.execute(statement).mappings().first()
        return None if row is None else _summary(row)


_COMPARED = ("experiment", "status", "final_metrics", "error", "params", "tags")


def _metric_rows(run_id: str, final: Mapping[str, Any]) -> list[dict[str, Any]]:
    return [
        {"run_id": run_id, "name": name[:128], "value": float(value)}
        for name, value in final.items()
        if isinstance(value, int | float) and math.isfinite(value)
    ]


def _differs(stored: Mapping[str, Any], fresh: Mapping[str, Any]) -> bool:
    return any(stored[key] != fresh[key] for key in _COMPARED)


def _links(config: Mapping[str, Any]) -> dict[str, Any]:
    """The study, trial and evaluation group a run's config names, as their own columns."""
    study, trial, group = config.get("study"), config.get("trial"), config.get("group_id")
    return {
        "study": study if isinstance(study, str) else None,
        "trial": trial if isinstance(trial, int) and not isinstance(trial, bool) else None,
        "group_id": group if isinstance(group, str) else None,
    }


def _row(run: RunSummary) -> dict[str, Any]:
    config = run.config or {}
    return {
        "run_id": run.run_id,
        "experiment": run.experiment,
        "status": run.status.value,
        "created_at": run.created_at.timestamp(),
        "ended_at": _epoch(run.ended_at),
        "heartbeat_at": _epoch(run.heartbeat_at),
        "host": run.host,
        "pid": run.pid,
        "error": run.error,
        "config": dict(config),
        "final_metrics": dict(run.final_metrics),
        "params": dict(run.params),
        "tags": list(run.tags),
        "artifacts": dict(run.artifacts),
    }


def _summary(row: Any) -> RunSummary:
    # The status as stored: the repository reads a running run as crashed by the same rules
    # the SQL filters with (and says why).
    return RunSummary(
        run_id=row["run_id"],
        experiment=row["experiment"],
        status=ExperimentStatus.parse(row["status"]),
        config=row["config"] or {},
        final_metrics=row["final_metrics"] or {},
        error=row["error"],
        tags=row["tags"] or [],
        artifacts=row["artifacts"] or {},
        params=row["params"] or {},
        created_at=_moment(row["created_at"]) or datetime.now(UTC),
        ended_at=_moment(row["ended_at"]),
        heartbeat_at=_moment(row["heartbeat_at"]),
        host=row["host"],
        pid=row["pid"],
    )
