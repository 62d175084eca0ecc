"""The run page: one run's status and error, config, final metrics against buy-and-hold, every
metric series as a chart, its artifacts, and a link to the same run in Aim's UI."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from dash import dcc, html

from agentic_trading.common.formatting import duration, metric_value
from agentic_trading.dashboard.components import (
    EQUITY_SERIES,
    curves_figure,
    equity_figure,
    status_badge,
    table,
)
from agentic_trading.dashboard.context import DashboardContext
from agentic_trading.tracking import RunDetail, TrackingError

__all__ = ["layout"]


def _final_table(run: RunDetail) -> Any:
    names = [
        n for n in run.final_metrics if not n.startswith("buy_and_hold_") and n != "excess_profit"
    ]
    rows = []
    for name in names:
        ours = run.final_metrics[name]
        theirs = run.final_metrics.get(f"buy_and_hold_{name}")
        rows.append(
            html.Tr(
                [
                    html.Td(name),
                    html.Td(metric_value(name, ours)),
                    html.Td(metric_value(name, theirs)),
                    html.Td("-" if theirs is None else metric_value(name, ours - theirs)),
                ]
            )
        )
    return table(["metric", "agent", "buy & hold", "difference"], rows, body_id="run-final")


def _artifacts(run: RunDetail) -> Any:
    if not run.artifacts:
        return html.P("No artifacts.")
    return html.Ul(
        [
            html.Li(
                [
                    html.A(name, href=f"/_agentic/artifacts/{run.run_id}/{quote(name)}"),
                    html.Span(f"  {uri}", className="mono", style={"color": "#666"}),
                ]
            )
            for name, uri in run.artifacts.items()
        ],
        id="run-artifacts",
    )


def layout(context: DashboardContext, run_id: str) -> html.Div:
    """The page of ``run_id``; a clear message if there is no such run."""
    try:
        run = context.repository.get_run(run_id)
        series = context.repository.get_metrics(run_id)
    except (TrackingError, ValueError) as exc:
        return html.Div([html.H1("Run not found"), html.P(str(exc), className="error")])
    charts = []
    if EQUITY_SERIES[0] in series:
        figure = equity_figure([("agent", series[EQUITY_SERIES[0]])], series.get(EQUITY_SERIES[1]))
        charts.append(dcc.Graph(figure=figure, config={"displaylogo": False}))
    for name, values in series.items():
        if name not in EQUITY_SERIES:
            charts.append(
                dcc.Graph(
                    figure=curves_figure(name, [(name, values)]), config={"displaylogo": False}
                )
            )
    info = (
        f"experiment {run.experiment} · created {run.created_at:%Y-%m-%d %H:%M:%S} · "
        f"duration {duration(run.duration)}" + (f" · {run.host} pid {run.pid}" if run.host else "")
    )
    config_rows = [html.Tr([html.Td(k), html.Td(str(v))]) for k, v in run.config.items()]
    return html.Div(
        [
            html.H1(
                [
                    "Run ",
                    html.Span(run.run_id, className="mono"),
                    " ",
                    status_badge(run.status.value),
                ]
            ),
            html.P(info),
            html.Pre(run.error, className="error", id="run-error") if run.error else html.Div(),
            html.P(
                [
                    html.A(
                        "Open in Aim's UI",
                        href=f"{context.aim_ui_url}/runs/{run.run_id}",
                        target="_blank",
                        id="aim-link",
                    ),
                    " (start it with agentic-trading tracking-ui) · ",
                    dcc.Link("Compare with other runs", href=f"/compare?runs={run.run_id}"),
                ]
            ),
            html.H2("Final metrics on the held-out bars"),
            _final_table(run) if run.final_metrics else html.P("No final metrics yet."),
            html.H2("Metrics"),
            html.Div(charts, className="grid", id="run-charts")
            if charts
            else html.P("No metrics tracked."),
            html.H2("Config"),
            table(["key", "value"], config_rows, body_id="run-config"),
            html.H2("Artifacts"),
            _artifacts(run),
        ]
    )
