"""Where an Aim repository is, how our records map onto Aim run attributes, and indexing."""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

from agentic_trading.common.extras import require
from agentic_trading.config import Settings
from agentic_trading.tracking.backends._folders import ensure_writable_folder
from agentic_trading.tracking.errors import TrackingUnavailableError

__all__ = [
    "ATTR_CONFIG",
    "ATTR_ENVIRONMENT",
    "ATTR_ERROR",
    "ATTR_FINAL",
    "ATTR_HEARTBEAT",
    "ATTR_HOST",
    "ATTR_PID",
    "ATTR_SKIPPED",
    "ATTR_STATUS",
    "ATTR_VALUES",
    "AimIndexer",
    "artifacts_uri",
    "discard_remote_repo",
    "ensure_repository",
    "ensure_writable",
    "exit_cleanly_from_aim_server",
    "import_aim",
    "repo_location",
]

logger = logging.getLogger("agentic_trading.tracking")

# Our record of a run, as Aim run attributes (readable with Aim's SDK, UI and AimQL, e.g.
# ``run.status == "completed" and run.final_metrics.sharpe_ratio > 1``).
ATTR_CONFIG = "hparams"
ATTR_STATUS = "status"
ATTR_FINAL = "final_metrics"
ATTR_ERROR = "error"
ATTR_HEARTBEAT = "heartbeat_at"
ATTR_HOST = "host"
ATTR_PID = "pid"
ATTR_SKIPPED = "skipped_non_finite"
ATTR_VALUES = "values_logged"
ATTR_ENVIRONMENT = "environment"


def import_aim() -> Any:
    """The ``aim`` package, or an error that names the extra to install."""
    return require("aim", "tracking", "the Aim tracker is not installed", TrackingUnavailableError)


def repo_location(settings: Settings) -> str:
    """``ML_STORAGE_PATH`` as Aim takes it: an absolute folder, or the ``aim://`` URL as is."""
    if settings.is_remote_tracking():
        return settings.ml_storage_path
    return str(Path(settings.ml_storage_path).expanduser().resolve())


_exit_wait = [0.0]  # seconds the exit hook gives Aim's server to take what is queued


def exit_cleanly_from_aim_server(wait: float) -> None:
    """Make interpreter exit finish even when Aim's server is gone.

    Aim releases remote resources from its own exit hook, and if one of them fails (the server
    stopped) that hook waits forever. Ours runs first (hooks run last-registered first): it runs
    the same finalizers, each failure logged, for at most ``wait`` seconds in all, then leaves
    nothing for Aim's hook to wait on.
    """
    if _exit_wait[0] == 0.0:
        import atexit

        atexit.register(_finish_aim_resources)
    _exit_wait[0] = max(_exit_wait[0], wait, 1.0)


def _finish_aim_resources() -> None:
    import threading

    from aim.ext.cleanup import AutoClean

    registry: Any = getattr(AutoClean, "_finalizers")  # noqa: B009 - Aim's own registry

    def finish() -> None:
        ordered = sorted(registry.items(), key=lambda item: item[1][0])
        for _instance, (_priority, finalizer) in reversed(ordered):
            try:
                finalizer()
            except Exception as exc:
                logger.debug("releasing an Aim server resource at exit failed: %s", exc)

    worker = threading.Thread(target=finish, name="agentic-trading-aim-exit", daemon=True)
    worker.start()
    worker.join(_exit_wait[0])
    if worker.is_alive():
        logger.error(
            "the Aim server did not answer within %.0f s at exit; leaving without it", _exit_wait[0]
        )
    registry.clear()


def discard_remote_repo(repo: Any) -> None:
    """Forget a ``Repo`` on an Aim server that stopped answering, quietly.

    Aim releases a remote object's server-side resources from finalizers; on an unreachable
    server each would print a traceback (at exit, too). The server dropped them anyway.
    """
    client = getattr(repo, "_client", None)
    if client is None:
        return
    owners = [repo, getattr(repo, "_remote_repo_proxy", None), *client._resource_pool.values()]
    for owner in owners:
        cleaner = getattr(owner, "_resources", None)
        finalizer = getattr(cleaner, "finalizer", None)
        if finalizer is not None:
            finalizer.detach()
    client._heartbeat_sender._shutdown = True
    client.get_queue()._shutdown = True


def ensure_writable(location: str) -> None:
    """Create the repository's folder if needed, or raise a clear error saying why it cannot be."""
    if location.startswith("aim://"):
        return
    path = Path(location)
    ensure_writable_folder(
        path,
        f"ML_STORAGE_PATH={location!r}",
        "choose a folder you can write to",
        check=path / ".aim" if (path / ".aim").exists() else path,
    )


def artifacts_uri(settings: Settings) -> str | None:
    """Where artifacts go: ``ML_ARTIFACTS_URI``, else ``artifacts/`` under a local repository."""
    if settings.ml_artifacts_uri:
        return settings.ml_artifacts_uri
    if settings.is_remote_tracking():
        return None
    return Path(repo_location(settings), "artifacts").as_uri()


def ensure_repository(location: str) -> None:
    """Create the Aim repository at ``location`` unless it is complete, one process at a time.

    Aim sets a new repository up in steps (folders, index, database, then ``VERSION``); a second
    process opening it midway fails ("repository ... is out of date"). Trainings that start
    together on a new ``ML_STORAGE_PATH`` therefore take a file lock for the set-up.
    """
    if location.startswith("aim://") or Path(location, ".aim", "VERSION").is_file():
        return
    import fcntl

    # Only a writer sets a repository up: a training process that imports this module for
    # its store's checks does not pay for the migrations' imports (sqlite3, logging.config).
    from agentic_trading.tracking.backends.aim._migrations import (
        discard_unfinished_database,
        migrations_in_process,
    )

    try:
        with open(Path(location, ".agentic-trading-init.lock"), "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                if not Path(location, ".aim", "VERSION").is_file():
                    discard_unfinished_database(Path(location, ".aim"))
                    aim = import_aim()
                    with migrations_in_process():
                        aim.Repo.from_path(location, init=True)
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)
    except OSError as exc:
        raise TrackingUnavailableError(
            f"cannot set up the Aim repository in ML_STORAGE_PATH={location!r}: "
            f"{exc.strerror or exc}"
        ) from None


class AimIndexer:
    """Merges runs into a local repository's index, so that Aim's readers see them.

    Aim 3.29 readers (``Repo.query_runs``, ``Run(hash, read_only=True)``) see a run's attributes
    and metrics only after its index manager merged the run's chunk into the index; ``aim up``
    runs that manager, nothing else does. The indexer has a ``Repo`` of its own, so it never
    shares open trees with runs being written in the same process.
    """

    def __init__(self, location: str) -> None:
        self.location = location
        self._manager: Any = None

    def index(self, run_hashes: list[str], attempts: int = 3) -> list[str]:
        """Index ``run_hashes``; return those indexed. Best effort: failures are logged."""
        if not run_hashes or self.location.startswith("aim://"):
            return []
        try:
            manager = self._get_manager()
        except Exception as exc:  # nothing is lost: readers index outdated runs themselves
            logger.info("runs not indexed yet (the next reader does it): %s", exc)
            return []
        done: list[str] = []
        try:
            for run_hash in run_hashes:
                for attempt in range(attempts):
                    try:
                        manager.index(run_hash)
                        done.append(run_hash)
                        break
                    except Exception as exc:  # rocksdb lock or I/O error: retry, then leave
                        if attempt == attempts - 1:
                            # Nothing is lost: readers index outdated runs before each query.
                            logger.info(
                                "run %s not indexed yet (the next reader does it): %s",
                                run_hash,
                                exc,
                            )
                        time.sleep(0.05 * (attempt + 1))
        finally:
            manager.repo.container_pool.clear()  # close the index until the next call
        return done

    def is_outdated(self, run_hash: str, index: Any) -> bool:
        """Whether the run's files changed since it was last indexed (Aim's own check)."""
        return bool(self._get_manager()._is_run_index_outdated(run_hash, index))

    def _get_manager(self) -> Any:
        if self._manager is None:
            from aim.sdk.index_manager import RepoIndexManager

            # Made without RepoIndexManager.__init__: it schedules a watchdog observer that only
            # `aim up`'s background indexing starts, yet holds an inotify instance (and a
            # thread) for the rest of the process. Each writer and reader would hold one of the
            # user's 128 (the default limit); past them a training's final record failed with
            # "inotify instance limit reached". index() needs only these attributes.
            manager = RepoIndexManager.__new__(RepoIndexManager)
            manager.repo = import_aim().Repo(self.location)
            manager.repo_path = manager.repo.path
            manager.chunks_dir = Path(manager.repo.path) / "meta" / "chunks"
            manager.chunks_dir.mkdir(parents=True, exist_ok=True)
            manager._corrupted_runs = set()
            manager._watches = {}
            self._manager = manager
        return self._manager
