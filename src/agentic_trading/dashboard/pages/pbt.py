"""A population-based training's page, ``/pbt/<name>``: the members' validation curves, the
lineage graph (who copied whom, at which step) and the winner's schedule and verdict."""

from __future__ import annotations

from typing import Any

from dash import Dash, dcc, html

from agentic_trading.dashboard.components import curves_figure, figure_layout, run_link, table
from agentic_trading.dashboard.context import DashboardContext

__all__ = ["index_layout", "layout", "lineage_figure", "register"]

HEADER = ["member", "status", "steps", "validation", "generations", "run"]


def lineage_figure(outcome: Any) -> dict[str, Any]:
    """Each member a line along its steps; each exploit an arrow from the parent's line to the
    member's, at the step of the checkpoint it copied."""
    traces: list[dict[str, Any]] = []
    for m in outcome.members:
        traces.append(
            {
                "type": "scatter",
                "mode": "lines",
                "name": f"member {m.member}",
                "x": [0, m.steps],
                "y": [m.member, m.member],
                "line": {"width": 3 if outcome.winner is m else 1},
            }
        )
    xs: list[Any] = []
    ys: list[Any] = []
    for m in outcome.members:
        for link in m.lineage:
            xs += [link["step"], link["step"], None]
            ys += [link["parent"], m.member, None]
    traces.append(
        {
            "type": "scatter",
            "mode": "lines+markers",
            "name": "exploit (copied)",
            "x": xs,
            "y": ys,
            "marker": {"symbol": "arrow", "angleref": "previous", "size": 10},
            "line": {"dash": "dot"},
        }
    )
    figure = figure_layout("lineage: who copied whom", traces, "step", "member")
    figure["layout"]["yaxis"]["dtick"] = 1
    return figure


def index_layout(context: DashboardContext) -> html.Div:
    """Every PBT in ``PBT_PATH``, with its members and exploits so far."""
    from pathlib import Path

    from agentic_trading.pbt import read_members

    root = Path(context.settings.pbt_path).expanduser()
    rows = []
    for spec_file in sorted(root.glob("*/spec.json")) if root.is_dir() else []:
        name = spec_file.parent.name
        try:
            outcome = read_members(name, context.settings)
        except ValueError:
            continue
        winner = outcome.winner
        rows.append(
            html.Tr(
                [
                    html.Td(dcc.Link(name, href=f"/pbt/{name}", className="mono")),
                    html.Td(outcome.spec.agent),
                    html.Td(f"{len(outcome.members)}/{outcome.spec.population}"),
                    html.Td(str(outcome.exploits)),
                    html.Td("-" if winner is None else f"member {winner.member}"),
                ]
            )
        )
    return html.Div(
        [
            html.H1("Population-based training"),
            html.P(
                f"PBTs in {root} (PBT_PATH): agentic-trading pbt create NAME, then pbt run NAME.",
                style={"color": "#666"},
            ),
            table(
                ["PBT", "agent", "members", "exploits", "best so far"], rows, body_id="pbt-index"
            ),
        ]
    )


def layout(context: DashboardContext, name: str) -> html.Div:
    """The PBT as recorded by its driver (``PBT_PATH/NAME/members.json``) and tracking."""
    from agentic_trading.pbt import PbtError, read_members

    try:
        outcome = read_members(name, context.settings)
    except PbtError as exc:
        return html.Div([html.H1(f"PBT {name}"), html.Div(str(exc), className="banner")])
    spec, winner = outcome.spec, outcome.winner
    rows = [
        html.Tr(
            [
                html.Td(f"member {m.member}" + (" (winner)" if m is winner else "")),
                html.Td(m.status),
                html.Td(f"{m.steps:,}"),
                html.Td("-" if m.objective is None else f"{m.objective:+.3f}"),
                html.Td(str(len(m.lineage))),
                html.Td(run_link(m.run_id) if m.run_id else "-"),
            ]
        )
        for m in outcome.members
    ]
    name_of_series = f"validation_{spec.objective}"
    series = []
    for m in outcome.members:
        if m.run_id:
            try:
                series.append(
                    (
                        f"member {m.member}",
                        context.repository.get_metric_series(m.run_id, name_of_series),
                    )
                )
            except LookupError:
                continue
    schedule = (
        [
            html.Li(
                f"steps {s.start:,}-{s.end:,}: "
                + ", ".join(f"{k}={v:.4g}" for k, v in s.params.items())
            )
            for s in sorted(winner.history, key=lambda s: s.start)
        ]
        if winner
        else []
    )
    return html.Div(
        [
            html.H1(f"PBT {name}"),
            html.P(
                f"{len(outcome.members)} of {spec.population} {spec.agent} members, "
                f"{spec.total_steps:,} steps each in chunks of {spec.perturb_every:,}; "
                f"{outcome.exploits} exploit(s) on validation {spec.objective}; "
                f"{', '.join(spec.mutate)} mutate.",
                id="pbt-summary",
            ),
            table(HEADER, rows, body_id="pbt-members"),
            dcc.Graph(
                id="pbt-curves",
                figure=curves_figure(f"validation {spec.objective} by member", series),
            ),
            dcc.Graph(id="pbt-lineage", figure=lineage_figure(outcome)),
            html.H2("Winner" + (f": member {winner.member}" if winner else "")),
            html.P(
                (winner.verdict or "no verdict yet") if winner else "no member scored yet",
                id="pbt-verdict",
            ),
            html.Ul(schedule, id="pbt-schedule"),
            html.P(
                f"Replay the winner's schedule from scratch: agentic-trading pbt replay {name} "
                f"{winner.member}"
                if winner
                else "",
                style={"color": "#666"},
            ),
        ]
    )


def register(app: Dash, context: DashboardContext) -> None:
    """The page has no callbacks of its own: it shows the record as it is when opened."""
