"""Aim's own UI (``aim up``) on the repository we write, and where it shows a run."""

from __future__ import annotations

from agentic_trading.common.extras import executable
from agentic_trading.config import Settings
from agentic_trading.tracking.backends import UiLaunch
from agentic_trading.tracking.errors import TrackingError

__all__ = ["launch", "run_url"]


def launch(settings: Settings, host: str, port: int) -> UiLaunch:
    """``aim up`` on the local repository (set up and indexed first, so it opens at once)."""
    from agentic_trading.tracking import get_sync_experiment_repository
    from agentic_trading.tracking.backends.aim._storage import ensure_writable, import_aim

    if settings.is_remote_tracking():
        raise TrackingError(
            f"ML_STORAGE_PATH={settings.ml_storage_path} is an Aim server; its UI runs where its "
            "repository is: aim up --repo PATH on that host"
        )
    repo = get_sync_experiment_repository(settings)
    path = repo.location
    ensure_writable(path)
    import_aim().Repo.from_path(path, init=True)  # a new repository needs no prompt
    repo.list_runs()  # index what trackers wrote, so the UI shows it at once
    command = [executable("aim", "tracking", TrackingError), "up", "--repo", path]
    return UiLaunch(
        [*command, "--host", host, "--port", str(port), "-y"],
        f"Aim UI on {path}: http://{host}:{port} (Ctrl-C stops it)",
    )


def run_url(settings: Settings, run_id: str | None) -> str:
    """Aim's page of run ``run_id`` (its home page for ``None``): ``DASHBOARD_AIM_UI_URL``."""
    base = settings.dashboard_aim_ui_url
    return base if run_id is None else f"{base}/runs/{run_id}"
