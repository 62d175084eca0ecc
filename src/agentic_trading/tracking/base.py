"""The two small interfaces a tracking backend implements: a run store and a run reader.

A :class:`RunStore` is written by the tracker's writer thread only (never by the training loop),
so it may block; a :class:`RunReader` serves the repository. Callers never import a backend:
``get_ml_tracker()`` and ``get_experiment_repository()`` choose one from the settings.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol

from agentic_trading.status import ExperimentStatus
from agentic_trading.tracking.records import MetricSeries, RunDetail, RunSummary

__all__ = ["RunReader", "RunStore"]


class RunStore(Protocol):
    """Permanent storage of runs, written from one thread."""

    location: str

    def check_writable(self) -> None:
        """Raise ``TrackingUnavailableError`` if no run could be created; called by callers
        before queuing a run, so it must take milliseconds (set-up belongs to ``open_run``)."""

    def prepare(self) -> None:
        """Import what writing needs and set a new store up (seconds of CPU for Aim): a writer
        process does this once, before it reads any operation."""

    def check_metric_names(self, names: Sequence[str]) -> None:
        """Raise ``ValueError`` naming a metric name this store cannot keep; called at the
        caller's boundary (once per new name), so it must take microseconds."""

    def check_params(self, params: Mapping[str, Any]) -> None:
        """Raise ``ValueError`` naming a param (its name or value) this store cannot keep."""

    def open_run(
        self, run_id: str, experiment: str, config: Mapping[str, Any], tags: Sequence[str]
    ) -> datetime:
        """Create run ``run_id`` (24 hex digits, chosen by the caller) marked ``running``;
        return its creation time."""

    def track(self, run_id: str, points: Sequence[tuple[int, Mapping[str, float]]]) -> None:
        """Append points of metrics, ``(step, {name: value})`` in the order they were logged."""

    def flush(self) -> list[tuple[str, int, str]]:
        """Write what the store buffered (points it batches); return ``(run id, points, why)``
        for points it refused. Raises ``TrackingServerUnreachableError`` keeping them."""

    def set_attributes(self, run_id: str, attributes: Mapping[str, Any]) -> None:
        """Set or replace named attributes of the run (params, heartbeats, counts)."""

    def add_tags(self, run_id: str, tags: Sequence[str]) -> None:
        """Tag the run."""

    def log_artifact(self, run_id: str, path: Path, name: str) -> str:
        """Store a copy of the file at ``path`` as artifact ``name``; return where it is."""

    def heartbeat(self, run_id: str, at: float) -> None:
        """Record that the writing process is alive at ``at`` (seconds since the epoch)."""

    def close_run(
        self,
        run_id: str,
        status: ExperimentStatus,
        final_metrics: Mapping[str, float],
        error: str | None,
    ) -> None:
        """Record the final status, metrics and error, and close the run for good."""

    def close(self) -> None:
        """Release the store's connections (runs left open stay as they are)."""


class RunReader(Protocol):
    """Reads runs back. Status is as stored; the repository decides what is ``crashed``."""

    location: str

    def refresh(self) -> None:
        """Make runs written by other processes since the last call visible."""

    def list_runs(self, query: str | None = None) -> list[RunSummary]:
        """Every run (matching the backend's ``query`` language, when given)."""

    def run_ids(self) -> set[str]:
        """The ids of every run the store holds (cheap: what a catalogue catches up with)."""

    def get_run(self, run_id: str) -> RunDetail | None:
        """One run in full, or ``None``."""

    def get_series(self, run_id: str, name: str) -> MetricSeries | None:
        """One metric series of one run, or ``None`` if the run has no such metric."""

    def delete_run(self, run_id: str) -> bool:
        """Delete a run for good: its record, series and artifacts (MLflow: purged where the
        store allows it); ``False`` if there was none."""

    def stored_bytes(self, run_id: str) -> int:
        """Bytes the run takes that deleting it frees (its series where they are files, its
        artifacts where they are files)."""

    def finish_deletions(self) -> int:
        """Finish deletions that were interrupted (artifacts of runs that are gone, MLflow
        runs deleted but not purged); bytes freed."""
