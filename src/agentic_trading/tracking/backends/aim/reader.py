"""Reads runs back from an Aim repository: summaries in bulk, one run in full, metric series."""

from __future__ import annotations

import logging
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from agentic_trading.config import Settings
from agentic_trading.status import ExperimentStatus
from agentic_trading.tracking.artifact_files import (
    path_bytes,
    remove_artifacts,
    sweep_orphans,
    uri_path,
)
from agentic_trading.tracking.backends.aim._storage import (
    ATTR_CONFIG,
    ATTR_ENVIRONMENT,
    ATTR_ERROR,
    ATTR_FINAL,
    ATTR_HEARTBEAT,
    ATTR_HOST,
    ATTR_PID,
    ATTR_SKIPPED,
    ATTR_STATUS,
    ATTR_VALUES,
    AimIndexer,
    artifacts_uri,
    import_aim,
    repo_location,
)
from agentic_trading.tracking.errors import TrackingUnavailableError, describe
from agentic_trading.tracking.records import (
    RECORD_ATTRIBUTES,
    MetricSeries,
    RunDetail,
    RunSummary,
)

__all__ = ["AimRunReader", "check_query", "run_record"]

logger = logging.getLogger("agentic_trading.tracking")

MAX_QUERY_CHARS = 2_000
# AimQL is a Python expression that Aim evaluates in a restricted sandbox. We pass the user's
# text alone (never spliced into ours) and refuse what no run query needs: dunder names,
# lambdas, imports, statements and more than one line.
_FORBIDDEN = re.compile(r"__|\blambda\b|\bimport\b|[;\n\r]|:=|\bexec\b|\beval\b|\bopen\b")


def check_query(query: str) -> str:
    """``query`` if it may be passed to AimQL, else ``ValueError`` saying why not."""
    if not isinstance(query, str):
        raise ValueError(f"query must be a string of AimQL, got {type(query).__name__}")
    if len(query) > MAX_QUERY_CHARS:
        raise ValueError(f"query is {len(query)} characters; at most {MAX_QUERY_CHARS}")
    found = _FORBIDDEN.search(query)
    if found:
        raise ValueError(
            f"query {query!r} is not allowed: {found.group()!r} has no place in a run query "
            "(AimQL such as: run.hparams.learning_rate < 0.001 and run.status == 'completed')"
        )
    return query.strip()


class AimRunReader:
    """A :class:`~agentic_trading.tracking.base.RunReader` over an Aim repository's folder."""

    def __init__(self, settings: Settings) -> None:
        self.location = repo_location(settings)
        self._indexer = AimIndexer(self.location)
        self._repo: Any = None
        self._settled: set[str] = set()  # finished and indexed: they never change again
        self._artifacts_root = artifacts_uri(settings)

    def _open(self) -> Any:
        """The repository, or ``None`` if no run was ever written to a local path."""
        if self._repo is None:
            aim = import_aim()
            # Aim writes VERSION once a new repository's database is set up; opening it
            # earlier races the writer's set-up ("no such table: run").
            if not Path(self.location, ".aim", "VERSION").is_file():
                return None
            try:
                self._repo = aim.Repo(self.location)
            except Exception as exc:
                raise TrackingUnavailableError(
                    f"cannot open the Aim repository {self.location!r}: {describe(exc)}"
                ) from None
        return self._repo

    def refresh(self) -> None:
        # A fresh Repo per refresh: Aim's Repo keeps read-only rocksdb views whose contents
        # are fixed when opened, so a long-lived one misses what other writers added since.
        self._repo = None
        repo = self._open()
        if repo is None:
            return
        chunks = Path(repo.path, "meta", "chunks")
        progress = Path(repo.path, "meta", "progress")
        hashes = {p.name for p in chunks.iterdir() if p.is_dir()} if chunks.is_dir() else set()
        active = {p.name for p in progress.iterdir()} if progress.is_dir() else set()
        self._settled &= hashes
        candidates = sorted(hashes - self._settled)
        if candidates:
            index = repo.request_tree("meta", read_only=True)
            outdated = [h for h in candidates if self._indexer.is_outdated(h, index)]
            failed = set(outdated) - set(self._indexer.index(outdated))  # tried again next time
            self._settled |= {h for h in candidates if h not in active and h not in failed}
            repo.container_pool.clear()  # see the index as it is now

    def _records(self, hashes: set[str] | None) -> list[RunSummary]:
        repo = self._open()
        if repo is None:
            return []
        out = []
        chunks = _chunks(repo)  # held for the loop: Aim reopens the index per meta_tree access
        for props in repo.structured_db.runs():
            if hashes is not None and props.hash not in hashes:
                continue
            tree = _collect(chunks, props.hash)
            if tree is None:
                continue
            out.append(run_record(RunSummary, props, tree, props.hash))
        return out

    def run_ids(self) -> set[str]:
        repo = self._open()
        if repo is None:
            return set()
        chunks = Path(repo.path, "meta", "chunks")
        return {p.name for p in chunks.iterdir() if p.is_dir()} if chunks.is_dir() else set()

    def list_runs(self, query: str | None = None) -> list[RunSummary]:
        text = check_query(query) if query else None  # refused even before any run exists
        repo = self._open()
        if repo is None:
            return []
        hashes = None
        if text:
            try:
                hashes = {
                    item.run.hash for item in repo.query_runs(text, report_mode=0).iter_runs()
                }
            except Exception as exc:
                raise ValueError(f"query {query!r} failed: {type(exc).__name__}: {exc}") from None
        return self._records(hashes)

    def get_run(self, run_id: str) -> RunDetail | None:
        repo = self._open()
        if repo is None:
            return None
        props = repo.structured_db.find_run(run_id)
        tree = _collect(_chunks(repo), run_id) if props is not None else None
        if tree is None:
            return None
        detail: RunDetail = run_record(RunDetail, props, tree, run_id)
        return detail

    def get_series(self, run_id: str, name: str) -> MetricSeries | None:
        repo = self._open()
        if repo is None or not _exists(repo, run_id):
            return None
        points = _read_series(repo, run_id, name)
        if points is None:
            return None
        steps, values, times = points
        return MetricSeries(run_id=run_id, name=name, steps=steps, values=values, timestamps=times)

    def delete_run(self, run_id: str) -> bool:
        repo = self._open()
        if repo is None or not _exists(repo, run_id):
            return False
        detail = self.get_run(run_id)
        deleted = bool(repo.delete_run(run_id))
        self._settled.discard(run_id)
        repo.container_pool.clear()
        if deleted and detail is not None:
            remove_artifacts(detail.artifacts.values())  # after the run: never a run without them
        return deleted

    def stored_bytes(self, run_id: str) -> int:
        repo = self._open()
        if repo is None or not _exists(repo, run_id):
            return 0
        detail = self.get_run(run_id)
        artifacts = detail.artifacts.values() if detail is not None else ()
        return sum(
            path_bytes(Path(repo.path, kind, "chunks", run_id)) for kind in ("meta", "seqs")
        ) + sum(path_bytes(path) for path in map(uri_path, artifacts) if path is not None)

    def finish_deletions(self) -> int:
        repo = self._open()
        if repo is None:
            return 0
        return sweep_orphans(self._artifacts_root, self.run_ids())


def _exists(repo: Any, run_id: str) -> bool:
    # Not Repo.list_all_runs(): it is cached per Repo and misses runs created since.
    return Path(repo.path, "meta", "chunks", run_id).is_dir()


def _read_series(
    repo: Any, run_id: str, name: str
) -> tuple[list[int], list[float], list[float]] | None:
    from aim.storage.context import Context

    try:
        metric = import_aim().Run(run_id, repo=repo, read_only=True).get_metric(name, Context({}))
        if metric is None:
            return None
        steps: list[int] = []
        values: list[float] = []
        times: list[float] = []
        for step, (value, _epoch, timestamp) in metric.data.items():
            steps.append(int(step))
            values.append(float(value))
            times.append(float(timestamp))
    except KeyError:
        return None
    return steps, values, times


def _chunks(repo: Any) -> Any:
    return repo.meta_tree.subtree("chunks")


def _collect(chunks: Any, run_hash: str) -> dict[str, Any] | None:
    try:
        tree = chunks.subtree(run_hash).collect()
    except KeyError:
        return None  # created but not indexed yet
    return tree if isinstance(tree, dict) else None


def _time(value: Any) -> datetime | None:
    if not isinstance(value, int | float):
        return None
    return datetime.fromtimestamp(float(value), tz=UTC)


def run_record(cls: type[Any], props: Any, tree: dict[str, Any], run_id: str) -> Any:
    """A ``RunSummary`` or ``RunDetail`` of ``run_id`` from Aim's run properties and the
    run's meta tree (whose hash Aim may not have filled in yet while it is created)."""
    attrs = tree.get("attrs") or {}
    try:
        status = ExperimentStatus.parse(attrs.get(ATTR_STATUS) or "running")
    except ValueError:
        status = ExperimentStatus.RUNNING
    artifacts = {}
    for name, artifact in (tree.get("artifacts") or {}).items():
        uri = artifact.get("uri") if isinstance(artifact, dict) else getattr(artifact, "uri", None)
        artifacts[str(name)] = str(uri)
    final = attrs.get(ATTR_FINAL) or {}
    params = {
        str(k): v
        for k, v in attrs.items()
        if k not in RECORD_ATTRIBUTES and not str(k).startswith("__")
    }
    record = cls(
        run_id=props.hash or run_id,
        experiment=props.experiment or "",
        status=status,
        config=attrs.get(ATTR_CONFIG) or {},
        final_metrics={k: float(v) for k, v in final.items() if isinstance(v, int | float)},
        error=attrs.get(ATTR_ERROR),
        tags=[str(tag) for tag in (props.tags or [])],
        artifacts=artifacts,
        params=params,
        created_at=_time(props.creation_time) or datetime.now(UTC),
        ended_at=_time(tree.get("end_time")),
        heartbeat_at=_time(attrs.get(ATTR_HEARTBEAT)),
        host=attrs.get(ATTR_HOST),
        pid=attrs.get(ATTR_PID),
    )
    if isinstance(record, RunDetail):
        record.metrics = sorted(
            {name for per_context in tree.get("traces", {}).values() for name in per_context}
        )
        record.skipped_non_finite = dict(attrs.get(ATTR_SKIPPED) or {})
        values = attrs.get(ATTR_VALUES)
        record.values_logged = values if isinstance(values, int) else None
        environment = attrs.get(ATTR_ENVIRONMENT)
        record.environment = dict(environment) if isinstance(environment, dict) else {}
    return record
