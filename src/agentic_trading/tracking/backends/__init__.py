"""Tracking backends, chosen from the settings (``ML_TRACKING_BACKEND``)."""

from __future__ import annotations

from agentic_trading.config import Settings
from agentic_trading.tracking.base import RunReader, RunStore

__all__ = ["create_run_reader", "create_run_store"]


def create_run_store(settings: Settings, owner_pid: int | None = None) -> RunStore:
    """The run store that ``ML_TRACKING_BACKEND`` names; runs record ``owner_pid`` (default:
    this process) as the process whose death means they crashed."""
    if settings.ml_tracking_backend == "aim":
        from agentic_trading.tracking.backends.aim import AimRunStore

        return AimRunStore(settings, owner_pid=owner_pid)
    if settings.ml_tracking_backend == "mlflow":
        from agentic_trading.tracking.backends.mlflow.store import MlflowRunStore

        return MlflowRunStore(settings, owner_pid=owner_pid)
    raise ValueError(f"ML_TRACKING_BACKEND={settings.ml_tracking_backend!r} is not supported")


def create_run_reader(settings: Settings) -> RunReader:
    """The run reader that ``ML_TRACKING_BACKEND`` names."""
    if settings.ml_tracking_backend == "aim":
        from agentic_trading.tracking.backends.aim import AimRunReader, AimServerRunReader

        if settings.is_remote_tracking():
            return AimServerRunReader(settings)
        return AimRunReader(settings)
    if settings.ml_tracking_backend == "mlflow":
        from agentic_trading.tracking.backends.mlflow.reader import MlflowRunReader

        return MlflowRunReader(settings)
    raise ValueError(f"ML_TRACKING_BACKEND={settings.ml_tracking_backend!r} is not supported")
