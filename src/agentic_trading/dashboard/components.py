"""Pieces the dashboard's pages share: tables, links, status badges and Plotly figures."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from dash import dcc, html

from agentic_trading.common.formatting import metric_value
from agentic_trading.tracking import MetricSeries, RunSummary

__all__ = [
    "EQUITY_SERIES",
    "curves_figure",
    "equity_figure",
    "figure_layout",
    "run_link",
    "status_badge",
    "stop_controls",
    "table",
    "trial_state_badge",
]

#: The evaluation's equity curves, agent and buy-and-hold, tracked as series by ``train``.
EQUITY_SERIES = ("eval_equity", "eval_buy_and_hold_equity")

_LAYOUT: dict[str, Any] = {
    # The title sits in the top margin, the toolbar stands on the right edge (vertical), and
    # the legend at the bottom of the figure below the x axis' title: none covers another.
    "margin": {"l": 60, "r": 40, "t": 50, "b": 100},
    "height": 360,
    "template": "plotly_white",
    "modebar": {"orientation": "v"},
    "legend": {"orientation": "h", "yref": "container", "y": 0.01, "yanchor": "bottom"},
}
#: Past this many traces a legend would take the chart's room: hovering names each line.
LEGEND_MAX = 8


def table(header: Sequence[str], rows: Iterable[Any], body_id: str | None = None) -> html.Table:
    """A table with a header row; ``body_id`` names its body for callbacks."""
    body = html.Tbody(list(rows), id=body_id) if body_id else html.Tbody(list(rows))
    return html.Table([html.Thead(html.Tr([html.Th(h) for h in header])), body], className="table")


def status_badge(status: str) -> html.Span:
    """The status as a coloured label (``status-<name>`` in the stylesheet)."""
    return html.Span(status, className=f"status status-{status}")


#: Optuna trial states shown with the status colours they correspond to.
TRIAL_STATE_STATUS = {
    "complete": "completed",
    "pruned": "pruned",
    "running": "running",
    "waiting": "pending",
    "fail": "failed",
    "cancelled": "cancelled",
}


def trial_state_badge(state: str) -> html.Span:
    """A study trial's state as a coloured label."""
    return html.Span(state, className=f"status status-{TRIAL_STATE_STATUS.get(state, state)}")


def stop_controls(context: Any) -> list[Any]:
    """The pieces a page with Stop buttons needs: the token field (when one is required), the
    message line, the confirmation dialog and the stop target. The live page's callbacks serve
    every page that has them."""
    if not context.control.requires_token:
        token: Any = html.Div(dcc.Input(id="token", type="hidden", value=""))
    else:
        token = html.Div(
            html.Label(
                [
                    "dashboard token (DASHBOARD_TOKEN), needed to stop or start trainings",
                    dcc.Input(
                        id="token", type="password", persistence=True, persistence_type="session"
                    ),
                ]
            ),
            className="controls",
        )
    return [
        token,
        html.Div(id="control-message", className="message"),
        dcc.ConfirmDialog(id="stop-confirm"),
        dcc.Store(id="stop-target"),
    ]


def run_link(run_id: str) -> dcc.Link:
    """A link to the run's page."""
    return dcc.Link(run_id, href=f"/runs/{run_id}", className="mono")


def final(run: RunSummary, name: str) -> str:
    """A final metric of ``run``, formatted, or ``-``."""
    return metric_value(name, run.final_metrics.get(name))


def figure_layout(
    title: str, traces: list[dict[str, Any]], x_title: str, y_title: str
) -> dict[str, Any]:
    """A Plotly figure of ``traces`` in the dashboard's style."""
    return {
        "data": traces,
        "layout": {
            **_LAYOUT,
            "title": {
                "text": title,
                "font": {"size": 14},
                "x": 0.01,
                "xanchor": "left",
                "yref": "container",
                "y": 0.98,
                "yanchor": "top",
            },
            "showlegend": len(traces) <= LEGEND_MAX,
            "xaxis": {"title": {"text": x_title, "standoff": 8}, "automargin": True},
            "yaxis": {"title": {"text": y_title}, "automargin": True},
        },
    }


def curves_figure(
    title: str, series: Sequence[tuple[str, MetricSeries]], y_title: str | None = None
) -> dict[str, Any]:
    """One line per ``(label, series)``, by training step. A series of one point is drawn as a
    marker, and a series that never changes says its value in the title (a flat line at an
    unreadable scale is easy to miss)."""
    traces = [
        {
            "type": "scatter",
            "mode": "lines" if len(s.steps) > 1 else "markers",
            "name": label,
            "x": s.steps,
            "y": s.values,
        }
        for label, s in series
    ]
    if len(series) == 1 and series[0][1].values and len(set(series[0][1].values)) == 1:
        title = f"{title}: {series[0][1].values[0]:.6g} (constant)"
    return figure_layout(title, traces, "step", y_title or title.split(":")[0])


def equity_figure(
    agents: Sequence[tuple[str, MetricSeries]], baseline: MetricSeries | None
) -> dict[str, Any]:
    """Held-out equity of each agent against buy-and-hold (dashed), by bar."""
    traces: list[dict[str, Any]] = [
        {"type": "scatter", "mode": "lines", "name": label, "x": s.steps, "y": s.values}
        for label, s in agents
    ]
    if baseline is not None:
        dashed: dict[str, Any] = {"dash": "dash", "color": "#888"}
        traces.append(
            {
                "type": "scatter",
                "mode": "lines",
                "name": "buy & hold",
                "x": baseline.steps,
                "y": baseline.values,
                "line": dashed,
            }
        )
    return figure_layout("Held-out equity against buy-and-hold", traces, "held-out bar", "equity")
