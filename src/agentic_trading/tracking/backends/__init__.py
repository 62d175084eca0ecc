"""Tracking backends, chosen from the settings (``ML_TRACKING_BACKEND``).

One registry, :data:`BACKENDS`, maps a backend's name to what it provides: its run store, its
run reader, its own UI and the model registry it keeps in step. Each part is named as
``module:attribute`` and imported on first use, so choosing a backend never imports the other
(Aim and MLflow each take a second or more to import).
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agentic_trading.config import Settings
from agentic_trading.tracking.base import RunReader, RunStore

__all__ = [
    "BACKENDS",
    "Backend",
    "UiLaunch",
    "artifacts_root",
    "backend_for",
    "create_run_reader",
    "create_run_store",
    "download_artifact",
]


@dataclass(frozen=True)
class UiLaunch:
    """How to show a backend's own UI: the command to run (``None`` when a server already is
    the UI), what to tell the user, and whether it has no login (a warning off loopback)."""

    command: list[str] | None
    message: str
    unauthenticated: bool = True


@dataclass(frozen=True)
class Backend:
    """A tracking backend's parts, each ``module:attribute``, imported on first use.

    :param title: the backend's name for people ("Aim", "MLflow").
    :param store: ``(settings, owner_pid=...) -> RunStore``.
    :param reader: ``(settings) -> RunReader``.
    :param ui: ``(settings, host, port) -> UiLaunch``: its own UI on the runs we wrote.
    :param ui_url: ``(settings, run_id | None) -> str``: where that UI shows a run (or all).
    :param artifacts_root: ``(settings) -> str | None``: where this host's store keeps
        artifacts, as a URI (``None`` when a server keeps them).
    :param download: ``(uri, settings, folder) -> Path``, or ``None``: a copy of an artifact
        a tracking server keeps.
    :param registry_mirror: ``(settings) -> RegistryMirror``, or ``None``: the backend's own
        model registry, kept in step with ours.
    """

    name: str
    title: str
    store: str
    reader: str
    ui: str
    ui_url: str
    artifacts_root: str
    download: str | None = None
    registry_mirror: str | None = None

    def load(self, part: str) -> Any:
        """The attribute that ``part`` (a field of this backend) names, imported."""
        target = getattr(self, part)
        if target is None:
            raise ValueError(f"the {self.title} backend has no {part.replace('_', ' ')}")
        module, _, attribute = target.partition(":")
        return getattr(importlib.import_module(module), attribute)


_AIM = "agentic_trading.tracking.backends.aim"
_MLFLOW = "agentic_trading.tracking.backends.mlflow"

#: Every tracking backend, by the name ``ML_TRACKING_BACKEND`` takes.
BACKENDS: dict[str, Backend] = {
    "aim": Backend(
        name="aim",
        title="Aim",
        store=f"{_AIM}.store:AimRunStore",
        reader=f"{_AIM}:create_reader",
        ui=f"{_AIM}.ui:launch",
        ui_url=f"{_AIM}.ui:run_url",
        artifacts_root=f"{_AIM}._storage:artifacts_uri",
    ),
    "mlflow": Backend(
        name="mlflow",
        title="MLflow",
        store=f"{_MLFLOW}.store:MlflowRunStore",
        reader=f"{_MLFLOW}.reader:MlflowRunReader",
        ui=f"{_MLFLOW}.ui:launch",
        ui_url=f"{_MLFLOW}.ui:run_url",
        artifacts_root=f"{_MLFLOW}._storage:artifact_root",
        download=f"{_MLFLOW}._storage:download_artifact",
        registry_mirror="agentic_trading.models.mlflow_registry:MlflowModelRegistry",
    ),
}


def backend_for(settings: Settings) -> Backend:
    """The backend ``ML_TRACKING_BACKEND`` names; ``ValueError`` listing those there are."""
    try:
        return BACKENDS[settings.ml_tracking_backend]
    except KeyError:
        raise ValueError(
            f"ML_TRACKING_BACKEND={settings.ml_tracking_backend!r} is not supported: use one "
            f"of {', '.join(BACKENDS)}"
        ) from None


def create_run_store(settings: Settings, owner_pid: int | None = None) -> RunStore:
    """The run store that ``ML_TRACKING_BACKEND`` names; runs record ``owner_pid`` (default:
    this process) as the process whose death means they crashed."""
    store: RunStore = backend_for(settings).load("store")(settings, owner_pid=owner_pid)
    return store


def create_run_reader(settings: Settings) -> RunReader:
    """The run reader that ``ML_TRACKING_BACKEND`` names."""
    reader: RunReader = backend_for(settings).load("reader")(settings)
    return reader


def artifacts_root(settings: Settings) -> str | None:
    """Where this host's store keeps artifacts, as a URI (``None`` when a server keeps them)."""
    root: str | None = backend_for(settings).load("artifacts_root")(settings)
    return root


def download_artifact(uri: str, settings: Settings, folder: Path) -> Path:
    """A copy in ``folder`` of an artifact a tracking server keeps (``mlflow-artifacts:/...``),
    fetched through the backend's client; ``ValueError`` when no backend here can fetch it."""
    backend = backend_for(settings)
    if backend.download is None:
        raise ValueError(
            f"{uri} is not a local file and the {backend.title} backend cannot fetch it"
        )
    path: Path = backend.load("download")(uri, settings, folder)
    return path
