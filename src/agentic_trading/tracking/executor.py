"""The store side of the tracker's writer: applies operations (see ``wire``) to a run store,
mirrors them into the run catalogue, and records heartbeats of the open runs."""

from __future__ import annotations

import errno
import logging
import os
import shutil
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from agentic_trading.alerts.message import AlertEvent, run_alert
from agentic_trading.alerts.sender import Alerter
from agentic_trading.common.retry import ServerRetry
from agentic_trading.config import Settings, mask_url
from agentic_trading.status import ExperimentStatus
from agentic_trading.tracking.base import RunStore
from agentic_trading.tracking.catalogue.database import catalogue_url
from agentic_trading.tracking.catalogue.mirror import CatalogueMirror
from agentic_trading.tracking.catalogue.runs import RunCatalogue
from agentic_trading.tracking.catalogue.store import CataloguedStore
from agentic_trading.tracking.environment import describe_environment
from agentic_trading.tracking.errors import (
    RunNotFoundError,
    TrackingError,
    TrackingServerUnreachableError,
    TrackingUnavailableError,
    describe,
)
from agentic_trading.tracking.output import OUTPUT_ARTIFACT
from agentic_trading.tracking.system_metrics import SystemSampler
from agentic_trading.tracking.wire import CALLS, EXIT_ERROR, CloseOp, Operation, Point

__all__ = ["EXIT_ERROR", "RunExecutor", "storage_fault"]

logger = logging.getLogger("agentic_trading.tracking")


#: What a store says when the disk under it refuses writes (OSError's errno, or the text of
#: errors that storage engines such as Aim's RocksDB raise without one).
_STORAGE_FAULTS = {
    errno.ENOSPC: "no space left on the device",
    errno.EROFS: "the file system is read-only",
    errno.EDQUOT: "the disk quota is exceeded",
}
_FAULT_TEXTS = {
    "No space left on device": errno.ENOSPC,
    "Read-only file system": errno.EROFS,
    "Disk quota exceeded": errno.EDQUOT,
}


#: Below this much free space a local store is not written: Aim's RocksDB, out of space, can
#: hang inside a write instead of failing it.
MIN_FREE_BYTES = 1 << 20
_SPACE_CHECK_SECONDS = 0.02  # a few kilobytes of points at most between two looks


def free_bytes(location: str) -> int | None:
    """Free bytes on the disk of a local store (``None`` for a server or an unknown path)."""
    if "://" in location:
        return None
    path = Path(location)
    while not path.exists() and path != path.parent:
        path = path.parent
    try:
        return shutil.disk_usage(path).free
    except OSError:
        return None


def storage_fault(exc: BaseException) -> str | None:
    """Why the storage refuses writes for good (a full disk, a read-only one), or ``None``
    when ``exc`` is another failure."""
    code = getattr(exc, "errno", None)
    if code not in _STORAGE_FAULTS:
        text = str(exc)
        code = next((c for t, c in _FAULT_TEXTS.items() if t in text), None)
    return None if code is None else _STORAGE_FAULTS[code]


@dataclass
class _RunState:
    skipped: Counter[str] = field(default_factory=Counter)
    skipped_written: int = 0
    failures: int = 0
    first_failure: str | None = None
    opened: float = field(default_factory=time.monotonic)
    system_step: int = -1  # the step of the run's last system sample
    system_values: int = 0  # system values written (they count in values_logged)
    output: Path | None = None  # the console lines so far, stored as output.log at the end
    output_lines: int = 0
    output_dropped: int = 0
    experiment: str = ""
    verdict: str | None = None  # the verdict's words, for the alert when the run ends
    breached: set[str] = field(default_factory=set)  # alert rules already alerted on


class RunExecutor:
    """Applies operations to ``store`` in order and records heartbeats of the open runs.

    While a tracking server does not answer, each operation is retried (``retry``) in order, so
    nothing is lost or reordered; the caller's buffers hold what arrives meanwhile.
    """

    def __init__(
        self,
        store: RunStore,
        heartbeat_interval: float,
        retry: ServerRetry | None = None,
        system_interval: float = 0.0,
        owner_pid: int | None = None,
        output_max_lines: int = 100_000,
        alerter: Alerter | None = None,
    ) -> None:
        self.store = store
        self.alerter = alerter
        self.retry = retry or ServerRetry(300.0)
        self._interval = heartbeat_interval
        self._system_interval = system_interval
        self._next_sample = time.monotonic() + system_interval
        self._owner = owner_pid or os.getpid()
        self._sampler: SystemSampler | None = None
        self._output_max_lines = output_max_lines
        self._runs: dict[str, _RunState] = {}
        self._failed: dict[str, str] = {}
        self._next_beat = time.monotonic() + heartbeat_interval
        self.fault: str | None = None  # the store refuses writes for good: why, once seen
        self._space_checked = 0.0

    @classmethod
    def for_settings(
        cls, store: RunStore, settings: Settings, owner_pid: int | None = None
    ) -> RunExecutor:
        """An executor with the settings' heartbeat interval and ``ML_RETRY_TIMEOUT``, writing
        to ``store`` composed with the run catalogue (``ML_CATALOG_URL``) if there is one; runs
        record ``owner_pid`` (default: this process) as the process that writes them."""
        url = catalogue_url(settings)
        alerter = Alerter.for_settings(settings, url)
        if url is not None:
            mirror = CatalogueMirror(
                lambda: RunCatalogue(url, settings.ml_heartbeat_timeout), mask_url(url)
            )
            store = CataloguedStore(store, mirror, owner_pid or os.getpid())
        return cls(
            store,
            settings.ml_heartbeat_interval,
            ServerRetry(settings.ml_retry_timeout),
            settings.ml_system_metrics_interval,
            owner_pid,
            settings.ml_capture_output_max_lines,
            alerter,
        )

    def prepare(self) -> None:
        """Do the one-off work of the first operations now (imports, a new store and
        catalogue): what a store cannot do yet is left to the first operation to report."""
        try:
            self.store.prepare()
        except Exception as exc:
            logger.debug("the store at %s is not ready yet: %s", self.store.location, exc)

    def apply(self, op: Operation) -> Any:
        """Apply one operation; return its result or raise its failure."""
        self._check_space(op)
        while True:
            try:
                result = self._apply(op)
            except TrackingServerUnreachableError as exc:
                if self.retry.wait(exc):
                    continue
                self._give_up(op, exc)
                raise
            except Exception as exc:
                # An artifact that does not fit fails alone (its store may be another disk,
                # ML_ARTIFACTS_URI): the run's own record goes on.
                if not (op["kind"] == "call" and op["method"] == "log_artifact"):
                    self._note_fault(exc)
                raise
            self.retry.reached()
            return result

    def _check_space(self, op: Operation) -> None:
        if self.fault is not None and op["kind"] != "flush":
            raise TrackingUnavailableError(self.fault)
        now = time.monotonic()
        if now - self._space_checked < _SPACE_CHECK_SECONDS:
            return
        self._space_checked = now
        free = free_bytes(self.store.location)
        if free is not None and free < MIN_FREE_BYTES:
            self.fault = (
                f"the tracking storage at {self.store.location} refuses writes: no space left "
                f"on the device ({free // 1024} KiB free; the writer stops below "
                f"{MIN_FREE_BYTES // 1024} KiB)"
            )
            logger.error("%s", self.fault)
            if op["kind"] != "flush":
                raise TrackingUnavailableError(self.fault)

    def _note_fault(self, exc: BaseException) -> None:
        reason = storage_fault(exc)
        if reason is not None and self.fault is None:
            self.fault = (
                f"the tracking storage at {self.store.location} refuses writes: {reason} "
                f"({type(exc).__name__}: {str(exc)[:200]})"
            )

    def _give_up(self, op: Operation, exc: Exception) -> None:
        if op["kind"] == "open":
            self._failed[op["run"]] = f"run {op['run']} could not be created: {describe(exc)}"
            logger.error("%s", self._failed[op["run"]])
        elif op["kind"] == "close":
            self._runs.pop(op["run"], None)
        elif op["kind"] == "track" and op["run"] in self._runs:
            self._count_failure(self._runs[op["run"]], op["run"], exc, len(op["points"]))

    def _apply(self, op: Operation) -> Any:
        if op["kind"] == "track":
            self._track(op["run"], op["points"])
            return None
        if op["kind"] == "open":
            run_id = op["run"]
            try:
                self.store.open_run(run_id, op["experiment"], op["config"], op["tags"])
            except TrackingServerUnreachableError:
                raise
            except Exception as exc:
                # create_run returned long ago: keep the reason for the run's next sync call.
                self._failed[run_id] = f"run {run_id} could not be created: {describe(exc)}"
                logger.error("%s", self._failed[run_id])
                raise
            self._runs[run_id] = _RunState(experiment=op["experiment"])
            return None
        if op["kind"] == "call":
            run_id, method = op["run"], op["method"]
            if run_id in self._failed:
                raise TrackingUnavailableError(self._failed[run_id])
            if run_id not in self._runs:
                raise RunNotFoundError(f"run {run_id} is not open in the tracking writer")
            if method not in CALLS:
                raise ValueError(f"unknown tracking operation {method!r}")
            args = list(op["args"])
            if method == "log_artifact":
                args[0] = Path(args[0])
            elif method == "set_attributes" and isinstance(args[0].get("verdict"), str):
                self._runs[run_id].verdict = args[0]["verdict"]
            return getattr(self.store, method)(run_id, *args)
        if op["kind"] == "output":
            state = self._runs.get(op["run"])
            if state is not None:
                self._keep_output(state, op["lines"])
            return None
        if op["kind"] == "capture":
            if op["run"] in self._runs:
                self._capture(op["run"], op["facts"])
            return None
        if op["kind"] == "close":
            status = ExperimentStatus(op["status"])
            self._close(op["run"], status, op["final"], op["error"], op.get("values"))
            return None
        if op["kind"] == "flush":
            for run_id, points, why in self.store.flush():
                state = self._runs.get(run_id)
                if state is not None:
                    self._count_failure(state, run_id, TrackingError(why), points)
            return None
        raise ValueError(f"unknown tracking operation kind {op.get('kind')!r}")

    def _capture(self, run_id: str, facts: dict[str, Any]) -> None:
        """The run's environment and its artifacts (``code.patch``, ``requirements.txt``); a
        part that cannot be stored is logged, never a fault of the run."""
        environment, artifacts = describe_environment(facts)
        self.store.set_attributes(run_id, {"environment": environment})
        with tempfile.TemporaryDirectory() as folder:
            for name, content in artifacts.items():
                path = Path(folder, name)
                path.write_bytes(content)
                try:
                    self.store.log_artifact(run_id, path, name)
                except TrackingServerUnreachableError:
                    raise
                except Exception as exc:
                    logger.warning("run %s: %s not stored: %s", run_id, name, describe(exc))

    def _keep_output(self, state: _RunState, lines: list[str]) -> None:
        room = max(0, self._output_max_lines - state.output_lines)
        kept, state.output_dropped = lines[:room], state.output_dropped + len(lines[room:])
        if not kept:
            return
        if state.output is None:
            handle, name = tempfile.mkstemp(prefix="agentic-trading-output-", suffix=".log")
            os.close(handle)
            state.output = Path(name)
        with state.output.open("a", encoding="utf-8", errors="replace") as stream:
            stream.write("".join(f"{line}\n" for line in kept))
        state.output_lines += len(kept)

    def _store_output(self, run_id: str, state: _RunState) -> None:
        """``output.log`` of the run, with a last line saying how many lines were not kept."""
        if state.output is None:
            return
        if state.output_dropped:
            with state.output.open("a", encoding="utf-8") as stream:
                stream.write(
                    f"[agentic-trading: {state.output_dropped} more lines not kept "
                    f"(ML_CAPTURE_OUTPUT_MAX_LINES={self._output_max_lines})]\n"
                )
            state.output_dropped = 0
        try:
            self.store.log_artifact(run_id, state.output, OUTPUT_ARTIFACT)
        except TrackingServerUnreachableError:
            raise  # the close is retried, the file kept
        except Exception as exc:
            logger.warning("run %s: %s not stored: %s", run_id, OUTPUT_ARTIFACT, describe(exc))
        state.output.unlink(missing_ok=True)
        state.output = None

    def _track(self, run_id: str, op_points: list[Point]) -> None:
        state = self._runs.get(run_id)
        if state is None:
            return
        # A retry after an outage writes the op's points again: the same steps, same values.
        points = [(step, values) for step, values, _ in op_points if values]
        if points:
            try:
                self.store.track(run_id, points)
            except TrackingServerUnreachableError:
                raise  # retried by apply
            except Exception as exc:  # recorded and reported by finish_run, never raised
                self._count_failure(state, run_id, exc, len(points))
        for _, _, skipped in op_points:
            state.skipped.update(skipped)
        if self.alerter is not None and self.alerter.rules:
            for _, values in points:
                self._check_rules(run_id, state, values, "running")

    def _check_rules(
        self, run_id: str, state: _RunState, values: dict[str, float] | Any, status: str
    ) -> None:
        """Alert once per run on each rule of ``ALERT_RULES`` that ``values`` break."""
        assert self.alerter is not None
        for rule, value in self.alerter.breaches(values):
            if rule.text in state.breached:
                continue
            state.breached.add(rule.text)
            self.alerter.notify(
                run_alert(
                    AlertEvent.RULE, run_id, state.experiment, status=status,
                    detail=f"{rule.metric} = {value:g}", rule=rule.text,
                    dashboard_url=self.alerter.dashboard_url,
                )
            )  # fmt: skip

    def _count_failure(
        self, state: _RunState, run_id: str, exc: Exception, points: int = 1
    ) -> None:
        self._note_fault(exc)
        state.failures += points
        if state.first_failure is None:
            state.first_failure = describe(exc)
            logger.error("run %s: a point could not be written: %s", run_id, exc)

    def _close(
        self,
        run_id: str,
        status: ExperimentStatus,
        final: dict[str, float],
        error: str | None,
        values: int | None = None,
    ) -> None:
        state = self._runs.get(run_id)
        if run_id in self._failed:
            self._runs.pop(run_id, None)
            raise TrackingUnavailableError(self._failed.pop(run_id))
        if state is None:
            raise RunNotFoundError(f"run {run_id} is not open in the tracking writer")
        record: dict[str, Any] = {}
        if state.skipped:
            record["skipped_non_finite"] = dict(state.skipped)
        if values is not None:
            record["values_logged"] = values + state.system_values
        if record:
            self.store.set_attributes(run_id, record)
        self._store_output(run_id, state)
        self.store.close_run(run_id, status, final, error)
        del self._runs[run_id]  # only now: after an outage the close is tried again
        if self.alerter is not None:
            self._alert_end(run_id, state, status, final, error)
        if state.failures:
            raise TrackingError(
                f"run {run_id}: {state.failures} points could not be written: {state.first_failure}"
            )

    def _alert_end(
        self,
        run_id: str,
        state: _RunState,
        status: ExperimentStatus,
        final: dict[str, float],
        error: str | None,
    ) -> None:
        """The run's end, and the rules its final metrics break, to the alerter."""
        assert self.alerter is not None
        try:
            event = AlertEvent(status.value)
        except ValueError:
            return
        self.alerter.notify(
            run_alert(
                event, run_id, state.experiment, status=status.value, verdict=state.verdict,
                detail=error, dashboard_url=self.alerter.dashboard_url,
            )
        )  # fmt: skip
        if self.alerter.rules:
            self._check_rules(run_id, state, final, status.value)

    def close_alerts(self, timeout: float) -> None:
        """Send the alerts still queued, for up to ``timeout`` seconds (the writer ends)."""
        if self.alerter is not None:
            self.alerter.close(timeout)

    def settle(self) -> None:
        """Write what the store buffered (the writer has nothing else to do just now)."""
        try:
            self.apply({"kind": "flush"})
        except Exception as exc:
            logger.error("buffered points not written yet: %s", describe(exc))

    def seconds_to_beat(self) -> float:
        """Seconds until the next heartbeat or system sample is due."""
        due = self._next_beat
        if self._system_interval and self._runs:
            due = min(due, self._next_sample)
        return max(0.0, due - time.monotonic())

    def _sample_if_due(self) -> None:
        """One system sample (``system/...``) on every open run, when due."""
        now = time.monotonic()
        if not self._system_interval or now < self._next_sample or self.retry.in_outage:
            return
        self._next_sample = now + self._system_interval
        if not self._runs:
            return
        try:
            if self._sampler is None:
                self._sampler = SystemSampler(self._owner)
            sample = self._sampler.sample()
        except Exception as exc:  # psutil missing or refused: no system series
            logger.warning("system metrics are off: %s", describe(exc))
            self._system_interval = 0.0
            return
        for run_id, state in list(self._runs.items()):
            if not sample:
                break
            step = max(state.system_step + 1, round(now - state.opened))
            try:
                self.store.track(run_id, [(step, sample)])
            except Exception as exc:  # a sample is not worth an outage's retries
                logger.debug("run %s: system metrics not written: %s", run_id, exc)
                continue
            state.system_step = step
            state.system_values += len(sample)

    def beat_if_due(self) -> None:
        """Record a heartbeat (and the skipped-value counts) of every open run, when due, and
        a system sample when that is due."""
        self._sample_if_due()
        if time.monotonic() < self._next_beat or self.retry.in_outage:
            return
        self._next_beat = time.monotonic() + self._interval
        self.settle()
        now = time.time()
        for run_id, state in self._runs.items():
            try:
                self.store.heartbeat(run_id, now)
                total = sum(state.skipped.values())
                if total != state.skipped_written:
                    self.store.set_attributes(run_id, {"skipped_non_finite": dict(state.skipped)})
                    state.skipped_written = total
            except Exception as exc:
                logger.warning("run %s: heartbeat not recorded: %s", run_id, exc)

    @property
    def has_open_runs(self) -> bool:
        """Whether some run was opened and not yet closed."""
        return bool(self._runs)

    def abandon(self, error: str = EXIT_ERROR) -> None:
        """Record every run still open as ``crashed`` with ``error`` (its process is ending)."""
        for run_id in list(self._runs):
            op: CloseOp = {
                "kind": "close",
                "run": run_id,
                "status": ExperimentStatus.CRASHED.value,
                "final": {},
                "error": error,
            }
            try:
                self.apply(op)
            except Exception as exc:
                logger.error("run %s: could not be closed: %s", run_id, exc)
