"""Tracking backends, chosen from the settings (``ML_TRACKING_BACKEND``)."""

from __future__ import annotations

from pathlib import Path

from agentic_trading.config import Settings
from agentic_trading.tracking.base import RunReader, RunStore

__all__ = [
    "artifacts_root",
    "create_run_reader",
    "create_run_store",
    "download_artifact",
]


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


def artifacts_root(settings: Settings) -> str | None:
    """Where this host's store keeps artifacts, as a URI (``None`` when a server keeps them)."""
    if settings.ml_tracking_backend == "mlflow":
        from agentic_trading.tracking.backends.mlflow._storage import artifact_root

        return artifact_root(settings)
    from agentic_trading.tracking.backends.aim._storage import artifacts_uri

    return artifacts_uri(settings)


def download_artifact(uri: str, settings: Settings, folder: Path) -> Path:
    """A copy in ``folder`` of an artifact a tracking server keeps (``mlflow-artifacts:/...``),
    fetched through the backend's client; ``ValueError`` when no backend here can fetch it."""
    if settings.ml_tracking_backend != "mlflow":
        raise ValueError(f"{uri} is not a local file and the Aim backend cannot fetch it")
    from agentic_trading.tracking.backends.mlflow._storage import import_mlflow

    local = import_mlflow().artifacts.download_artifacts(
        artifact_uri=uri, dst_path=str(folder), tracking_uri=settings.mlflow_store_uri()
    )
    return Path(local)
