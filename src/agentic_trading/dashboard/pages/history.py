"""The history page: every tracked run, filtered by experiment, status and time, sorted by any
final metric, a page at a time; tick runs to compare them."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from dash import ALL, Dash, Input, Output, State, ctx, dcc, html

from agentic_trading.common.formatting import duration, verdict_label
from agentic_trading.dashboard.components import final, run_link, status_badge, table
from agentic_trading.dashboard.context import DashboardContext
from agentic_trading.status import ExperimentStatus
from agentic_trading.tracking import RunSummary
from agentic_trading.tracking.records import LOWER_IS_BETTER

__all__ = ["PAGE_SIZE", "filter_runs", "layout", "register"]

PAGE_SIZE = 50
SINCE = {"1h": timedelta(hours=1), "24h": timedelta(days=1), "7d": timedelta(days=7)}
SINCE_LABELS = {"all": "any time", "1h": "last hour", "24h": "last 24 hours", "7d": "last 7 days"}
HEADER = [
    "",
    "run",
    "experiment",
    "status",
    "agent",
    "timesteps",
    "profit",
    "buy & hold",
    "excess",
    "Sharpe",
    "drawdown",
    "verdict",
    "created",
    "duration",
]
SHOWN_METRICS = ("total_profit", "buy_and_hold_total_profit", "excess_profit", "sharpe_ratio")


def _sort_options(metrics: set[str]) -> list[dict[str, str]]:
    options = [
        {"label": "newest first", "value": "-created_at"},
        {"label": "oldest first", "value": "created_at"},
        {"label": "longest first", "value": "-duration"},
    ]
    for name in sorted(metrics):
        lower = name in LOWER_IS_BETTER
        options.append(
            {
                "label": f"{name} ({'lowest' if lower else 'highest'} first)",
                "value": f"{'' if lower else '-'}final_metrics.{name}",
            }
        )
    return options


def filter_runs(
    context: DashboardContext,
    experiment: str | None,
    statuses: list[str] | None,
    since: str | None,
    order_by: str | None,
    page: int = 0,
) -> tuple[list[RunSummary], int]:
    """One page of the runs matching the page's filters, in the chosen order, and how many
    match in all (two catalogue queries, whatever the number of runs)."""
    filters: dict[str, Any] = {
        "experiment": experiment or None,
        "status": statuses or None,
        "since": datetime.now(UTC) - SINCE[since] if since in SINCE else None,
    }
    total = context.repository.count_runs(**filters)
    pages = max(1, -(-total // PAGE_SIZE))
    page = min(max(page, 0), pages - 1)
    runs = context.repository.list_runs(
        order_by=order_by or "-created_at", limit=PAGE_SIZE, offset=page * PAGE_SIZE, **filters
    )
    return runs, total


def _row(run: RunSummary) -> html.Tr:
    return html.Tr(
        [
            html.Td(
                dcc.Checklist(
                    options=[{"label": "", "value": run.run_id}],
                    value=[],
                    id={"type": "pick", "run": run.run_id},
                )
            ),
            html.Td(run_link(run.run_id)),
            html.Td(run.experiment),
            html.Td(status_badge(run.status.value), title=run.error or ""),
            html.Td(str(run.config.get("agent_type", ""))),
            html.Td(f"{run.config['timesteps']:,}" if "timesteps" in run.config else ""),
            *(html.Td(final(run, name)) for name in SHOWN_METRICS),
            html.Td(final(run, "max_drawdown")),
            html.Td(
                verdict_label(run.config, run.params), title=str(run.params.get("verdict", ""))
            ),
            html.Td(run.created_at.strftime("%Y-%m-%d %H:%M")),
            html.Td(duration(run.duration_seconds)),
        ]
    )


def layout(context: DashboardContext) -> html.Div:
    """Filters, sort and paging controls; the table fills in through the callback."""
    experiments = context.repository.experiment_names()
    metrics = set(context.repository.metric_names())
    return html.Div(
        [
            html.H1("All runs"),
            html.Div(
                [
                    html.Label(
                        [
                            "experiment",
                            dcc.Dropdown(
                                experiments, None, id="history-experiment", placeholder="all"
                            ),
                        ]
                    ),
                    html.Label(
                        [
                            "status",
                            dcc.Checklist(
                                [s.value for s in ExperimentStatus],
                                [],
                                id="history-status",
                                inline=True,
                            ),
                        ]
                    ),
                    html.Label(
                        [
                            "created",
                            dcc.Dropdown(
                                [{"label": v, "value": k} for k, v in SINCE_LABELS.items()],
                                "all",
                                id="history-since",
                                clearable=False,
                            ),
                        ]
                    ),
                    html.Label(
                        [
                            "sort",
                            dcc.Dropdown(
                                _sort_options(metrics),
                                "-created_at",
                                id="history-sort",
                                clearable=False,
                                style={"minWidth": "18em"},
                            ),
                        ]
                    ),
                ],
                className="controls",
            ),
            html.Div(
                [
                    html.Button("← newer", id="history-prev", n_clicks=0),
                    html.Span(id="history-page-label"),
                    html.Button("older →", id="history-next", n_clicks=0),
                    dcc.Link("Compare ticked runs", id="compare-link", href="/compare"),
                ],
                className="controls",
            ),
            dcc.Store(id="history-page", data=0),
            table(HEADER, [], body_id="history-table"),
        ]
    )


def register(app: Dash, context: DashboardContext) -> None:
    """The history table's callback (filters, sort, paging) and the compare link."""

    @app.callback(
        Output("history-table", "children"),
        Output("history-page-label", "children"),
        Output("history-page", "data"),
        Input("history-experiment", "value"),
        Input("history-status", "value"),
        Input("history-since", "value"),
        Input("history-sort", "value"),
        Input("history-prev", "n_clicks"),
        Input("history-next", "n_clicks"),
        State("history-page", "data"),
    )
    def show(
        experiment: str | None,
        statuses: list[str] | None,
        since: str | None,
        order_by: str | None,
        _prev: int,
        _next: int,
        page: int | None,
    ) -> tuple[list[html.Tr], str, int]:
        page = page or 0
        if ctx.triggered_id == "history-prev":
            page -= 1
        elif ctx.triggered_id == "history-next":
            page += 1
        else:
            page = 0
        runs, total = filter_runs(context, experiment, statuses, since, order_by, page)
        pages = max(1, -(-total // PAGE_SIZE))
        page = min(max(page, 0), pages - 1)
        shown = runs
        label = f" page {page + 1} of {pages} ({total:,} runs) "
        return [_row(run) for run in shown], label, page

    @app.callback(
        Output("compare-link", "href"),
        Output("compare-link", "children"),
        Input({"type": "pick", "run": ALL}, "value"),
    )
    def pick(values: list[list[str]]) -> tuple[str, str]:
        picked = [run_id for value in values for run_id in (value or [])]
        if not picked:
            return "/compare", "Compare ticked runs"
        return f"/compare?runs={','.join(picked)}", f"Compare {len(picked)} ticked runs"
