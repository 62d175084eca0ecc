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
from agentic_trading.tracking.environment import process_facts
from agentic_trading.tracking.records import (
    RECORD_ATTRIBUTES,
    RunHandle,
    TrainingMetrics,
    split_metric_values,
)
from agentic_trading.tracking.wire import (
    CallOp,
    CaptureOp,
    CloseOp,
    OpenOp,
    Operation,
    OutputOp,
    TrackOp,
)
from agentic_trading.tracking.writer import BackgroundWriter

__all__ = ["SyncTracker", "Tracker"]

logger = logging.getLogger("agentic_trading.tracking")

MAX_CONFIG_BYTES = 1_000_000
MAX_ERROR_CHARS = 20_000


class _TrackerCore:
    """Validation shared by both facades: every public input is checked here, once."""

    def __init__(self, writer: BackgroundWriter, settings: Settings) -> None:
        self._writer = writer
        self._settings = settings
        self._metric_names: set[str] = set()  # checked against the store's rules already

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
    ) -> OpenOp:
        name = validate_name(
            experiment_name or self._settings.ml_experiment_name, "experiment name"
        )
        clean = check_json_mapping(config, "config", MAX_CONFIG_BYTES)
        tag_list = [validate_name(tag, "tag") for tag in _strings(tags, "tags")]
        self._writer.store.check_writable()  # a clear error now, not a lost run later
        return self._writer.open_op(name, clean, tag_list)

    def _capture(self, op: OpenOp, environment: Mapping[str, Any] | None) -> CaptureOp | None:
        """The run's environment as this process knows it (``environment`` adds the caller's
        facts: data, seeds), for the writer to complete; ``None`` when capture is off."""
        extra = check_json_mapping(environment, "environment", MAX_CONFIG_BYTES)
        if not self._settings.ml_capture_environment:
            return None
        facts = {**process_facts(self._settings), **extra}
        return {"kind": "capture", "run": op["run"], "facts": facts}

    def _track(
        self,
        run: RunHandle,
        metrics: TrainingMetrics | Mapping[str, object],
        step: int | None,
    ) -> TrackOp:
        return self._writer.track_op(run, [self._point(metrics, step)])

    def _track_many(
        self, run: RunHandle, points: Iterable[tuple[int, Mapping[str, object]]]
    ) -> TrackOp:
        if isinstance(points, Mapping | str):
            raise TypeError("points must be (step, metrics) pairs, not a mapping or a string")
        checked = []
        for point in points:
            if not isinstance(point, tuple | list) or len(point) != 2:
                raise ValueError(f"each point must be a (step, metrics) pair, got {point!r}")
            checked.append(self._point(point[1], point[0]))
        return self._writer.track_op(run, checked)

    def _point(
        self, metrics: TrainingMetrics | Mapping[str, object], step: int | None
    ) -> list[Any]:
        """``[step, finite values, skipped names]`` of one point, checked."""
        if type(metrics) is dict:  # the common case, without the ABC check below
            if step is None:
                raise ValueError("step is required when metrics is a mapping")
            at, values = step, metrics
        elif isinstance(metrics, TrainingMetrics):
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
        if not finite.keys() <= self._metric_names:
            self._check_metric_names(finite)
        return [at, finite, skipped]

    def _check_metric_names(self, names: Iterable[str]) -> None:
        fresh = [name for name in names if name not in self._metric_names]
        self._writer.store.check_metric_names(fresh)
        self._metric_names.update(fresh)

    def _params(self, run: RunHandle, params: Mapping[str, Any]) -> CallOp:
        clean = check_json_mapping(params, "params", MAX_CONFIG_BYTES)
        reserved = _RESERVED & clean.keys()
        if reserved:
            raise ValueError(
                f"param names {sorted(reserved)} are reserved for the run's own record; "
                "choose other names"
            )
        self._writer.store.check_params(clean)
        return self._writer.call_op(run, "set_attributes", clean)

    def _tags(self, run: RunHandle, tags: Iterable[str]) -> CallOp:
        tag_list = [validate_name(tag, "tag") for tag in _strings(tags, "tags")]
        return self._writer.call_op(run, "add_tags", tag_list)

    def _artifact(self, run: RunHandle, path: str | Path, name: str | None) -> CallOp:
        file = Path(path)
        if not file.is_file():
            raise FileNotFoundError(f"artifact {str(file)!r} is not a file")
        label = validate_name(name or file.name, "artifact name")
        return self._writer.call_op(run, "log_artifact", str(file.resolve()), label)

    def _close(
        self,
        run: RunHandle,
        status: ExperimentStatus | str,
        final_metrics: Mapping[str, object] | None,
        error: str | None,
    ) -> CloseOp:
        final_status = ExperimentStatus.parse(status)
        if not final_status.is_finished:
            raise ValueError(
                f"status {final_status.value!r} does not finish a run: use completed, failed, "
                "cancelled, crashed or pruned"
            )
        finite, skipped = split_metric_values(dict(final_metrics or {}))
        self._check_metric_names(finite)
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

    async def _submit(self, op: Operation) -> Any:
        pending = self._writer.submit(op, block=False)
        if pending is None:  # the queue is full: wait for room, off the event loop
            pending = await asyncio.to_thread(self._writer.submit, op)
        return pending

    async def _do(self, op: Operation) -> Any:
        return await self._writer.result_async(await self._submit(op))

    async def create_run(
        self,
        experiment_name: str | None = None,
        config: Mapping[str, Any] | None = None,
        *,
        tags: Iterable[str] = (),
        environment: Mapping[str, Any] | None = None,
    ) -> RunHandle:
        """Create a run in ``experiment_name`` (default ``ML_EXPERIMENT_NAME``), marked running.

        ``config`` (JSON data) becomes the run's Aim hparams. The run's environment is captured
        in the background (``ML_CAPTURE_ENVIRONMENT``): the code's git commit and uncommitted
        diff, package versions, the machine, the command line and the settings (secrets
        masked); ``environment`` adds what the caller knows, such as
        ``{"data": {"path": ...}, "seeds": {...}}`` (a data file's sha256 is computed).
        Raises :class:`~agentic_trading.tracking.errors.TrackingUnavailableError` if the
        storage cannot be written.
        """
        op = self._open(experiment_name, config, tags)
        capture = self._capture(op, environment)
        pending = await self._submit(op)
        if capture is not None:
            await self._submit(capture)
        if self._writer.waits_for_open:
            await self._writer.result_async(pending)
        return self._writer.handle(op)

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
        await self._do(self._track(run, metrics, step))

    async def log_metrics_batch(
        self, run: RunHandle, points: Iterable[tuple[int, Mapping[str, object]]]
    ) -> None:
        """Record several points, ``(step, metrics)`` pairs, in one operation: the same record
        as one :meth:`log_metrics` per point, for a fraction of the caller's cost."""
        await self._do(self._track_many(run, points))

    async def log_params(self, run: RunHandle, params: Mapping[str, Any]) -> None:
        """Set more run attributes (JSON data), visible in Aim next to the config."""
        await self._do(self._params(run, params))

    async def add_tags(self, run: RunHandle, *tags: str) -> None:
        """Tag the run (names of letters, digits, ``_``, ``.`` and ``-``)."""
        await self._do(self._tags(run, tags))

    async def log_artifact(self, run: RunHandle, path: str | Path, name: str | None = None) -> str:
        """Store a copy of the file at ``path`` (a trained model, a report) with the run.

        Returns where the copy is. Artifacts go to ``ML_ARTIFACTS_URI``, by default
        ``artifacts/`` under the local Aim repository.
        """
        result: str = await self._do(self._artifact(run, path, name))
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
        await self._do(self._close(run, status, final_metrics, error))

    async def flush(self) -> None:
        """Wait until everything accepted so far is written."""
        await self._do(self._writer.flush_op())

    async def close(self) -> None:
        """Write everything accepted and stop the writer; runs still open are recorded as
        ``crashed``."""
        await asyncio.to_thread(self._writer.close)


class SyncTracker(_TrackerCore):
    """The same tracker for synchronous code (a Stable-Baselines3 callback, a script).

    ``log_metrics`` returns in microseconds; the other calls wait for the writer.
    """

    def _do(self, op: Operation, timeout: float | None = None) -> Any:
        return self._writer.result(self._writer.submit(op), timeout)

    def create_run(
        self,
        experiment_name: str | None = None,
        config: Mapping[str, Any] | None = None,
        *,
        tags: Iterable[str] = (),
        environment: Mapping[str, Any] | None = None,
    ) -> RunHandle:
        """See :meth:`Tracker.create_run`."""
        op = self._open(experiment_name, config, tags)
        capture = self._capture(op, environment)
        pending = self._writer.submit(op)
        if capture is not None:
            self._writer.submit(capture)
        if self._writer.waits_for_open:
            self._writer.result(pending)
        return self._writer.handle(op)

    def log_metrics(
        self,
        run: RunHandle,
        metrics: TrainingMetrics | Mapping[str, object],
        *,
        step: int | None = None,
    ) -> None:
        """See :meth:`Tracker.log_metrics`."""
        self._do(self._track(run, metrics, step))

    def log_metrics_batch(
        self, run: RunHandle, points: Iterable[tuple[int, Mapping[str, object]]]
    ) -> None:
        """See :meth:`Tracker.log_metrics_batch`."""
        self._do(self._track_many(run, points))

    def log_params(self, run: RunHandle, params: Mapping[str, Any]) -> None:
        """See :meth:`Tracker.log_params`."""
        self._do(self._params(run, params))

    def add_tags(self, run: RunHandle, *tags: str) -> None:
        """See :meth:`Tracker.add_tags`."""
        self._do(self._tags(run, tags))

    def log_artifact(self, run: RunHandle, path: str | Path, name: str | None = None) -> str:
        """See :meth:`Tracker.log_artifact`."""
        result: str = self._do(self._artifact(run, path, name))
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
        self._do(self._close(run, status, final_metrics, error))

    def log_output(self, run: RunHandle, lines: list[str]) -> bool:
        """Hand console lines to the run's ``output.log`` without ever waiting: ``False`` when
        the writer's queue is full and they were dropped."""
        self._writer.check_open(run)
        op: OutputOp = {"kind": "output", "run": run.run_id, "lines": list(lines)}
        return self._writer.submit(op, block=False) is not None

    def flush(self, timeout: float | None = None) -> None:
        """Wait until everything accepted so far is written."""
        self._do(self._writer.flush_op(), timeout)

    def close(self, timeout: float | None = None) -> None:
        """See :meth:`Tracker.close`."""
        self._writer.close(timeout)


_RESERVED = RECORD_ATTRIBUTES


def _strings(values: Iterable[str], what: str) -> list[str]:
    if isinstance(values, str):
        return [values]
    try:
        return list(values)
    except TypeError:
        raise ValueError(f"{what} must be a list of strings, got {values!r}") from None
