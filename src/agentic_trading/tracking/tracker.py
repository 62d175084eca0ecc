"""The tracker: the seed's async API (:class:`Tracker`) and its twin for sync loops (:class:`SyncTracker`).

Both validate at the call and hand the work to one :class:`BackgroundWriter`, so a training
loop pays microseconds per ``log_metrics`` whatever the store costs.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from agentic_trading.common.ids import validate_name
from agentic_trading.common.values import check_json_mapping
from agentic_trading.config import Settings
from agentic_trading.status import ExperimentStatus
from agentic_trading.tracking.models import RunHandle, TrainingMetrics, split_metric_values
from agentic_trading.tracking.writer import BackgroundWriter, _Call, _Close, _Open, _Track

__all__ = ["SyncTracker", "Tracker"]

logger = logging.getLogger("agentic_trading.tracking")

MAX_CONFIG_BYTES = 1_000_000
MAX_ERROR_CHARS = 20_000


class _TrackerCore:
    """Validation shared by both facades: every public input is checked here, once."""

    def __init__(self, writer: BackgroundWriter, settings: Settings) -> None:
        self._writer = writer
        self._settings = settings

    @property
    def location(self) -> str:
        """Where runs are stored: the Aim repository's folder or ``aim://`` URL."""
        return self._writer.store.location

    @property
    def pending(self) -> int:
        """Operations accepted but not yet written to storage."""
        return self._writer.pending

    def _open(
        self, experiment_name: str | None, config: Mapping[str, Any] | None, tags: Iterable[str]
    ) -> _Open:
        name = validate_name(
            experiment_name or self._settings.ml_experiment_name, "experiment name"
        )
        clean = check_json_mapping(config, "config", MAX_CONFIG_BYTES)
        tag_list = [validate_name(tag, "tag") for tag in _strings(tags, "tags")]
        self._writer.store.check_writable()  # a clear error now, not a lost run later
        return self._writer.open_op(name, clean, tag_list)

    def _track(
        self,
        run: RunHandle,
        metrics: TrainingMetrics | Mapping[str, object],
        step: int | None,
    ) -> _Track:
        if isinstance(metrics, TrainingMetrics):
            if step is not None and step != metrics.step:
                raise ValueError(f"step={step} disagrees with TrainingMetrics.step={metrics.step}")
            at, values = metrics.step, metrics.values()
        elif isinstance(metrics, Mapping):
            if step is None:
                raise ValueError("step is required when metrics is a mapping")
            at, values = step, dict(metrics)
        else:
            raise TypeError(
                f"metrics must be TrainingMetrics or a mapping, got {type(metrics).__name__}"
            )
        if isinstance(at, bool) or not isinstance(at, int) or at < 0:
            raise ValueError(f"step must be a non-negative integer, got {at!r}")
        finite, skipped = split_metric_values(values)
        return self._writer.track_op(run, at, finite, skipped)

    def _params(self, run: RunHandle, params: Mapping[str, Any]) -> _Call:
        clean = check_json_mapping(params, "params", MAX_CONFIG_BYTES)
        reserved = _RESERVED & clean.keys()
        if reserved:
            raise ValueError(
                f"param names {sorted(reserved)} are reserved for the run's own record; "
                "choose other names"
            )
        return self._writer.call_op(run, lambda store: store.set_attributes(run.run_id, clean))

    def _tags(self, run: RunHandle, tags: Iterable[str]) -> _Call:
        tag_list = [validate_name(tag, "tag") for tag in _strings(tags, "tags")]
        return self._writer.call_op(run, lambda store: store.add_tags(run.run_id, tag_list))

    def _artifact(self, run: RunHandle, path: str | Path, name: str | None) -> _Call:
        file = Path(path)
        if not file.is_file():
            raise FileNotFoundError(f"artifact {str(file)!r} is not a file")
        label = validate_name(name or file.name, "artifact name")
        return self._writer.call_op(run, lambda store: store.log_artifact(run.run_id, file, label))

    def _close(
        self,
        run: RunHandle,
        status: ExperimentStatus | str,
        final_metrics: Mapping[str, object] | None,
        error: str | None,
    ) -> _Close:
        final_status = ExperimentStatus.parse(status)
        if not final_status.is_finished:
            raise ValueError(
                f"status {final_status.value!r} does not finish a run: use completed, failed, "
                "cancelled or crashed"
            )
        finite, skipped = split_metric_values(dict(final_metrics or {}))
        if skipped:
            logger.warning(
                "run %s: final metrics %s are not finite and are not stored", run.run_id, skipped
            )
        if error is not None and not isinstance(error, str):
            error = str(error)
        if error is not None and len(error) > MAX_ERROR_CHARS:
            error = error[:MAX_ERROR_CHARS] + "... (truncated)"
        return self._writer.close_op(run, final_status, finite, error)

    def open_runs(self) -> list[RunHandle]:
        """The runs created by this tracker's writer and not finished yet."""
        return self._writer.open_runs()


class Tracker(_TrackerCore):
    """Permanent experiment records: the seed's ``tracker`` (``await get_ml_tracker()``).

    Every method validates its input at once (a bad value raises ``ValueError`` or ``TypeError``
    naming it) and leaves the storage work to a background writer.
    """

    async def _put(self, op: _Open | _Track | _Call | _Close | Any) -> None:
        if not self._writer.put(op, block=False):  # full: wait for room, off the event loop
            await asyncio.to_thread(self._writer.put, op)

    async def create_run(
        self,
        experiment_name: str | None = None,
        config: Mapping[str, Any] | None = None,
        *,
        tags: Iterable[str] = (),
    ) -> RunHandle:
        """Create a run in ``experiment_name`` (default ``ML_EXPERIMENT_NAME``), marked running.

        ``config`` (JSON data) becomes the run's Aim hparams. Raises
        :class:`~agentic_trading.tracking.errors.TrackingUnavailableError` if the storage
        cannot be written.
        """
        op = self._open(experiment_name, config, tags)
        await self._put(op)
        return await asyncio.wrap_future(op.future)

    async def log_metrics(
        self,
        run: RunHandle,
        metrics: TrainingMetrics | Mapping[str, object],
        *,
        step: int | None = None,
    ) -> None:
        """Record one point of metrics. Returns once accepted; written in the background.

        NaN and infinite values are not stored: they are counted on the run and reported in a
        warning. Waits only when the writer's queue (``ML_QUEUE_SIZE``) is full.
        """
        await self._put(self._track(run, metrics, step))

    async def log_params(self, run: RunHandle, params: Mapping[str, Any]) -> None:
        """Set more run attributes (JSON data), visible in Aim next to the config."""
        op = self._params(run, params)
        await self._put(op)
        await asyncio.wrap_future(op.future)

    async def add_tags(self, run: RunHandle, *tags: str) -> None:
        """Tag the run (names of letters, digits, ``_``, ``.`` and ``-``)."""
        op = self._tags(run, tags)
        await self._put(op)
        await asyncio.wrap_future(op.future)

    async def log_artifact(self, run: RunHandle, path: str | Path, name: str | None = None) -> str:
        """Store a copy of the file at ``path`` (a trained model, a report) with the run.

        Returns where the copy is. Artifacts go to ``ML_ARTIFACTS_URI``, by default
        ``artifacts/`` under the local Aim repository.
        """
        op = self._artifact(run, path, name)
        await self._put(op)
        result: str = await asyncio.wrap_future(op.future)
        return result

    async def finish_run(
        self,
        run: RunHandle,
        status: ExperimentStatus | str = ExperimentStatus.COMPLETED,
        final_metrics: Mapping[str, object] | None = None,
        *,
        error: str | None = None,
    ) -> None:
        """Write everything logged for ``run``, then its final status, metrics and error.

        Raises :class:`~agentic_trading.tracking.errors.RunFinishedError` if the run was
        already finished.
        """
        op = self._close(run, status, final_metrics, error)
        await self._put(op)
        await asyncio.wrap_future(op.future)

    async def flush(self) -> None:
        """Wait until everything accepted so far is written."""
        op = self._writer.flush_op()
        await self._put(op)
        await asyncio.wrap_future(op.future)

    async def close(self) -> None:
        """Write everything accepted and stop the writer. Open runs stay ``running``."""
        await asyncio.to_thread(self._writer.close)


class SyncTracker(_TrackerCore):
    """The same tracker for synchronous code (a Stable-Baselines3 callback, a script).

    ``log_metrics`` returns in microseconds; the other calls wait for the writer.
    """

    def create_run(
        self,
        experiment_name: str | None = None,
        config: Mapping[str, Any] | None = None,
        *,
        tags: Iterable[str] = (),
    ) -> RunHandle:
        """See :meth:`Tracker.create_run`."""
        op = self._open(experiment_name, config, tags)
        self._writer.put(op)
        return op.future.result()

    def log_metrics(
        self,
        run: RunHandle,
        metrics: TrainingMetrics | Mapping[str, object],
        *,
        step: int | None = None,
    ) -> None:
        """See :meth:`Tracker.log_metrics`."""
        self._writer.put(self._track(run, metrics, step))

    def log_params(self, run: RunHandle, params: Mapping[str, Any]) -> None:
        """See :meth:`Tracker.log_params`."""
        op = self._params(run, params)
        self._writer.put(op)
        op.future.result()

    def add_tags(self, run: RunHandle, *tags: str) -> None:
        """See :meth:`Tracker.add_tags`."""
        op = self._tags(run, tags)
        self._writer.put(op)
        op.future.result()

    def log_artifact(self, run: RunHandle, path: str | Path, name: str | None = None) -> str:
        """See :meth:`Tracker.log_artifact`."""
        op = self._artifact(run, path, name)
        self._writer.put(op)
        result: str = op.future.result()
        return result

    def finish_run(
        self,
        run: RunHandle,
        status: ExperimentStatus | str = ExperimentStatus.COMPLETED,
        final_metrics: Mapping[str, object] | None = None,
        *,
        error: str | None = None,
    ) -> None:
        """See :meth:`Tracker.finish_run`."""
        op = self._close(run, status, final_metrics, error)
        self._writer.put(op)
        op.future.result()

    def flush(self, timeout: float | None = None) -> None:
        """Wait until everything accepted so far is written."""
        op = self._writer.flush_op()
        self._writer.put(op)
        op.future.result(timeout)

    def close(self, timeout: float | None = None) -> None:
        """See :meth:`Tracker.close`."""
        self._writer.close(timeout)


_RESERVED = frozenset(
    {"hparams", "status", "final_metrics", "error", "host", "pid", "heartbeat_at"}
    | {"skipped_non_finite"}
)


def _strings(values: Iterable[str], what: str) -> list[str]:
    if isinstance(values, str):
        return [values]
    try:
        return list(values)
    except TypeError:
        raise ValueError(f"{what} must be a list of strings, got {values!r}") from None
