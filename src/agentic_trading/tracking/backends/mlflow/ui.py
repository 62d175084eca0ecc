"""MLflow's own UI: ``mlflow ui`` on a local store; an MLflow server is its own UI."""

from __future__ import annotations

from agentic_trading.common.extras import executable
from agentic_trading.config import Settings
from agentic_trading.tracking.backends import UiLaunch
from agentic_trading.tracking.errors import TrackingError

__all__ = ["launch", "run_url"]


def _server(settings: Settings) -> str | None:
    uri = settings.mlflow_store_uri()
    return uri if uri.startswith(("http://", "https://")) else None


def launch(settings: Settings, host: str, port: int) -> UiLaunch:
    """``mlflow ui`` on the local store (set up first, so the UI opens on it at once), or the
    server's address when there is one."""
    from agentic_trading.common.databases import sqlalchemy_url
    from agentic_trading.tracking.backends.mlflow._storage import artifact_root, connect

    if _server(settings):
        location = settings.tracking_location()
        return UiLaunch(None, f"MLflow's UI is the MLflow server itself: {location}", False)
    connect(settings)
    uri = sqlalchemy_url(settings.mlflow_store_uri())
    command = [executable("mlflow", "mlflow", TrackingError), "ui", "--backend-store-uri", uri]
    root = artifact_root(settings)
    if root:
        command += ["--default-artifact-root", root]
    return UiLaunch(
        [*command, "--host", host, "--port", str(port)],
        f"MLflow UI on {settings.tracking_location()}: http://{host}:{port} (Ctrl-C stops it)",
    )


def run_url(settings: Settings, run_id: str | None) -> str:
    """Where MLflow's UI is (its pages are by MLflow's own ids: search ``agentic.run_id``)."""
    return _server(settings) or settings.dashboard_aim_ui_url
