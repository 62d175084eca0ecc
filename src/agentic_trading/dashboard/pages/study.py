"""A study's page: its trials updating live (running ones with their progress from messaging),
optimisation history, the pruning curves, parallel coordinates, parameter importances, the
study's verdict; buttons to add trials and to stop a running one."""

from __future__ import annotations

import math
from typing import Any

from dash import Dash, Input, Output, State, dcc, html, no_update

from agentic_trading.common.formatting import duration, exact_values
from agentic_trading.dashboard.components import (
    figure_layout,
    run_link,
    stop_controls,
    table,
    trial_state_badge,
)
from agentic_trading.dashboard.context import DashboardContext
from agentic_trading.dashboard.control import ControlError
from agentic_trading.messaging.brokers import BrokerError
from agentic_trading.messaging.messages import ExperimentState

__all__ = ["layout", "register", "study_view"]

REFRESH_MS = 2000


def _states_by_id(context: DashboardContext) -> dict[str, ExperimentState]:
    try:
        return {s.experiment_id: s for s in context.feed.states()}
    except BrokerError:
        return {}


def _trial_row(
    row: Any, live: ExperimentState | None, shown: dict[str, str], can_stop: bool
) -> Any:
    """One trial's row; ``shown`` its parameters as text (exact: see ``exact_values``)."""
    if row.state == "running" and live is not None:
        progress: Any = html.Progress(value=f"{live.progress:.1f}", max="100")
        steps = f"{live.current_step:,}/{live.total_steps or 0:,}"
    else:
        progress = ""
        steps = "-" if row.steps is None else f"{row.steps:,}"
    stop: Any = ""
    if can_stop and row.state == "running" and live is not None and not live.stop_requested:
        stop = html.Button(
            "Stop",
            id={"type": "stop", "experiment": live.experiment_id},
            className="stop",
            n_clicks=0,
        )
    return html.Tr(
        [
            html.Td(str(row.number)),
            html.Td(trial_state_badge(row.state)),
            html.Td("-" if row.value is None else f"{row.value:.4g}"),
            html.Td(progress),
            html.Td(steps),
            html.Td(duration(row.duration_seconds)),
            html.Td(row.worker or "-", className="mono"),
            html.Td(run_link(row.run_id) if row.run_id else "-"),
            *(html.Td(text, className="num") for text in shown.values()),
            html.Td(stop),
        ],
        id={"type": "trial-row", "trial": row.number},
    )


def study_view(context: DashboardContext, name: str) -> dict[str, Any]:
    """Everything the page shows of study ``name``, as components and figures."""
    from agentic_trading.studies import (
        judge,
        load_study,
        parameter_importances,
        summarise,
        trial_rows,
    )
    from agentic_trading.studies.study import ordered_states

    study, spec = load_study(name, context.settings)
    trials = study.get_trials(deepcopy=False)
    summary = summarise(study, spec, trials)
    rows = trial_rows(trials)
    params = list(spec.search_space.parameters)
    live = _states_by_id(context)
    # Exact values: two different values of a parameter never read alike (0.999, 0.9999).
    shown = {p: exact_values([r.params.get(p) for r in rows]) for p in params}
    best = (
        "no trial complete yet"
        if summary.best_value is None
        else f"best {summary.best_value:.4g} (trial {summary.best_trial})"
    )
    states = ", ".join(f"{n} {s}" for s, n in ordered_states(summary.states))
    verdict = judge(trials)
    return {
        "summary": (
            f"{summary.finished} of {summary.budget} trials done ({states or 'none yet'}); "
            f"{best}; workers active: {len(summary.workers)}"
            + (f" ({', '.join(summary.workers)})" if summary.workers else "")
        ),
        "verdict": None
        if verdict is None
        else html.P(
            [html.B("Study verdict: "), verdict.summary()],
            className=f"verdict verdict-{verdict.label}",
        ),
        "rows": [
            _trial_row(
                r,
                live.get(r.experiment_id or ""),
                {p: shown[p][i] for p in params},
                context.control.enabled,
            )
            for i, r in reversed(list(enumerate(rows)))
        ],
        "header": [
            "#",
            "state",
            "value",
            "progress",
            "steps",
            "wall time",
            "worker",
            "run",
            *params,
            "",
        ],
        "fingerprint": [(r.number, r.state, r.value, r.last_step) for r in rows],
        "history": _history_figure(rows, spec.study_direction, spec.objective),
        "intermediate": _intermediate_figure(rows, spec.objective),
        "parallel": _parallel_figure(
            rows,
            params,
            spec.objective,
            frozenset(n for n, p in spec.search_space.parameters.items() if p.log),
        ),
        "importances": _importance_figure(parameter_importances(study)),
    }


def _history_figure(rows: list[Any], direction: str, objective: str) -> dict[str, Any]:
    done = [r for r in rows if r.state == "complete" and r.value is not None]
    pick = max if direction == "maximize" else min
    best: list[float] = []
    for r in done:
        best.append(r.value if not best else pick(best[-1], r.value))
    pruned = [r for r in rows if r.state == "pruned" and r.value is not None]
    traces: list[dict[str, Any]] = [
        {"type": "scatter", "mode": "markers", "name": "complete",
         "x": [r.number for r in done], "y": [r.value for r in done]},
        {"type": "scatter", "mode": "markers", "name": "pruned (last score)",
         "x": [r.number for r in pruned], "y": [r.value for r in pruned],
         "marker": {"symbol": "x", "color": "#8a6fb8"}},
        {"type": "scatter", "mode": "lines", "name": "best so far",
         "x": [r.number for r in done], "y": best, "line": {"shape": "hv"}},
    ]  # fmt: skip
    figure = figure_layout("Optimisation history", traces, "trial", f"validation {objective}")
    figure["layout"]["xaxis"]["zeroline"] = False
    return figure


def _intermediate_figure(rows: list[Any], objective: str) -> dict[str, Any]:
    traces = []
    for r in rows:
        if not r.intermediate:
            continue
        steps = sorted(r.intermediate)
        traces.append(
            {
                "type": "scatter",
                "mode": "lines+markers",
                "name": f"#{r.number} {r.state}",
                "x": steps,
                "y": [r.intermediate[s] for s in steps],
                "line": {"dash": "dot" if r.state == "pruned" else "solid"},
            }
        )
    return figure_layout(
        "Validation scores during training (the pruner's view)",
        traces,
        "step",
        f"validation {objective}",
    )


def _parallel_figure(
    rows: list[Any], params: list[str], objective: str, logs: frozenset[str] = frozenset()
) -> dict[str, Any]:
    done = [r for r in rows if r.state == "complete" and r.value is not None]
    dimensions = []
    for p in params:
        values = [r.params.get(p) for r in done]
        if p in logs and values and all(isinstance(v, int | float) and v > 0 for v in values):
            dimensions.append(_log_dimension(p, values))
        elif all(isinstance(v, int | float) for v in values):
            dimensions.append({"label": p, "values": values})
        else:  # categorical: positions of the choices
            labels = sorted({str(v) for v in values})
            dimensions.append(
                {
                    "label": p,
                    "values": [labels.index(str(v)) for v in values],
                    "tickvals": list(range(len(labels))),
                    "ticktext": labels,
                }
            )
    values = [r.value for r in done]
    dimensions.append({"label": objective, "values": values})
    trace = {
        "type": "parcoords",
        "dimensions": dimensions,
        "line": {"color": values, "colorscale": "Viridis", "showscale": True},
    }
    figure = figure_layout("Parameters of complete trials", [trace] if done else [], "", "")
    # Room above the axes for their names (parcoords draws them over the top of the axes).
    figure["layout"]["margin"] = {"l": 70, "r": 70, "t": 110, "b": 30}
    return figure


def _log_dimension(name: str, values: list[Any]) -> dict[str, Any]:
    """A log-searched parameter on a log axis: log10 of the values, ticks at powers of ten."""
    logs = [math.log10(v) for v in values]
    low, high = math.floor(min(logs)), math.ceil(max(logs))
    ticks = list(range(low, high + 1))
    return {
        "label": f"{name} (log)",
        "values": logs,
        "range": [low, high],
        "tickvals": ticks,
        "ticktext": [f"1e{t}" for t in ticks],
    }


def _importance_figure(importances: dict[str, float]) -> dict[str, Any]:
    names = list(importances)[::-1]
    trace = {
        "type": "bar",
        "orientation": "h",
        "x": [importances[n] for n in names],
        "y": names,
        "name": "importance",
    }
    figure = figure_layout(
        "Parameter importances (Optuna)", [trace] if names else [], "importance", ""
    )
    figure["layout"]["margin"] = {"l": 120, "r": 40, "t": 50, "b": 50}
    figure["layout"]["showlegend"] = False
    return figure


def layout(context: DashboardContext, name: str) -> html.Div:
    """The page of study ``name``; a clear message if there is none."""
    from agentic_trading.studies import StudyError, StudyStorageError, load_study

    try:
        _, spec = load_study(name, context.settings)
        view = study_view(context, name)
    except (StudyError, StudyStorageError) as exc:
        return html.Div([html.H1("Study not found"), html.P(str(exc), className="error")])
    config: Any = {"displaylogo": False}
    more: Any = html.Div()
    if context.control.enabled:
        more = html.Div(
            [
                html.Label(
                    [
                        "more trials for the workers",
                        dcc.Input(
                            id="study-more-count",
                            type="number",
                            value=10,
                            min=1,
                            step=1,
                            style={"width": "6em"},
                        ),
                    ]
                ),
                html.Button("Add trials", id="study-more-button", n_clicks=0),
            ],
            className="controls",
        )
    return html.Div(
        [
            html.H1(["Study ", html.Span(name, className="mono")]),
            html.P(
                f"{spec.agent} on {spec.base.get('pair', 'EUR_USD')}, {spec.timesteps:,} steps "
                f"a trial, {spec.study_direction} validation {spec.objective}, {spec.sampler} "
                f"sampler, {spec.pruner} pruner (scores every {spec.evaluation_interval:,} "
                f"steps); storage {context.settings.study_location()}",
                style={"color": "#666"},
            ),
            html.P(view["summary"], id="study-summary"),
            html.Div(view["verdict"], id="study-verdict"),
            *stop_controls(context),
            more,
            html.H2("Trials"),
            html.Div(
                table(view["header"], view["rows"], body_id="study-trials"), className="scroll"
            ),
            html.Div(
                [
                    dcc.Graph(id="study-history", figure=view["history"], config=config),
                    dcc.Graph(id="study-intermediate", figure=view["intermediate"], config=config),
                ],
                className="grid",
            ),
            dcc.Graph(id="study-parallel", figure=view["parallel"], config=config),
            html.Div(
                dcc.Graph(id="study-importances", figure=view["importances"], config=config),
                className="grid",
            ),
            dcc.Store(id="study-name", data=name),
            dcc.Store(id="study-fingerprint", data=view["fingerprint"]),
            dcc.Interval(id="study-tick", interval=REFRESH_MS),
        ]
    )


def register(app: Dash, context: DashboardContext) -> None:
    """Live refresh (trial table always, charts when a trial changed), adding trials."""

    @app.callback(
        Output("study-summary", "children"),
        Output("study-verdict", "children"),
        Output("study-trials", "children"),
        Output("study-history", "figure"),
        Output("study-intermediate", "figure"),
        Output("study-parallel", "figure"),
        Output("study-importances", "figure"),
        Output("study-fingerprint", "data"),
        Input("study-tick", "n_intervals"),
        State("study-name", "data"),
        State("study-fingerprint", "data"),
        prevent_initial_call=True,
    )
    def refresh(_: int | None, name: str, fingerprint: Any) -> tuple[Any, ...]:
        view = study_view(context, name)
        new = [list(item) for item in view["fingerprint"]]
        if new == fingerprint:
            charts: tuple[Any, ...] = (no_update,) * 5
        else:
            charts = (
                view["history"], view["intermediate"], view["parallel"], view["importances"],
                new,
            )  # fmt: skip
        return (view["summary"], view["verdict"], view["rows"], *charts)

    if not context.control.enabled:
        return

    @app.callback(
        Output("control-message", "children", allow_duplicate=True),
        Input("study-more-button", "n_clicks"),
        State("study-more-count", "value"),
        State("study-name", "data"),
        State("token", "value"),
        prevent_initial_call=True,
    )
    def add(clicks: int, count: Any, name: str, token: str | None) -> str:
        if not clicks:
            return ""
        try:
            return context.control.add_trials(name, count, token)
        except ControlError as exc:
            return f"Not added: {exc}"
