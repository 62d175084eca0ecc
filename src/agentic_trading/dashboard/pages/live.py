"""The landing page: live experiments (messaging) beside the most recent runs (tracking).

While an experiment is pending or running, the page asks for changes every second and gets back
only what changed: a :class:`dash.Patch` of the rows that differ and the new points of the reward
curves. With nothing live the timer stops; ``assets/live.js`` wakes it when an experiment starts.
"""

from __future__ import annotations

from typing import Any

from dash import ALL, Dash, Input, Output, Patch, State, ctx, dcc, html, no_update
from dash.exceptions import PreventUpdate

from agentic_trading.common.formatting import duration, rate
from agentic_trading.dashboard.components import (
    final,
    run_link,
    status_badge,
    stop_controls,
    table,
)
from agentic_trading.dashboard.context import DashboardContext
from agentic_trading.dashboard.control import ControlError
from agentic_trading.dashboard.data import LIVE_STATUSES
from agentic_trading.dashboard.live import is_live
from agentic_trading.messaging.brokers import BrokerError
from agentic_trading.messaging.messages import ExperimentState
from agentic_trading.tracking import RunSummary, TrackingError

__all__ = ["layout", "live_row", "live_update", "register", "run_rows"]

REFRESH_MS = 1000
RECENT_RUNS = 20
LIVE_HEADER = ["experiment", "status", "progress", "steps", "speed", "ETA", "reward", "message", ""]
STOP_CELL = LIVE_HEADER.index("")
RUN_HEADER = ["run", "experiment", "status", "agent", "profit", "buy & hold", "Sharpe", "created"]


def _cells(state: ExperimentState) -> list[str]:
    reward = state.latest_metrics.get("reward")
    return [
        state.experiment_id,
        state.status.value,
        f"{state.progress:.1f}",
        f"{state.current_step:,}/{state.total_steps or 0:,}",
        rate(state.steps_per_second),
        duration(state.eta_seconds),
        "-" if reward is None else f"{reward:+.1f}",
        state.message or "",
        "stop" if is_live(state) and not state.stop_requested else "",
    ]


def _cell(index: int, cells: list[str], state: ExperimentState, can_stop: bool) -> html.Td:
    """Cell ``index`` of a row whose texts are ``cells`` (built alone: components are costly)."""
    value = cells[index]
    if index == 0:
        return html.Td(value, className="mono")
    if index == 1:
        return html.Td(status_badge(value))
    if index == 2:
        return html.Td(html.Progress(value=value, max="100"), title=f"{value} %")
    if index == STOP_CELL:
        if value and can_stop:
            return html.Td(
                html.Button(
                    "Stop",
                    id={"type": "stop", "experiment": state.experiment_id},
                    className="stop",
                    n_clicks=0,
                )
            )
        return html.Td("stopping…" if state.stop_requested and is_live(state) else "")
    return html.Td(value)


def _row_cells(state: ExperimentState, can_stop: bool) -> list[html.Td]:
    cells = _cells(state)
    return [_cell(k, cells, state, can_stop) for k in range(len(cells))]


def live_row(state: ExperimentState, can_stop: bool) -> html.Tr:
    """One live experiment: id, status, progress bar, steps, speed, ETA, reward, message, stop."""
    return html.Tr(
        _row_cells(state, can_stop), id={"type": "live-row", "experiment": state.experiment_id}
    )


def _trace(state: ExperimentState, reward: float) -> dict[str, Any]:
    return {
        "type": "scatter",
        "mode": "lines+markers",
        "name": state.experiment_id,
        "x": [state.metrics_step],
        "y": [reward],
    }


def reward_history(
    context: DashboardContext, states: list[ExperimentState], view: dict[str, Any]
) -> list[dict[str, Any]]:
    """The reward curve of each live training as far back as tracking has it, joined with the
    newest point messaging carries (tracking is written every ``log_every`` steps; messaging
    may be ahead). ``view["steps"]`` is set to each curve's last step, so the live refresh
    extends the curves from there."""
    by_experiment = _tracked_runs(context, [s for s in states if s.experiment_id in view["traces"]])
    traces = []
    for state in states:
        eid = state.experiment_id
        if eid not in view["traces"]:
            continue
        trace = _trace(state, state.latest_metrics["reward"])
        run_id = by_experiment.get(eid)
        if run_id is not None:
            try:
                series = context.repository.get_metric_series(run_id, "reward")
            except (TrackingError, ValueError):
                series = None
            if series is not None:
                steps, values = list(series.steps), list(series.values)
                if state.metrics_step is not None and (not steps or state.metrics_step > steps[-1]):
                    steps.append(state.metrics_step)
                    values.append(state.latest_metrics["reward"])
                trace["x"], trace["y"] = steps, values
                view["steps"][eid] = steps[-1] if steps else view["steps"].get(eid, -1)
        traces.append(trace)
    return traces


def _tracked_runs(context: DashboardContext, states: list[ExperimentState]) -> dict[str, str]:
    """The tracked run of each live experiment (its config names the experiment id)."""
    if not states:
        return {}
    wanted = {s.experiment_id for s in states}
    try:
        runs = context.repository.list_runs(status="running")
    except (TrackingError, ValueError):
        return {}
    return {
        str(r.config.get("experiment_id")): r.run_id
        for r in runs
        if r.config.get("experiment_id") in wanted
    }


def live_update(
    states: list[ExperimentState], view: dict[str, Any] | None, can_stop: bool
) -> tuple[Any, Any, dict[str, Any]]:
    """What the page must change to show ``states``, given what it shows (``view``).

    Returns the table rows (a full list when experiments came or went, a :class:`Patch` of the
    cells that changed, or ``no_update``), the reward figure (a :class:`Patch` appending new
    points and traces, or ``no_update``) and the new ``view``. Unchanged cells, such as a stop
    button, stay as they are in the browser.
    """
    view = view or {}
    ids = [s.experiment_id for s in states]
    signatures = [_cells(s) for s in states]
    rows: Any = no_update
    if ids != view.get("ids"):
        rows = [live_row(s, can_stop) for s in states]
    else:
        for index, (state, cells) in enumerate(zip(states, signatures, strict=True)):
            changed = [k for k, cell in enumerate(cells) if cell != view["sigs"][index][k]]
            if changed:
                rows = rows if isinstance(rows, Patch) else Patch()
                for k in changed:
                    rows[index]["props"]["children"][k] = _cell(k, cells, state, can_stop)

    traces: list[str] = list(view.get("traces", []))
    steps: dict[str, int] = dict(view.get("steps", {}))
    figure: Any = no_update
    for state in states:
        reward = state.latest_metrics.get("reward")
        step = state.metrics_step
        eid = state.experiment_id
        if reward is None or step is None or step <= steps.get(eid, -1):
            continue
        figure = figure if isinstance(figure, Patch) else Patch()
        steps[eid] = step
        if eid in traces:
            index = traces.index(eid)
            figure["data"][index]["x"].append(step)
            figure["data"][index]["y"].append(reward)
        else:
            traces.append(eid)
            figure["data"].append(_trace(state, reward))
    return rows, figure, {"ids": ids, "sigs": signatures, "traces": traces, "steps": steps}


def run_rows(runs: list[RunSummary]) -> list[html.Tr]:
    """Table rows of tracked runs: run, experiment, status, agent, profit, Sharpe, created."""
    return [
        html.Tr(
            [
                html.Td(run_link(run.run_id)),
                html.Td(run.experiment),
                html.Td(status_badge(run.status.value)),
                html.Td(str(run.config.get("agent_type", ""))),
                html.Td(final(run, "total_profit")),
                html.Td(final(run, "buy_and_hold_total_profit")),
                html.Td(final(run, "sharpe_ratio")),
                html.Td(run.created_at.strftime("%Y-%m-%d %H:%M")),
            ]
        )
        for run in runs
    ]


def _reward_figure() -> dict[str, Any]:
    return {
        "data": [],
        "layout": {
            "title": {"text": "Reward of live trainings", "font": {"size": 14}},
            "height": 300,
            "margin": {"l": 50, "r": 10, "t": 40, "b": 40},
            "template": "plotly_white",
            "xaxis": {"title": {"text": "step"}},
            "yaxis": {"title": {"text": "episode reward"}},
        },
    }


def _start_form(context: DashboardContext) -> html.Div:
    return html.Div(
        [
            html.H2("Start a training"),
            html.Div(
                [
                    html.Label(
                        [
                            "agent",
                            dcc.Dropdown(
                                ["PPO", "A2C", "DQN", "SAC", "TD3"],
                                "PPO",
                                id="start-agent",
                                clearable=False,
                            ),
                        ]
                    ),
                    html.Label(
                        [
                            "timesteps",
                            dcc.Input(
                                id="start-timesteps",
                                type="number",
                                value=20_000,
                                min=100,
                                step=100,
                            ),
                        ]
                    ),
                    html.Label(
                        [
                            "learning rate",
                            dcc.Input(
                                id="start-lr",
                                type="number",
                                value=3e-4,
                                step="any",
                            ),
                        ]
                    ),
                    html.Button("Start", id="start-button", n_clicks=0),
                ],
                className="controls",
            ),
            html.P(
                (
                    "Queued as a trial of a study in STUDY_STORAGE "
                    f"({context.settings.study_location()}): a study worker runs it."
                    if context.control.through_studies
                    else "Trains on the bundled EUR/USD bars in the dashboard's own process "
                    f"({context.settings.message_broker_type} broker, tracked in "
                    f"{context.settings.ml_storage_path}). Set STUDY_STORAGE to send it to "
                    "study workers instead."
                ),
                style={"color": "#666", "fontSize": "0.85em"},
            ),
        ]
    )


def layout(context: DashboardContext) -> html.Div:
    """The landing page as it is now; the live part then updates itself."""
    problem = None
    states: list[ExperimentState] = []
    try:
        states = on_screen(context.feed.states())
    except BrokerError as exc:
        problem = _banner(exc)
    runs = context.repository.list_runs(limit=RECENT_RUNS)
    can_stop = context.control.enabled
    rows, _, view = live_update(states, None, can_stop)
    reward = _reward_figure()
    reward["data"] = reward_history(context, states, view)
    return html.Div(
        [
            html.H1("Live experiments"),
            html.Div(problem or "", id="banner", className="banner" if problem else ""),
            *stop_controls(context),
            table(LIVE_HEADER, rows, body_id="live-table"),
            dcc.Store(id="live-view", data=view),
            dcc.Graph(id="live-reward", figure=reward, config={"displaylogo": False}),
            _start_form(context) if context.control.enabled else html.Div(),
            html.H2("Recent runs"),
            table(RUN_HEADER, run_rows(runs), body_id="recent-runs"),
            dcc.Link("All runs →", href="/runs"),
            dcc.Interval(
                id="live-tick", interval=REFRESH_MS, disabled=not any(is_live(s) for s in states)
            ),
        ]
    )


#: Finished experiments the live table keeps (the newest); all live ones are always shown, so
#: a study's many finished trials never push the reward chart off the screen.
FINISHED_SHOWN = 5


def on_screen(states: list[ExperimentState]) -> list[ExperimentState]:
    """The experiments the live table shows: every live one, and the newest finished ones."""
    finished = [s for s in states if not is_live(s)]
    keep = {id(s) for s in sorted(finished, key=lambda s: s.updated_at)[-FINISHED_SHOWN:]}
    return [s for s in states if is_live(s) or id(s) in keep]


def _finished_since(view: dict[str, Any] | None, states: list[ExperimentState]) -> bool:
    """Whether an experiment that ``view`` showed as live has ended."""
    if not view:
        return False
    before = dict(zip(view.get("ids", []), (sig[1] for sig in view.get("sigs", [])), strict=True))
    return any(before.get(s.experiment_id) in LIVE_STATUSES and not is_live(s) for s in states)


def _banner(exc: BaseException) -> str:
    return f"Live view unavailable: {exc}. The runs below still work."


def register(app: Dash, context: DashboardContext) -> None:
    """The landing page's callbacks: live refresh, stop with confirmation, start a training."""

    @app.callback(
        Output("live-table", "children"),
        Output("live-reward", "figure"),
        Output("banner", "children"),
        Output("banner", "className"),
        Output("live-view", "data"),
        Output("live-tick", "disabled"),
        Output("recent-runs", "children"),
        Input("live-tick", "n_intervals"),
        State("live-view", "data"),
        State("banner", "children"),
        prevent_initial_call=True,
    )
    def refresh(_: int | None, view: dict[str, Any] | None, banner: str | None) -> tuple[Any, ...]:
        try:
            states = on_screen(context.feed.states())
        except BrokerError as exc:
            return no_update, no_update, _banner(exc), "banner", no_update, no_update, no_update
        rows, figure, new_view = live_update(states, view, context.control.enabled)
        cleared: tuple[Any, Any] = ("", "") if banner else (no_update, no_update)
        idle = not any(is_live(s) for s in states)
        recent: Any = no_update
        if _finished_since(view, states):  # its run is final in tracking now
            recent = run_rows(context.repository.list_runs(limit=RECENT_RUNS))
        # The timer only ticks while enabled, so only "stop" is news; an unchanged view is none.
        out = (
            rows,
            figure,
            *cleared,
            no_update if new_view == view else new_view,
            True if idle else no_update,
            recent,
        )
        if all(value is no_update for value in out):
            raise PreventUpdate  # nothing changed: an empty answer
        return out

    @app.callback(
        Output("stop-confirm", "displayed"),
        Output("stop-confirm", "message"),
        Output("stop-target", "data"),
        Input({"type": "stop", "experiment": ALL}, "n_clicks"),
        prevent_initial_call=True,
    )
    def ask_to_stop(clicks: list[int | None]) -> tuple[Any, ...]:
        trigger = ctx.triggered_id
        if not isinstance(trigger, dict) or not any(clicks):
            return no_update, no_update, no_update
        experiment_id = trigger["experiment"]
        return True, f"Stop the training {experiment_id}? It ends as cancelled.", experiment_id

    @app.callback(
        Output("control-message", "children"),
        Input("stop-confirm", "submit_n_clicks"),
        State("stop-target", "data"),
        State("token", "value"),
        prevent_initial_call=True,
    )
    def stop(_: int | None, experiment_id: str | None, token: str | None) -> str:
        if not experiment_id:
            return ""
        try:
            sent = context.control.stop(experiment_id, token)
        except (ControlError, ValueError, BrokerError) as exc:
            return f"Not stopped: {exc}"
        if not sent:
            return f"{experiment_id} is not running any more."
        return f"Stop requested for {experiment_id}; it ends as cancelled within a few steps."

    if not context.control.enabled:
        return

    @app.callback(
        Output("control-message", "children", allow_duplicate=True),
        Output("live-tick", "disabled", allow_duplicate=True),
        Input("start-button", "n_clicks"),
        State("start-agent", "value"),
        State("start-timesteps", "value"),
        State("start-lr", "value"),
        State("token", "value"),
        prevent_initial_call=True,
    )
    def start(
        clicks: int, agent: str, timesteps: Any, learning_rate: Any, token: str | None
    ) -> tuple[Any, Any]:
        if not clicks:
            return no_update, no_update
        try:
            message = context.control.start_training(agent, timesteps, learning_rate, token)
        except ControlError as exc:
            return f"Not started: {exc}", no_update
        return message, False
