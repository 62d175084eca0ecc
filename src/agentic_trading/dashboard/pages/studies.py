"""The studies page: every study in ``STUDY_STORAGE`` with its budget, trials per state, best
value so far and workers active; refreshed every few seconds."""

from __future__ import annotations

from typing import Any

from dash import Dash, Input, Output, dcc, html

from agentic_trading.dashboard.components import table, trial_state_badge
from agentic_trading.dashboard.context import DashboardContext

__all__ = ["layout", "register", "study_rows"]

REFRESH_MS = 5000
HEADER = ["study", "agent", "objective", "trials done", "states", "best", "workers", "created"]


def study_rows(context: DashboardContext) -> list[html.Tr]:
    """One row per study."""
    from agentic_trading.studies import list_studies

    rows = []
    for s in list_studies(context.settings):
        best = "-" if s.best_value is None else f"{s.best_value:.4g} (trial {s.best_trial})"
        rows.append(
            html.Tr(
                [
                    html.Td(dcc.Link(s.name, href=f"/studies/{s.name}", className="mono")),
                    html.Td(s.agent),
                    html.Td(f"{s.direction} validation {s.objective}"),
                    html.Td(f"{s.finished}/{s.budget}"),
                    html.Td(
                        [
                            html.Span([trial_state_badge(state), f" {count} "])
                            for state, count in sorted(s.states.items())
                        ]
                    ),
                    html.Td(best),
                    html.Td(str(len(s.workers)), title=", ".join(s.workers)),
                    html.Td(s.created_at.strftime("%Y-%m-%d %H:%M") if s.created_at else "-"),
                ]
            )
        )
    return rows


def layout(context: DashboardContext) -> html.Div:
    """The studies as they are now; the table then refreshes itself."""
    try:
        rows: Any = study_rows(context)
        problem = ""
    except Exception as exc:  # an unreachable storage: say so, keep the page
        rows, problem = [], f"Studies unavailable: {exc}"
    return html.Div(
        [
            html.H1("Studies"),
            html.P(
                f"Optuna studies in {context.settings.study_location()} (STUDY_STORAGE). Create "
                "one with agentic-trading study create NAME, run it with agentic-trading study "
                "run NAME --workers 2 or a study worker NAME on each host.",
                style={"color": "#666"},
            ),
            html.Div(problem, id="studies-banner", className="banner" if problem else ""),
            table(HEADER, rows, body_id="studies-table"),
            dcc.Interval(id="studies-tick", interval=REFRESH_MS),
        ]
    )


def register(app: Dash, context: DashboardContext) -> None:
    """Refresh the table."""

    @app.callback(
        Output("studies-table", "children"),
        Input("studies-tick", "n_intervals"),
        prevent_initial_call=True,
    )
    def refresh(_: int | None) -> list[html.Tr]:
        return study_rows(context)
