"""Where studies live: Optuna's RDB storage at ``STUDY_STORAGE``, with heartbeats and retries.

An SQLite file serves one machine (the default, ``sqlite:///./studies.db``); PostgreSQL serves
workers on any number of hosts. Every worker records a heartbeat of its running trial every
``STUDY_HEARTBEAT_INTERVAL`` seconds; a trial silent for ``STUDY_GRACE_PERIOD`` seconds is
failed by the next worker that asks for a trial, and Optuna's retry callback enqueues its
parameters again (at most ``STUDY_MAX_RETRY`` times), so a killed worker loses no trial.

A database that stops answering (a PostgreSQL restart, a locked SQLite file) is retried with
back-off for up to ``STUDY_RETRY_TIMEOUT`` seconds per outage, with one log line when it goes
and one when it is back.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import threading
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

from agentic_trading.common.databases import sqlalchemy_url
from agentic_trading.common.extras import require
from agentic_trading.common.retry import ServerRetry
from agentic_trading.config import Settings, SettingsError

__all__ = ["StudyStorageError", "import_optuna", "open_storage", "quiet_optuna", "sqlalchemy_url"]

logger = logging.getLogger("agentic_trading.studies")

T = TypeVar("T")


class StudyStorageError(RuntimeError):
    """The study storage cannot be used; the message names it (never its password)."""


def import_optuna() -> Any:
    """The ``optuna`` package, or an error that names the extra to install."""
    optuna = require("optuna", "studies", "studies need Optuna", StudyStorageError)
    optuna.logging.set_verbosity(optuna.logging.WARNING)  # our own lines say what happened
    return optuna


@contextlib.contextmanager
def quiet_optuna() -> Iterator[None]:
    """Optuna's heartbeat and retry are "experimental" in its own words and warn at every use;
    we rely on them on purpose (and test them), so their warnings are noise to users."""
    optuna = import_optuna()
    logger = logging.getLogger("optuna.study._optimize")
    cancelled = _CancelledTrials()
    logger.addFilter(cancelled)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            yield
    finally:
        logger.removeFilter(cancelled)


class _CancelledTrials(logging.Filter):
    """Drops Optuna's two "Trial N failed" warnings (one with a full traceback) for a trial
    that was stopped (Ctrl-C, SIGTERM): the worker says it ended cancelled."""

    def __init__(self) -> None:
        super().__init__()
        self.numbers: set[str] = set()

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        number = message.split(" ", 2)[1] if message.startswith("Trial ") else ""
        error = record.exc_info[1] if record.exc_info else None
        if type(error).__name__ == "TrialCancelled":
            self.numbers.add(number)
            return False
        return not (number in self.numbers and " failed with value " in message)


def _engine_kwargs(settings: Settings) -> dict[str, Any]:
    url = settings.study_storage
    if url.startswith("sqlite"):
        # Several worker processes share one file: wait for its lock instead of failing.
        return {"connect_args": {"timeout": 30}}
    return {
        "pool_size": settings.study_pool_size,
        "max_overflow": settings.study_pool_size,
        "pool_pre_ping": True,  # a restarted server's dead connections are replaced, not used
        "pool_timeout": 30,
        "connect_args": {"connect_timeout": 5},
    }


def _check_location(settings: Settings) -> None:
    url = settings.study_storage
    if url.startswith("sqlite:///"):
        path = Path(url.removeprefix("sqlite:///"))
        folder = path.expanduser().resolve().parent
        if not folder.is_dir():
            raise SettingsError(
                f"STUDY_STORAGE={url}: the folder {folder} does not exist; create it first"
            )


def _transient(exc: BaseException) -> bool:
    """An error that a database restart or a lock explains, worth retrying."""
    from sqlalchemy import exc as sa

    optuna = import_optuna()
    if isinstance(exc, sa.OperationalError | sa.InterfaceError | sa.TimeoutError):
        return True
    if isinstance(exc, optuna.exceptions.StorageInternalError):
        return isinstance(exc.__cause__ or exc.__context__, sa.OperationalError | sa.InterfaceError)
    return False


_RETRIED = (
    "create_new_study", "delete_study", "set_study_user_attr", "set_study_system_attr",
    "get_study_id_from_name", "get_study_name_from_id", "get_study_directions",
    "get_study_user_attrs", "get_study_system_attrs", "get_all_studies", "create_new_trial",
    "set_trial_param", "get_trial_id_from_study_id_trial_number", "set_trial_state_values",
    "set_trial_intermediate_value", "set_trial_user_attr", "set_trial_system_attr", "get_trial",
    "get_all_trials", "record_heartbeat", "_get_stale_trial_ids",
)  # fmt: skip


def _storage_class() -> type:
    """``RDBStorage`` whose calls ride out a database outage (made once, when Optuna loads)."""
    import_optuna()
    from optuna.storages import RDBStorage

    class ResilientStorage(RDBStorage):
        retry: ServerRetry
        location: str

    def retrying(method: Callable[..., T]) -> Callable[..., T]:
        @functools.wraps(method)
        def call(self: Any, *args: Any, **kwargs: Any) -> T:
            while True:
                try:
                    result = method(self, *args, **kwargs)
                except Exception as exc:
                    if not _transient(exc) or not self.retry.wait(
                        StudyStorageError(
                            f"the study storage {self.location} did not answer ({type(exc).__name__})"
                        )
                    ):
                        raise
                    continue
                self.retry.reached()
                return result

        return call

    for name in _RETRIED:
        setattr(ResilientStorage, name, retrying(getattr(RDBStorage, name)))
    return ResilientStorage


@functools.cache
def _resilient_storage() -> type:
    return _storage_class()


_storages: dict[tuple[Any, ...], Any] = {}
_storages_lock = threading.Lock()


def open_storage(settings: Settings) -> Any:
    """The Optuna storage of ``STUDY_STORAGE``, with heartbeats and failed-trial retries: one
    per process and settings (it holds a connection pool).

    Raises :class:`StudyStorageError` (one line, no password) when it cannot be reached.
    """
    key = tuple(getattr(settings, name) for name in _STORAGE_FIELDS)
    with _storages_lock:
        storage = _storages.get(key)
        if storage is None:
            storage = _storages[key] = _open_storage(settings)
        return storage


_STORAGE_FIELDS = tuple(name for name in Settings.model_fields if name.startswith("study_"))


def _open_storage(settings: Settings) -> Any:
    optuna = import_optuna()
    _check_location(settings)
    location = settings.study_location()
    try:
        with quiet_optuna():
            storage = _resilient_storage()(
                sqlalchemy_url(settings.study_storage),
                engine_kwargs=_engine_kwargs(settings),
                heartbeat_interval=settings.study_heartbeat_interval,
                grace_period=settings.study_grace_period,
                heartbeat_stale_trial_callback=optuna.storages.RetryHeartbeatStaleTrialCallback(
                    max_retry=settings.study_max_retry
                ),
            )
    except Exception as exc:
        reason = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0]
        raise StudyStorageError(
            f"the study storage {location} cannot be opened: {type(exc).__name__}: "
            f"{_masked(reason, settings)}"
        ) from None
    if storage.engine.dialect.name == "sqlite":
        _fast_sqlite(storage.engine)
    storage.location = location
    storage.retry = ServerRetry(
        settings.study_retry_timeout,
        server=f"the study storage {location}",
        held="study calls wait and retry",
        setting="STUDY_RETRY_TIMEOUT",
        logger=logger,
        base=0.5,
        cap=5.0,
    )
    return storage


def _fast_sqlite(engine: Any) -> None:
    """WAL with ``synchronous=NORMAL``, as the run catalogue: readers never block the workers'
    writes, and a commit no longer waits for the disk (a killed process still loses nothing
    committed; only a power cut may lose the last commits)."""
    import sqlalchemy as sa

    @sa.event.listens_for(engine, "connect")
    def _pragmas(connection: Any, _record: Any) -> None:
        cursor = connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    engine.dispose()  # the connections made so far predate the pragmas


def _masked(text: str, settings: Settings) -> str:
    from urllib.parse import urlsplit

    password = urlsplit(settings.study_storage).password
    return text.replace(password, "********") if password else text
