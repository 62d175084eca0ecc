"""``agentic-trading tracking-ui``: the tracking backend's own UI on the runs we wrote."""

from __future__ import annotations

import os
import sys
from typing import Annotated

import typer

from agentic_trading.cli._common import (
    errors,
    expected_errors,
    settings_with,
)
from agentic_trading.config import Settings
from agentic_trading.tracking.backends import backend_for


def tracking_ui_command(
    host: Annotated[
        str, typer.Option(help="Address to bind; anything but loopback exposes the UI.")
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=1, max=65535, help="Port of the UI.")] = 43800,
) -> None:
    """Open the tracking backend's own UI on the runs the tracker wrote.

    Aim (ML_TRACKING_BACKEND=aim): `aim up` on ML_STORAGE_PATH; configs are hparams, status and
    final metrics run attributes (AimQL: run.status == "completed"). MLflow: `mlflow ui` on the
    local store (an MLflow server is its own UI: its address is printed); configs are params,
    our status is tag agentic.status, final metrics are metrics final/NAME. Ctrl-C stops it.
    """
    with expected_errors():
        run(settings_with(), host, port)


LOOPBACK = ("127.0.0.1", "localhost", "::1")


def run(settings: Settings, host: str, port: int) -> None:
    """Replace this process with the backend's UI (or print where it already is)."""
    backend = backend_for(settings)
    launch = backend.load("ui")(settings, host, port)
    if launch.command is None:
        errors.print(launch.message)
        print(settings.tracking_location())
        return
    if host not in LOOPBACK and launch.unauthenticated:
        errors.print(
            f"[yellow]warning:[/] {backend.title}'s UI has no login; binding {host} lets anyone "
            "who reaches this machine read and delete your runs"
        )
    errors.print(launch.message)
    sys.stdout.flush()
    sys.stderr.flush()
    os.execv(launch.command[0], launch.command)
