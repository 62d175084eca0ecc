"""Writes runs into an Aim repository (a local folder or ``aim://`` server), from one thread."""

from __future__ import annotations

import gc
import os
import socket
import time
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from agentic_trading.config import Settings
from agentic_trading.status import ExperimentStatus
from agentic_trading.tracking.backends.aim._storage import (
    ATTR_CONFIG,
    ATTR_ERROR,
    ATTR_FINAL,
    ATTR_HEARTBEAT,
    ATTR_HOST,
    ATTR_PID,
    ATTR_STATUS,
    AimIndexer,
    artifacts_uri,
    ensure_repository,
    ensure_writable,
    import_aim,
    repo_location,
)
from agentic_trading.tracking.errors import (
    RunNotFoundError,
    TrackingError,
    TrackingUnavailableError,
)

__all__ = ["AimRunStore"]


class AimRunStore:
    """A :class:`~agentic_trading.tracking.base.RunStore` over Aim runs.

    Config goes to the run's ``hparams``; status, final metrics, error, host, pid and heartbeat
    are run attributes; metrics are Aim metric sequences; artifacts go to Aim's artifact storage.
    """

    def __init__(self, settings: Settings, owner_pid: int | None = None) -> None:
        self._owner_pid = owner_pid or os.getpid()
        self.location = repo_location(settings)
        self._artifacts_uri = artifacts_uri(settings)
        self._runs: dict[str, Any] = {}
        self._host = socket.gethostname()
        self._indexer = AimIndexer(self.location)

    def check_writable(self) -> None:
        ensure_writable(self.location)
        ensure_repository(self.location)

    def open_run(
        self, run_id: str, experiment: str, config: Mapping[str, Any], tags: Sequence[str]
    ) -> datetime:
        aim = import_aim()
        import aim.sdk.base_run as base_run

        self.check_writable()
        # Aim creates a run only under a hash it generates; the caller chose ours (so that
        # create_run need not wait for the writer), so Aim's generator hands out that one.
        generate = getattr(base_run, "generate_run_hash")  # noqa: B009
        setattr(base_run, "generate_run_hash", lambda *_: run_id)  # noqa: B010
        try:
            run = aim.Run(
                repo=self.location,
                experiment=experiment,
                system_tracking_interval=None,
                log_system_params=False,
                capture_terminal_logs=False,
            )
        except Exception as exc:
            raise TrackingUnavailableError(
                f"cannot create a run in the Aim repository {self.location!r}: "
                f"{type(exc).__name__}: {exc}"
            ) from None
        finally:
            setattr(base_run, "generate_run_hash", generate)  # noqa: B010
        if run.hash != run_id:
            raise TrackingError(f"Aim created run {run.hash} instead of {run_id}")
        run[ATTR_CONFIG] = dict(config)
        run[ATTR_STATUS] = ExperimentStatus.RUNNING.value
        run[ATTR_FINAL] = {}
        run[ATTR_ERROR] = None
        run[ATTR_HOST] = self._host
        run[ATTR_PID] = self._owner_pid
        run[ATTR_HEARTBEAT] = time.time()
        for tag in tags:
            run.add_tag(tag)
        if self._artifacts_uri:
            run.set_artifacts_uri(self._artifacts_uri)
        self._runs[run.hash] = run
        return datetime.fromtimestamp(run.creation_time, tz=UTC)

    def _run(self, run_id: str) -> Any:
        try:
            return self._runs[run_id]
        except KeyError:
            raise RunNotFoundError(f"run {run_id} is not open in this process") from None

    def track(self, run_id: str, step: int, values: Mapping[str, float]) -> None:
        self._run(run_id).track(dict(values), step=step)

    def set_attributes(self, run_id: str, attributes: Mapping[str, Any]) -> None:
        run = self._run(run_id)
        for key, value in attributes.items():
            run[key] = value

    def add_tags(self, run_id: str, tags: Sequence[str]) -> None:
        run = self._run(run_id)
        for tag in tags:
            run.add_tag(tag)

    def log_artifact(self, run_id: str, path: Path, name: str) -> str:
        run = self._run(run_id)
        if not self._artifacts_uri:
            raise TrackingError(
                "artifacts need a shared store when tracking through aim://: "
                "set ML_ARTIFACTS_URI (for example file:///shared/artifacts or s3://bucket/path)"
            )
        run.log_artifact(str(path), name=name, block=True)
        return str(run.artifacts[name].uri)

    def heartbeat(self, run_id: str, at: float) -> None:
        self._run(run_id)[ATTR_HEARTBEAT] = at

    def close_run(
        self,
        run_id: str,
        status: ExperimentStatus,
        final_metrics: Mapping[str, float],
        error: str | None,
    ) -> None:
        run = self._runs.pop(run_id, None)
        if run is None:
            raise RunNotFoundError(f"run {run_id} is not open in this process")
        run[ATTR_FINAL] = dict(final_metrics)
        run[ATTR_ERROR] = error
        run[ATTR_HEARTBEAT] = time.time()
        run[ATTR_STATUS] = status.value
        repo = run.repo
        run.close()
        # Close the run's rocksdb containers now: the repository's pool keeps them open until
        # garbage collection, and a reader opening them meanwhile sees the metrics half-written.
        for pool in (repo.container_pool, repo.persistent_pool):
            for config, container in list(pool.items()):
                if config.sub == run_id:
                    container.close()
                    pool.pop(config, None)
        # Aim's own readers (SDK, `aim runs`, AimQL) see a run's data only once it is indexed.
        self._indexer.index([run_id])

    def close(self) -> None:
        if self.location.startswith("aim://"):
            # Aim's remote objects release their server-side resources from finalizers; run
            # them now, while the server is surely reachable, not at interpreter exit.
            gc.collect()
