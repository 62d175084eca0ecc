"""Writes runs into an Aim repository (a local folder or ``aim://`` server), from one thread."""

from __future__ import annotations

import gc
import logging
import os
import socket
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from agentic_trading.config import Settings
from agentic_trading.status import ExperimentStatus
from agentic_trading.tracking.backends.aim._series import write_points
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
    exit_cleanly_from_aim_server,
    import_aim,
    repo_location,
)
from agentic_trading.tracking.errors import (
    RunNotFoundError,
    TrackingError,
    TrackingServerUnreachableError,
    TrackingUnavailableError,
    describe,
)

__all__ = ["AimRunStore"]

logger = logging.getLogger("agentic_trading.tracking")


def _unreachable(exc: BaseException) -> bool:
    """Whether ``exc`` says that Aim's server did not answer (as opposed to refusing data)."""
    name = type(exc).__name__
    if isinstance(exc, OSError) or name in {"UnauthorizedRequestError", "InvalidHandshake"}:
        return True
    if type(exc).__module__.split(".")[0] in {"requests", "urllib3", "websockets"}:
        return True
    return isinstance(exc, RuntimeError) and "connect" in str(exc).lower()


class AimRunStore:
    """A :class:`~agentic_trading.tracking.base.RunStore` over Aim runs.

    Config goes to the run's ``hparams``; status, final metrics, error, host, pid and heartbeat
    are run attributes; metrics are Aim metric sequences; artifacts go to Aim's artifact storage.
    """

    def __init__(self, settings: Settings, owner_pid: int | None = None) -> None:
        self._owner_pid = owner_pid or os.getpid()
        self._settings = settings
        self.location = repo_location(settings)
        self._artifacts_uri = artifacts_uri(settings)
        self._runs: dict[str, Any] = {}
        self._host = socket.gethostname()
        self._indexer = AimIndexer(self.location)
        self._unindexed: list[str] = []  # closed runs, indexed by the next flush

    def check_writable(self) -> None:
        # Milliseconds: the folder exists or can be made, and is writable. Setting up a new
        # Aim repository takes seconds; the writer does that (open_run), not the training.
        ensure_writable(self.location)

    @staticmethod
    def warm_up() -> None:
        """Import Aim's SDK and Alembic, and set SQLAlchemy's mappers up: the one-off work of
        any store."""
        import_aim()
        import aim.sdk.base_run
        import aim.sdk.repo  # noqa: F401
        from sqlalchemy.orm import configure_mappers

        configure_mappers()
        import alembic.command  # noqa: F401  (a new repository's migrations: _migrations)

        import agentic_trading.tracking.backends.aim._migrations  # noqa: F401

    def prepare(self) -> None:
        self.warm_up()
        if self._is_remote:
            return
        ensure_writable(self.location)
        ensure_repository(self.location)  # a new repository: the heavy part of the first run
        import_aim().Repo.from_path(self.location).structured_db.find_run("0" * 24)

    def check_metric_names(self, names: Sequence[str]) -> None:
        pass  # Aim keeps any name the tracker accepts

    def check_params(self, params: Mapping[str, Any]) -> None:
        pass

    def flush(self) -> list[tuple[str, int, str]]:
        # Every point is written as it comes; runs closed since the last flush are indexed
        # here, after the writer answered the training that closed them.
        closed, self._unindexed = self._unindexed, []
        self._indexer.index(closed)
        return []

    def open_run(
        self, run_id: str, experiment: str, config: Mapping[str, Any], tags: Sequence[str]
    ) -> datetime:
        ensure_writable(self.location)
        ensure_repository(self.location)
        run = self._runs.get(run_id)  # created before the server stopped answering: go on
        if run is None:
            run = self._create(run_id, experiment)
        with self._remote("create a run"):
            run[ATTR_CONFIG] = dict(config)
            run[ATTR_STATUS] = ExperimentStatus.RUNNING.value
            run[ATTR_FINAL] = {}
            run[ATTR_ERROR] = None
            run[ATTR_HOST] = self._host
            run[ATTR_PID] = self._owner_pid
            run[ATTR_HEARTBEAT] = run.creation_time  # as the catalogue records it
            for tag in tags:
                run.add_tag(tag)
            if self._artifacts_uri:
                run.set_artifacts_uri(self._artifacts_uri)
            return datetime.fromtimestamp(run.creation_time, tz=UTC)

    def _create(self, run_id: str, experiment: str) -> Any:
        aim = import_aim()
        import aim.sdk.base_run as base_run

        # Aim creates a run only under a hash it generates; the caller chose ours (so that
        # create_run need not wait for the writer), so Aim's generator hands out that one.
        generate = getattr(base_run, "generate_run_hash")  # noqa: B009
        setattr(base_run, "generate_run_hash", lambda *_: run_id)  # noqa: B010
        try:
            with self._remote("create a run"):
                run = aim.Run(
                    repo=self.location,
                    experiment=experiment,
                    system_tracking_interval=None,
                    log_system_params=False,
                    capture_terminal_logs=False,
                )
        except TrackingServerUnreachableError:
            raise
        except Exception as exc:
            raise TrackingUnavailableError(
                f"cannot create a run in the Aim repository {self.location!r}: {describe(exc)}"
            ) from None
        finally:
            setattr(base_run, "generate_run_hash", generate)  # noqa: B010
        if run.hash != run_id:
            raise TrackingError(f"Aim created run {run.hash} instead of {run_id}")
        if self._is_remote:  # at exit, wait for the server as long as for any operation
            exit_cleanly_from_aim_server(self._settings.ml_retry_timeout)
        self._runs[run_id] = run
        return run

    @property
    def _is_remote(self) -> bool:
        return self.location.startswith("aim://")

    @contextmanager
    def _remote(self, what: str) -> Iterator[None]:
        """Turn an Aim server that stopped answering into ``TrackingServerUnreachableError``
        (the writer retries the operation); a local repository's errors pass unchanged."""
        try:
            yield
        except Exception as exc:
            if not (self._is_remote and _unreachable(exc)):
                raise
            self._reconnect(exc)
            raise TrackingServerUnreachableError(
                f"cannot {what}: the Aim server at {self.location} does not answer "
                f"({type(exc).__name__}: {exc})"
            ) from None

    def _reconnect(self, exc: Exception) -> None:
        # A restarted server no longer knows this client ("unauthorized"): introduce it again,
        # and Aim re-creates the client's open runs on the server.
        if type(exc).__name__ != "UnauthorizedRequestError":
            return
        try:
            import_aim().Repo.from_path(self.location)._client.reconnect()
        except Exception as again:
            logger.debug("reconnecting to %s failed: %s", self.location, again)

    def _run(self, run_id: str) -> Any:
        try:
            return self._runs[run_id]
        except KeyError:
            raise RunNotFoundError(f"run {run_id} is not open in this process") from None

    def track(self, run_id: str, points: Sequence[tuple[int, Mapping[str, float]]]) -> None:
        run = self._run(run_id)
        with self._remote("write points"):
            write_points(run, points)

    def set_attributes(self, run_id: str, attributes: Mapping[str, Any]) -> None:
        run = self._run(run_id)
        with self._remote("set run attributes"):
            for key, value in attributes.items():
                run[key] = value

    def add_tags(self, run_id: str, tags: Sequence[str]) -> None:
        run = self._run(run_id)
        with self._remote("tag a run"):
            for tag in tags:
                run.add_tag(tag)

    def log_artifact(self, run_id: str, path: Path, name: str) -> str:
        run = self._run(run_id)
        if not self._artifacts_uri:
            try:
                self._settings.check_artifact_store()
            except ValueError as exc:
                raise TrackingError(str(exc)) from None
        with self._remote("store an artifact"):
            run.log_artifact(str(path), name=name, block=True)
            return str(run.artifacts[name].uri)

    def heartbeat(self, run_id: str, at: float) -> None:
        run = self._run(run_id)
        with self._remote("record a heartbeat"):
            run[ATTR_HEARTBEAT] = at

    def close_run(
        self,
        run_id: str,
        status: ExperimentStatus,
        final_metrics: Mapping[str, float],
        error: str | None,
    ) -> None:
        run = self._run(run_id)
        with self._remote("finish a run"):
            run[ATTR_FINAL] = dict(final_metrics)
            run[ATTR_ERROR] = error
            run[ATTR_HEARTBEAT] = run.creation_time  # as the catalogue records it
            run[ATTR_STATUS] = status.value
            repo = run.repo
            run.close()
        del self._runs[run_id]  # only now: a retry after an outage finds it still open
        # Close the run's rocksdb containers now: the repository's pool keeps them open until
        # garbage collection, and a reader opening them meanwhile sees the metrics half-written.
        for pool in (repo.container_pool, repo.persistent_pool):
            for config, container in list(pool.items()):
                if config.sub == run_id:
                    container.close()
                    pool.pop(config, None)
        # Aim's own readers (SDK, `aim runs`, AimQL) see a run's data only once it is indexed
        # (20-30 ms a run): flush does it, which the writer calls once the queue is empty and
        # before it stops, so the training waiting on this close is not held up by it.
        self._unindexed.append(run_id)

    def close(self) -> None:
        # Runs closed since the last flush (say, recorded as crashed as the writer stops).
        self._indexer.index(self._unindexed)
        self._unindexed = []
        if self.location.startswith("aim://"):
            # Aim's remote objects release their server-side resources from finalizers; run
            # them now, while the server is surely reachable, not at interpreter exit.
            gc.collect()
