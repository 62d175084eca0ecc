"""``agentic-trading tracking-ui``: Aim's UI (``aim up``) on the tracking repository."""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

from agentic_trading.cli._common import errors, fail
from agentic_trading.config import Settings
from agentic_trading.tracking import get_sync_experiment_repository
from agentic_trading.tracking.backends.aim._storage import ensure_writable, import_aim

LOOPBACK = ("127.0.0.1", "localhost", "::1")


def aim_executable() -> str:
    """The ``aim`` command next to this Python, else the one on PATH."""
    beside = Path(sys.executable).with_name("aim")
    if beside.exists():
        return str(beside)
    found = shutil.which("aim")
    if found is None:
        fail("the aim command is not installed: pip install 'agentic-trading[tracking]'")
    return found


def run(settings: Settings, host: str, port: int) -> None:
    """Replace this process with ``aim up`` on ``ML_STORAGE_PATH``."""
    if settings.is_remote_tracking():
        fail(
            f"ML_STORAGE_PATH={settings.ml_storage_path} is an Aim server; its UI runs where its "
            "repository is: aim up --repo PATH on that host"
        )
    repo = get_sync_experiment_repository(settings)
    path = repo.location
    ensure_writable(path)
    import_aim().Repo.from_path(path, init=True)  # a new repository needs no prompt
    repo.list_runs()  # index what trackers wrote, so the UI shows it at once
    if host not in LOOPBACK:
        errors.print(
            f"[yellow]warning:[/] Aim's UI has no login; binding {host} lets anyone who reaches "
            "this machine read and delete your runs"
        )
    errors.print(f"Aim UI on {path}: http://{host}:{port} (Ctrl-C stops it)")
    command = [aim_executable(), "up", "--repo", path, "--host", host, "--port", str(port), "-y"]
    sys.stdout.flush()
    sys.stderr.flush()
    os.execv(command[0], command)
