"""``agentic-trading dashboard``: the web dashboard (Dash) on this machine."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from agentic_trading.cli._common import errors, expected_errors, settings_with
from agentic_trading.common import signals
from agentic_trading.config import Settings, SettingsError


def dashboard_command(
    host: Annotated[
        str | None,
        typer.Option(
            help="Address to bind (DASHBOARD_HOST, else 127.0.0.1). Anything but loopback "
            "exposes it and needs DASHBOARD_TOKEN for stop/start, or DASHBOARD_CONTROL=false."
        ),
    ] = None,
    port: Annotated[
        int | None,
        typer.Option(min=1, max=65535, help="Port (DASHBOARD_PORT, else 8050)."),
    ] = None,
    read_only: Annotated[
        bool,
        typer.Option("--read-only", help="No stop buttons and no training form."),
    ] = False,
) -> None:
    """The web dashboard: live experiments, all runs, a run's page, runs compared.

    Live experiments come from messaging: with MESSAGE_BROKER_TYPE=memory only those of the
    dashboard's own process (start one from its form), with redis every process's. Runs come
    from tracking (ML_STORAGE_PATH). Open http://127.0.0.1:8050.
    """
    from agentic_trading.dashboard.app import create_app

    with expected_errors():
        overrides: dict[str, Any] = {"dashboard_host": host, "dashboard_port": port}
        if read_only:
            overrides["dashboard_control"] = False
        settings = settings_with(**overrides)
        bind, bind_port = settings.dashboard_host, settings.dashboard_port
        server = create_app(settings, host=bind)
        control = server.context.control
        if control.requires_token:
            errors.print("stop and start need the token from DASHBOARD_TOKEN")
        if not control.enabled:
            errors.print("read-only: stop and start are disabled")
        errors.print(f"dashboard on http://{bind}:{bind_port} (Ctrl-C stops it)")

        def terminated(reason: str) -> None:
            # SIGTERM or SIGHUP: the trainings started here were asked to stop (they are
            # watched too); let them record "cancelled", then leave with the signal's code.
            left = control.wait_for_trainings(30.0)
            if left:
                errors.print(f"{reason}: trainings still running after 30 s: {', '.join(left)}")
            raise SystemExit(signals.exit_code(signals.received() or 15))

        signals.watch(terminated, "the dashboard")
        _watch_alerts(settings, f"http://{bind}:{bind_port}")
        server.run(host=bind, port=bind_port, debug=False)


def _watch_alerts(settings: Settings, address: str) -> None:
    """With ALERT_URLS set, the dashboard's process watches for runs that died with their
    writer (as ``agentic-trading watch`` does), linking alerts to this dashboard."""
    if not settings.alert_urls:
        return
    from agentic_trading.alerts import AlertWatcher

    try:
        watcher = AlertWatcher(
            settings.model_copy(update={"dashboard_url": settings.dashboard_url or address})
        )
    except SettingsError as exc:
        errors.print(f"alerts: no watcher in the dashboard: {exc}")
        return
    watcher.start(10.0)
    errors.print("alerts: watching for runs that died with their writer")
