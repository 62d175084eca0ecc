"""The Dash app: live experiments, all runs, a run, runs compared; one page each.

Pages: ``/`` (live + recent runs), ``/runs`` (history), ``/runs/<run id>``, ``/compare?runs=a,b``,
``/studies``, ``/studies/<name>``, ``/pbt``, ``/pbt/<name>`` and ``/models``.
Two plain routes serve the browser: ``/_agentic/live-events`` (server-sent events that wake the
live view when an experiment starts) and ``/_agentic/artifacts/<run id>/<name>`` (downloads of
local artifacts).
"""

from __future__ import annotations

import io
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, unquote

from agentic_trading.config import Settings, get_settings
from agentic_trading.dashboard.context import DashboardContext
from agentic_trading.dashboard.control import DashboardControl
from agentic_trading.dashboard.live import LiveFeed
from agentic_trading.messaging.brokers import BrokerError

__all__ = ["DashboardApp", "create_app"]

#: How long one live-events request stays open before the browser opens the next one.
EVENTS_SECONDS = 55.0
#: Keep-alive comments while waiting, so a closed tab frees its server thread soon.
KEEPALIVE_SECONDS = 10.0


if TYPE_CHECKING:
    from dash import Dash
    from flask import Flask
else:
    try:
        from dash import Dash
    except ImportError:  # the error names the extra when create_app is called
        Dash = object


class DashboardApp(Dash):
    """A Dash app that knows its :class:`DashboardContext` (``app.context``)."""

    def __init__(self, context: DashboardContext, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.context = context


def _require_dash() -> None:
    try:
        import dash  # noqa: F401
    except ImportError:
        raise ImportError(
            "the dashboard needs Dash: pip install 'agentic-trading[dashboard]'"
        ) from None


def create_app(settings: Settings | None = None, host: str | None = None) -> DashboardApp:
    """The dashboard as a Dash app (``app.server`` is its Flask server).

    ``host`` is the address it will bind (``DASHBOARD_HOST`` by default); with control enabled
    and a non-loopback host, ``DASHBOARD_TOKEN`` must be set (else :class:`SettingsError`).
    """
    _require_dash()
    from dash import Input, Output, State, dcc, html

    from agentic_trading.dashboard.pages import (
        compare,
        history,
        live,
        models,
        pbt,
        run,
        studies,
        study,
    )

    settings = settings or get_settings()
    feed = LiveFeed(settings)
    control = DashboardControl(settings, host or settings.dashboard_host, feed.channel)
    context = DashboardContext(settings, feed, control)

    app = DashboardApp(
        context,
        __name__,
        title="Agentic Trading",
        update_title="",
        suppress_callback_exceptions=True,
        assets_folder=str(Path(__file__).with_name("assets")),
    )
    app.layout = html.Div(
        [
            dcc.Location(id="url", refresh="callback-nav"),
            html.Nav(
                [
                    html.Span("Agentic Trading", className="brand"),
                    dcc.Link("Live", href="/"),
                    dcc.Link("All runs", href="/runs"),
                    dcc.Link("Compare", href="/compare"),
                    dcc.Link("Studies", href="/studies"),
                    dcc.Link("PBT", href="/pbt"),
                    dcc.Link("Models", href="/models"),
                    html.A(context.ui_name, href=context.ui_url, target="_blank"),
                ],
                className="top",
            ),
            html.Div(id="page", className="page"),
        ]
    )

    @app.callback(Output("page", "children"), Input("url", "pathname"), State("url", "search"))
    def route(pathname: str | None, search: str | None) -> Any:
        path = (pathname or "/").rstrip("/") or "/"
        if path == "/":
            return live.layout(context)
        if path == "/runs":
            return history.layout(context)
        if path.startswith("/runs/"):
            return run.layout(context, unquote(path.removeprefix("/runs/")))
        if path == "/studies":
            return studies.layout(context)
        if path.startswith("/studies/"):
            return study.layout(context, unquote(path.removeprefix("/studies/")))
        if path == "/pbt":
            return pbt.index_layout(context)
        if path.startswith("/pbt/"):
            return pbt.layout(context, unquote(path.removeprefix("/pbt/")))
        if path == "/models":
            return models.layout(context)
        if path == "/compare":
            query = parse_qs((search or "").removeprefix("?"))
            run_ids = [r for value in query.get("runs", []) for r in value.split(",") if r]
            return compare.layout(context, run_ids)
        return html.Div([html.H1("Not found"), dcc.Link("Back to the live view", href="/")])

    for page in (live, history, compare, run, studies, study, models, pbt):
        page.register(app, context)
    _add_routes(app.server, context)
    return app


def _add_routes(server: Flask, context: DashboardContext) -> None:
    from flask import Response, abort, send_file

    @server.get("/_agentic/live-events")
    def live_events() -> Response:
        def stream() -> Iterator[str]:
            yield "retry: 2000\n\n"
            deadline = time.monotonic() + EVENTS_SECONDS
            while (remaining := deadline - time.monotonic()) > 0:
                try:
                    if context.feed.wait_until_live(min(KEEPALIVE_SECONDS, remaining)):
                        yield "event: live\ndata: 1\n\n"
                        return
                except BrokerError:
                    yield "event: down\ndata: 1\n\n"
                    return
                yield ": waiting\n\n"

        return Response(
            stream(),
            mimetype="text/event-stream",
            headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
        )

    @server.get("/_agentic/artifacts/<run_id>/<path:name>")
    def artifact(run_id: str, name: str) -> Any:
        data = context.read_artifact(run_id, name)
        if data is None:
            abort(404)
        return send_file(io.BytesIO(data), as_attachment=True, download_name=Path(name).name)
