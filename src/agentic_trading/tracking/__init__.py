"""Tracking: permanent experiment records (config, metric curves, final results, models) in Aim.

::

    from agentic_trading.tracking import TrainingMetrics, get_ml_tracker

    tracker = await get_ml_tracker()
    run = await tracker.create_run("PPO_EUR_USD", {"agent_type": "PPO", "learning_rate": 3e-4})
    await tracker.log_metrics(run, TrainingMetrics(step=1000, loss=0.045, reward=1250.5))
    await tracker.finish_run(run, ExperimentStatus.COMPLETED, final_metrics={"win_rate": 0.68})

    repo = await get_experiment_repository()
    best = await repo.best_run("PPO_EUR_USD", "sharpe_ratio")
"""

from __future__ import annotations

import threading

from agentic_trading.config import TRACKING_FIELDS, Settings, get_settings
from agentic_trading.status import ExperimentStatus
from agentic_trading.tracking.backends import create_run_reader, create_run_store
from agentic_trading.tracking.catalogue import CatalogueUnavailableError, open_catalogue
from agentic_trading.tracking.errors import (
    RunFinishedError,
    RunNotFoundError,
    TrackingError,
    TrackingUnavailableError,
)
from agentic_trading.tracking.records import (
    ExperimentSummary,
    MetricSeries,
    RunComparison,
    RunDetail,
    RunHandle,
    RunSummary,
    TrainingMetrics,
)
from agentic_trading.tracking.repository import ExperimentRepository, SyncExperimentRepository
from agentic_trading.tracking.tracker import SyncTracker, Tracker
from agentic_trading.tracking.writer import BackgroundWriter

__all__ = [
    "CatalogueUnavailableError",
    "ExperimentRepository",
    "ExperimentStatus",
    "ExperimentSummary",
    "MetricSeries",
    "RunComparison",
    "RunDetail",
    "RunFinishedError",
    "RunHandle",
    "RunNotFoundError",
    "RunSummary",
    "SyncExperimentRepository",
    "SyncTracker",
    "Tracker",
    "TrackingError",
    "TrackingUnavailableError",
    "TrainingMetrics",
    "get_experiment_repository",
    "get_ml_tracker",
    "get_sync_experiment_repository",
    "get_sync_tracker",
    "start_writer",
]

_writers: dict[str, BackgroundWriter] = {}
_writers_lock = threading.Lock()


def _writer(settings: Settings | None) -> tuple[BackgroundWriter, Settings]:
    # One writer per process and tracking settings: trackers made from equal settings share
    # its queue, writer process and open runs. A writer that failed (its storage refused
    # writes, its process died) is replaced for the next tracker: a long-lived process, such as
    # a study worker, tracks its next trial again.
    settings = settings or get_settings()
    key = repr(sorted(settings.model_dump(include=set(TRACKING_FIELDS)).items()))
    with _writers_lock:
        writer = _writers.get(key)
        if writer is None or writer.closed or writer.failure is not None:
            writer = _writers[key] = _new_writer(settings)
    return writer, settings


def _new_writer(settings: Settings) -> BackgroundWriter:
    return BackgroundWriter(create_run_store(settings), settings)


def start_writer(settings: Settings | None = None) -> None:
    """Start this process's tracking writer now, in the background (it imports the tracking
    backend, once per process). Trackers start it on first use anyway; call this first
    thing in a script, before importing torch, so that its start overlaps your own imports
    (as ``wandb.setup()`` does for W&B's service)."""
    _writer(settings)


async def get_ml_tracker(settings: Settings | None = None) -> Tracker:
    """The tracker for ``ML_TRACKING_BACKEND`` and ``ML_STORAGE_PATH`` (or ``settings``)."""
    writer, settings = _writer(settings)
    return Tracker(writer, settings)


def get_sync_tracker(settings: Settings | None = None) -> SyncTracker:
    """The same tracker for synchronous code; shares the process's writer with
    :func:`get_ml_tracker` when both use the default settings."""
    writer, settings = _writer(settings)
    return SyncTracker(writer, settings)


async def get_experiment_repository(settings: Settings | None = None) -> ExperimentRepository:
    """The repository of tracked runs at ``ML_STORAGE_PATH`` (or ``settings``)."""
    return ExperimentRepository(get_sync_experiment_repository(settings))


def get_sync_experiment_repository(settings: Settings | None = None) -> SyncExperimentRepository:
    """The repository for synchronous code (CLI, dashboard callbacks). Lists come from the run
    catalogue (``ML_CATALOG_URL``) when there is one; :class:`CatalogueUnavailableError` if
    its database does not answer."""
    settings = settings or get_settings()
    return SyncExperimentRepository(create_run_reader(settings), settings, open_catalogue(settings))
