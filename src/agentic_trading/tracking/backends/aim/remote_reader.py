"""Reads runs back through Aim's remote tracking server (``ML_STORAGE_PATH=aim://host:port``).

Aim's server holds each run in its own chunk and leaves its index to ``aim up``, so this reader
asks the server for the list of runs and reads every run's own chunk: runs are visible the
moment their trainer wrote them, with or without Aim's UI running on the tracking host. Run
properties and finished runs never change, so each is fetched once; a refresh costs one call
for the list and one per unfinished run.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

from agentic_trading.config import Settings
from agentic_trading.status import ExperimentStatus
from agentic_trading.tracking.artifact_files import (
    path_bytes,
    remove_artifacts,
    sweep_orphans,
    uri_path,
)
from agentic_trading.tracking.backends.aim._storage import (
    discard_remote_repo,
    exit_cleanly_from_aim_server,
    import_aim,
    repo_location,
)
from agentic_trading.tracking.backends.aim.reader import check_query, run_record
from agentic_trading.tracking.errors import TrackingUnavailableError
from agentic_trading.tracking.records import MetricSeries, RunDetail, RunSummary

__all__ = ["AimServerRunReader"]

logger = logging.getLogger("agentic_trading.tracking")

T = TypeVar("T")


@dataclass(frozen=True)
class _Props:
    hash: str
    experiment: str
    tags: list[str]
    creation_time: float | None


class AimServerRunReader:
    """A :class:`~agentic_trading.tracking.base.RunReader` over ``aim server``."""

    def __init__(self, settings: Settings) -> None:
        self.location = repo_location(settings)
        self._repo: Any = None
        self._hashes: list[str] = []
        self._props: dict[str, _Props] = {}
        self._trees: dict[str, dict[str, Any]] = {}
        self._settled: set[str] = set()  # finished: their trees never change again
        self._artifacts_root = settings.ml_artifacts_uri

    def _call(self, what: str, action: Callable[[Any], T]) -> T:
        """``action(repo)``; an unreachable server becomes ``TrackingUnavailableError``.

        A connection that fails is dropped and the call tried once more on a new one: a
        restarted server no longer knows the old connection.
        """
        for attempt in range(2):
            fresh = self._repo is None
            try:
                if self._repo is None:
                    self._repo = import_aim().Repo(self.location)
                    exit_cleanly_from_aim_server(10.0)
                return action(self._repo)
            except (KeyError, ValueError):
                raise
            except Exception as exc:
                if self._repo is not None:
                    discard_remote_repo(self._repo)
                    self._repo = None
                if fresh or attempt == 1:
                    raise TrackingUnavailableError(
                        f"cannot {what} through the Aim server at {self.location}: "
                        f"{type(exc).__name__}: {exc}".rstrip(": ")
                    ) from None
        raise AssertionError("unreachable")  # pragma: no cover

    def refresh(self) -> None:
        self._hashes = sorted(self._call("list runs", lambda repo: repo.list_all_runs()))
        present = set(self._hashes)
        for cache in (self._props, self._trees):
            for gone in set(cache) - present:
                del cache[gone]
        self._settled &= present
        for run_hash in self._hashes:
            if run_hash not in self._settled:
                self._load(run_hash)

    def _load(self, run_hash: str) -> None:
        tree = self._call("read a run", lambda repo: _meta(repo, run_hash))
        if not isinstance(tree, dict) or "attrs" not in tree:
            return  # created a moment ago: its attributes are not written yet
        if run_hash not in self._props:
            self._props[run_hash] = self._call("read a run", lambda repo: _props(repo, run_hash))
        self._trees[run_hash] = tree
        status = (tree.get("attrs") or {}).get("status")
        if tree.get("end_time") is not None and status != ExperimentStatus.RUNNING.value:
            self._settled.add(run_hash)

    def run_ids(self) -> set[str]:
        return {h for h in self._hashes if h in self._trees}

    def list_runs(self, query: str | None = None) -> list[RunSummary]:
        hashes = [h for h in self._hashes if h in self._trees]
        if query:
            compiled = _compile(query)  # refused even before any run exists
            hashes = [h for h in hashes if self._matches(compiled, h)]
        return [run_record(RunSummary, self._props[h], self._trees[h], h) for h in hashes]

    def _matches(self, compiled: Any, run_hash: str) -> bool:
        props, tree = self._props[run_hash], self._trees[run_hash]
        fields = {
            **(tree.get("attrs") or {}),
            "hash": run_hash,
            "experiment": props.experiment,
            "tags": props.tags,
            "creation_time": props.creation_time,
            "end_time": tree.get("end_time"),
            "active": tree.get("end_time") is None,
            "archived": False,
        }
        return bool(compiled.check(run=_QueryView(fields)))

    def get_run(self, run_id: str) -> RunDetail | None:
        if run_id not in self._trees:
            if run_id not in self._call("list runs", lambda repo: repo.list_all_runs()):
                return None
            self._load(run_id)
        if run_id not in self._trees:
            return None
        detail: RunDetail = run_record(RunDetail, self._props[run_id], self._trees[run_id], run_id)
        return detail

    def get_series(self, run_id: str, name: str) -> MetricSeries | None:
        if self.get_run(run_id) is None:
            return None
        points = self._call("read a metric", lambda repo: _series(repo, run_id, name))
        if points is None:
            return None
        steps, values, times = points
        return MetricSeries(run_id=run_id, name=name, steps=steps, values=values, timestamps=times)

    def delete_run(self, run_id: str) -> bool:
        if run_id not in self._call("list runs", lambda repo: repo.list_all_runs()):
            return False
        detail = self.get_run(run_id)
        deleted = bool(self._call("delete a run", lambda repo: repo.delete_run(run_id)))
        for cache in (self._props, self._trees):
            cache.pop(run_id, None)
        self._settled.discard(run_id)
        if deleted and detail is not None:
            remove_artifacts(detail.artifacts.values())  # file:// ones; s3 keeps its own rules
        return deleted

    def stored_bytes(self, run_id: str) -> int:
        # The server's series are not ours to measure; artifacts kept as files are.
        detail = self.get_run(run_id)
        artifacts = detail.artifacts.values() if detail is not None else ()
        return sum(path_bytes(p) for p in map(uri_path, artifacts) if p is not None)

    def finish_deletions(self) -> int:
        return sweep_orphans(self._artifacts_root, self.run_ids())


def _meta(repo: Any, run_hash: str) -> Any:
    tree = repo.request_tree("meta", run_hash, read_only=True)
    try:
        return tree.subtree(("meta", "chunks", run_hash)).collect()
    except KeyError:
        return None


def _props(repo: Any, run_hash: str) -> _Props:
    props = repo.request_props(run_hash, True)
    return _Props(
        hash=run_hash,
        experiment=str(props.experiment or ""),
        tags=[str(tag) for tag in (props.tags or [])],
        creation_time=props.creation_time,
    )


def _series(
    repo: Any, run_hash: str, name: str
) -> tuple[list[int], list[float], list[float]] | None:
    from aim.storage.context import Context

    # Aim's server streams a sequence's columns item by item (collecting a whole column at
    # once stalls its transport); the columns share keys, one per point.
    seqs = repo.request_tree("seqs", run_hash, read_only=True)
    series = seqs.subtree(("seqs", "v2", "chunks", run_hash, Context({}).idx, name))
    columns = {column: dict(series.subtree(column).items()) for column in ("step", "val", "time")}
    if not columns["step"]:
        return None
    keys = sorted(columns["step"], key=lambda key: columns["step"][key])
    return (
        [int(columns["step"][key]) for key in keys],
        [float(columns["val"][key]) for key in keys],
        [float(columns["time"].get(key, 0.0)) for key in keys],
    )


def _compile(query: str) -> Any:
    from aim.storage.query import RestrictedPythonQuery

    text = check_query(query)
    try:
        return RestrictedPythonQuery(text)
    except Exception as exc:
        raise ValueError(f"query {query!r} failed: {type(exc).__name__}: {exc}") from None


class _QueryView:
    """A run's fields as AimQL sees them (``run.hparams.gamma``); what is missing is Aim's
    ``SafeNone``, which compares false, as in Aim's own queries."""

    def __init__(self, fields: Mapping[str, Any]) -> None:
        self._fields = fields

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        return self[name]

    def __getitem__(self, key: str) -> Any:
        from aim.storage.types import SafeNone

        value = self._fields.get(key, SafeNone())
        return _QueryView(value) if isinstance(value, Mapping) else value
