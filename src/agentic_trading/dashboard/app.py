"""The Dash app: live experiments (messaging) beside the recent finished runs (tracking).

First slice of the dashboard: the landing page. Live rows refresh every second from messaging;
the runs come from the tracking repository when the page loads.
"""

from __future__ import annotations

import time
from typing import Any

from agentic_trading.common.formatting import duration, rate
from agentic_trading.common.loop_thread import BackgroundLoop
from agentic_trading.config import Settings, get_settings
from agentic_trading.dashboard.data import get_live_experiments
from agentic_trading.messaging.brokers import BrokerError
from agentic_trading.messaging.messages import ExperimentState
from agentic_trading.tracking import RunSummary, get_sync_experiment_repository

__all__ = ["create_app", "live_rows", "run_rows"]

REFRESH_MS = 1000


def live_rows(states: list[ExperimentState]) -> list[Any]:
    """Table rows of live experiments: id, status, progress bar, speed, ETA, reward, message."""
    from dash import html

    rows = []
    for state in states:
        reward = state.latest_metrics.get("reward")
        rows.append(
            html.Tr(
                [
                    html.Td(state.experiment_id),
                    html.Td(state.status.value, className=f"status-{state.status.value}"),
                    html.Td(
                        html.Progress(value=f"{state.progress:.1f}", max="100"),
                        title=f"{state.progress:.1f} %",
                    ),
                    html.Td(f"{state.current_step:,}/{state.total_steps or 0:,}"),
                    html.Td(rate(state.steps_per_second)),
                    html.Td(duration(state.eta_seconds)),
                    html.Td("-" if reward is None else f"{reward:+.1f}"),
                    html.Td(state.message or ""),
                ],
                id={"type": "live-row", "experiment": state.experiment_id},
            )
        )
    return rows


def run_rows(runs: list[RunSummary]) -> list[Any]:
    """Table rows of tracked runs: experiment, run id, status, profit, Sharpe, created."""
    from dash import html

    def metric(run: RunSummary, name: str, fmt: str) -> str:
        value = run.final_metrics.get(name)
        return "-" if value is None else fmt.format(value)

    return [
        html.Tr(
            [
                html.Td(run.experiment),
                html.Td(run.run_id),
                html.Td(run.status.value, className=f"status-{run.status.value}"),
                html.Td(metric(run, "total_profit", "{:+.2%}")),
                html.Td(metric(run, "buy_and_hold_total_profit", "{:+.2%}")),
                html.Td(metric(run, "sharpe_ratio", "{:.2f}")),
                html.Td(run.created_at.strftime("%Y-%m-%d %H:%M")),
            ]
        )
        for run in runs
    ]


def _table(header: list[str], body_id: str, rows: list[Any]) -> Any:
    from dash import html

    return html.Table(
        [html.Thead(html.Tr([html.Th(h) for h in header])), html.Tbody(rows, id=body_id)],
        className="table",
    )


def create_app(settings: Settings | None = None) -> Any:
    """The dashboard as a Dash app (``app.server`` is its Flask server)."""
    from dash import Dash, Input, Output, dcc, html

    settings = settings or get_settings()
    background = BackgroundLoop.get()

    def live() -> tuple[list[ExperimentState], str | None]:
        try:
            return background.run(get_live_experiments(settings), timeout=10), None
        except BrokerError as exc:
            return [], f"Live view unavailable: {exc}. History below still works."

    def layout() -> Any:
        states, problem = live()
        runs = get_sync_experiment_repository(settings).list_runs(limit=20)
        return html.Div(
            [
                html.H1("Agentic Trading experiments"),
                html.Div(problem or "", id="banner", className="banner" if problem else ""),
                html.H2("Live"),
                _table(
                    [
                        "experiment",
                        "status",
                        "progress",
                        "steps",
                        "speed",
                        "ETA",
                        "reward",
                        "message",
                    ],
                    "live-table",
                    live_rows(states),
                ),
                html.H2("Recent runs"),
                _table(
                    ["experiment", "run", "status", "profit", "buy & hold", "Sharpe", "created"],
                    "recent-runs",
                    run_rows(runs),
                ),
                dcc.Interval(id="live-tick", interval=REFRESH_MS),
                html.Div(id="updated", style={"color": "#888"}),
            ],
            style={"fontFamily": "sans-serif", "margin": "1em"},
        )

    app = Dash(__name__, title="Agentic Trading", update_title="")
    app.layout = layout

    @app.callback(
        Output("live-table", "children"),
        Output("banner", "children"),
        Output("updated", "children"),
        Input("live-tick", "n_intervals"),
    )
    def refresh(_: int | None) -> tuple[list[Any], str, str]:
        states, problem = live()
        return live_rows(states), problem or "", time.strftime("updated %H:%M:%S")

    return app
