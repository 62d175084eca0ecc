"""The compare page: runs side by side. Training curves overlaid, held-out equity against
buy-and-hold, final metrics with the best highlighted, and the config keys that differ."""

from __future__ import annotations

from typing import Any

from dash import Dash, Input, Output, dcc, html, no_update

from agentic_trading.common.formatting import metric_value
from agentic_trading.dashboard.components import (
    EQUITY_SERIES,
    curves_figure,
    equity_figure,
    run_link,
    table,
)
from agentic_trading.dashboard.context import DashboardContext
from agentic_trading.tracking import MetricSeries, RunComparison, TrackingError

__all__ = ["comparison_tables", "layout", "register"]

CHOICES = 500
DEFAULT_CURVE = "reward"


def _label(run_id: str, comparison: RunComparison) -> str:
    run = comparison.runs.get(run_id)
    agent = run.config.get("agent_type", "") if run else ""
    return f"{run_id[:8]} {agent}".strip()


def comparison_tables(comparison: RunComparison) -> list[Any]:
    """The final-metrics table (best per metric highlighted) and the config diff."""
    header = ["metric", *(_label(r, comparison) for r in comparison.run_ids)]
    # A metric on which all runs agree (the same buy-and-hold, say) has no best run.
    best = {
        name: run_id
        for name, run_id in comparison.best.items()
        if len({comparison.table[r][name] for r in comparison.run_ids}) > 1
    }
    rows = [
        html.Tr(
            [
                html.Td(name),
                *(
                    html.Td(
                        metric_value(name, comparison.table[run_id][name]),
                        className="best" if best.get(name) == run_id else "",
                    )
                    for run_id in comparison.run_ids
                ),
            ]
        )
        for name in comparison.metrics
    ]
    out: list[Any] = [
        html.H2("Final metrics (best highlighted)"),
        table(header, rows, body_id="compare-final"),
        html.H2("Config that differs"),
    ]
    if comparison.config_diff:
        diff_rows = [
            html.Tr([html.Td(key), *(html.Td(str(values[r])) for r in comparison.run_ids)])
            for key, values in comparison.config_diff.items()
        ]
        out.append(table(["key", *header[1:]], diff_rows, body_id="compare-config"))
    else:
        out.append(html.P("The runs have the same config.", id="compare-config"))
    return out


def _run_options(context: DashboardContext, selected: list[str]) -> list[dict[str, str]]:
    runs = context.repository.list_runs(limit=CHOICES)
    options = [
        {
            "label": f"{r.run_id[:8]} · {r.experiment} · {r.status.value} · "
            f"{metric_value('total_profit', r.final_metrics.get('total_profit'))}",
            "value": r.run_id,
        }
        for r in runs
    ]
    known = {o["value"] for o in options}
    options += [{"label": run_id, "value": run_id} for run_id in selected if run_id not in known]
    return options


def layout(context: DashboardContext, run_ids: list[str]) -> html.Div:
    """Run pickers (pre-filled from ``?runs=a,b``), then charts and tables per selection."""
    return html.Div(
        [
            html.H1("Compare runs"),
            dcc.Dropdown(
                _run_options(context, run_ids),
                run_ids,
                id="compare-runs",
                multi=True,
                placeholder="pick two or more runs",
            ),
            html.Div(id="compare-message", className="error"),
            html.Div(
                [
                    html.Label(
                        [
                            "training curve",
                            dcc.Dropdown([], DEFAULT_CURVE, id="compare-metric", clearable=False),
                        ],
                        style={"minWidth": "16em"},
                    ),
                ],
                className="controls",
            ),
            html.Div(
                [
                    dcc.Graph(id="compare-curves", config={"displaylogo": False}),
                    dcc.Graph(id="compare-equity", config={"displaylogo": False}),
                ],
                className="grid",
            ),
            html.Div(id="compare-tables"),
            html.Div(id="compare-links"),
        ]
    )


def register(app: Dash, context: DashboardContext) -> None:
    """Callbacks: a new selection redraws tables, equity and the curve choices; a curve choice
    redraws the overlaid curves."""

    @app.callback(
        Output("compare-tables", "children"),
        Output("compare-equity", "figure"),
        Output("compare-metric", "options"),
        Output("compare-metric", "value"),
        Output("compare-message", "children"),
        Output("compare-links", "children"),
        Input("compare-runs", "value"),
    )
    def select(run_ids: list[str] | None) -> tuple[Any, ...]:
        if not run_ids:
            return [], equity_figure([], None), [], no_update, "", []
        try:
            comparison = context.repository.compare_runs(run_ids)
            equity = {r: context.repository.get_metrics(r, EQUITY_SERIES) for r in run_ids}
            series = {n for r in run_ids for n in context.repository.get_run(r).metrics}
        except (TrackingError, ValueError) as exc:
            return [], no_update, no_update, no_update, str(exc), []
        agents = [
            (_label(r, comparison), s[EQUITY_SERIES[0]])
            for r, s in equity.items()
            if EQUITY_SERIES[0] in s
        ]
        baseline = next(
            (s[EQUITY_SERIES[1]] for s in equity.values() if EQUITY_SERIES[1] in s), None
        )
        curves = sorted(series - set(EQUITY_SERIES))
        links = [html.Span("Runs: ")] + [html.Span([run_link(r), " "]) for r in comparison.run_ids]
        metric = DEFAULT_CURVE if DEFAULT_CURVE in curves or not curves else curves[0]
        figure = equity_figure(agents, baseline)
        return comparison_tables(comparison), figure, curves, metric, "", links

    @app.callback(
        Output("compare-curves", "figure"),
        Input("compare-runs", "value"),
        Input("compare-metric", "value"),
    )
    def curves(run_ids: list[str] | None, metric: str | None) -> dict[str, Any]:
        metric = metric or DEFAULT_CURVE
        series: list[tuple[str, MetricSeries]] = []
        for run_id in run_ids or []:
            try:
                found = context.repository.get_metrics(run_id, [metric])
            except (TrackingError, ValueError):
                continue
            if metric in found:
                series.append((run_id[:8], found[metric]))
        return curves_figure(f"{metric} during training", series, metric)
