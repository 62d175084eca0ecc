"""``agentic-trading tracking-ui``: the tracking backend's own UI on the runs we wrote.

Aim: ``aim up`` on the local repository. MLflow: ``mlflow ui`` on a local store (or a database
URI); an MLflow server is its own UI, so its address is printed.
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

from agentic_trading.cli._common import errors, fail
from agentic_trading.config import Settings
from agentic_trading.tracking import get_sync_experiment_repository

LOOPBACK = ("127.0.0.1", "localhost", "::1")


def executable(name: str, extra: str) -> str:
    """The ``name`` command next to this Python, else the one on PATH."""
    beside = Path(sys.executable).with_name(name)
    if beside.exists():
        return str(beside)
    found = shutil.which(name)
    if found is None:
        fail(f"the {name} command is not installed: pip install 'agentic-trading[{extra}]'")
    return found


def _warn_exposed(host: str, ui: str) -> None:
    if host not in LOOPBACK:
        errors.print(
            f"[yellow]warning:[/] {ui} has no login; binding {host} lets anyone who reaches "
            "this machine read and delete your runs"
        )


def _exec(command: list[str]) -> None:
    sys.stdout.flush()
    sys.stderr.flush()
    os.execv(command[0], command)


def run(settings: Settings, host: str, port: int) -> None:
    """Replace this process with the backend's UI (or print where it already is)."""
    if settings.ml_tracking_backend == "mlflow":
        _mlflow_ui(settings, host, port)
    else:
        _aim_ui(settings, host, port)


def _aim_ui(settings: Settings, host: str, port: int) -> None:
    from agentic_trading.tracking.backends.aim._storage import ensure_writable, import_aim

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
    _warn_exposed(host, "Aim's UI")
    errors.print(f"Aim UI on {path}: http://{host}:{port} (Ctrl-C stops it)")
    aim = executable("aim", "tracking")
    _exec([aim, "up", "--repo", path, "--host", host, "--port", str(port), "-y"])


def _mlflow_ui(settings: Settings, host: str, port: int) -> None:
    from agentic_trading.common.databases import sqlalchemy_url
    from agentic_trading.tracking.backends.mlflow._storage import artifact_root, connect

    uri = settings.mlflow_store_uri()
    if uri.startswith(("http://", "https://")):
        errors.print(f"MLflow's UI is the MLflow server itself: {settings.tracking_location()}")
        print(settings.tracking_location())
        return
    connect(settings)  # a new local store is set up first, so the UI opens on it at once
    _warn_exposed(host, "MLflow's UI")
    errors.print(
        f"MLflow UI on {settings.tracking_location()}: http://{host}:{port} (Ctrl-C stops it)"
    )
    command = [executable("mlflow", "mlflow"), "ui", "--backend-store-uri", sqlalchemy_url(uri)]
    root = artifact_root(settings)
    if root:
        command += ["--default-artifact-root", root]
    _exec([*command, "--host", host, "--port", str(port)])
