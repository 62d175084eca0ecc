"""The run page: one run's status and error, its verdict, config, final metrics against
buy-and-hold, every metric series as a chart, its artifacts, and a link to the same run in Aim's
UI. A walk-forward group's page shows its trainings and their excess Sharpe by fold."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

from dash import Dash, Input, Output, State, dcc, html, no_update

from agentic_trading.common.formatting import duration, environment_rows, metric_value
from agentic_trading.dashboard.components import (
    EQUITY_SERIES,
    curves_figure,
    equity_figure,
    figure_layout,
    run_link,
    status_badge,
    stop_controls,
    table,
)
from agentic_trading.dashboard.context import DashboardContext
from agentic_trading.dashboard.control import ControlError
from agentic_trading.evaluation.verdict import GROUP_KIND
from agentic_trading.models.registry import MODEL_ARTIFACT
from agentic_trading.status import ExperimentStatus
from agentic_trading.tracking import RunDetail, TrackingError
from agentic_trading.tracking.output import OUTPUT_ARTIFACT

__all__ = ["layout", "register"]


def _final_tables(run: RunDetail) -> list[Any]:
    """Test metrics against buy-and-hold; then validation metrics; then the verdict's figures."""
    final = run.final_metrics
    compared = [n for n in final if f"buy_and_hold_{n}" in final]
    validation = [n for n in final if n.startswith("validation_")]
    rest = [
        n
        for n in final
        if n not in compared and n not in validation and not n.startswith("buy_and_hold_")
    ]
    out = []
    if compared:
        out += [html.H2("Test bars: agent against buy-and-hold"), _compared_table(run, compared)]
    if validation:
        rows = [
            html.Tr([html.Td(n.removeprefix("validation_")), html.Td(metric_value(n, final[n]))])
            for n in validation
        ]
        out += [html.H2("Validation bars"), table(["metric", "agent"], rows, "run-validation")]
    if rest:
        rows = [html.Tr([html.Td(n), html.Td(metric_value(n, final[n]))]) for n in rest]
        title = "The group's verdict" if run.config.get("kind") == GROUP_KIND else "Verdict"
        out += [html.H2(title), table(["figure", "value"], rows, "run-figures")]
    return out


def _compared_table(run: RunDetail, names: list[str]) -> Any:
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


def verdict_banner(params: dict[str, Any]) -> Any:
    """The verdict's words, coloured by its label (skill, luck, trails)."""
    words = params.get("verdict")
    if not words:
        return html.Div()
    label = str(params.get("verdict_label", "luck"))
    return html.P(
        [html.B("Verdict: "), str(words)], className=f"verdict verdict-{label}", id="run-verdict"
    )


def _group_members(context: DashboardContext, run: RunDetail) -> list[Any]:
    members = context.repository.list_runs(
        experiment=run.experiment, group=run.run_id, order_by="created_at"
    )
    rows = []
    points: dict[int, list[tuple[int, float]]] = {}
    for member in members:
        final = member.final_metrics
        fold, seed = member.config.get("fold"), member.config.get("seed")
        rows.append(
            html.Tr(
                [
                    html.Td(str(fold)),
                    html.Td(str(seed)),
                    html.Td(run_link(member.run_id)),
                    html.Td(status_badge(member.status.value)),
                    html.Td(metric_value("sharpe_ratio", final.get("sharpe_ratio"))),
                    html.Td(metric_value("sharpe_ratio", final.get("buy_and_hold_sharpe_ratio"))),
                    html.Td(metric_value("excess_sharpe", final.get("excess_sharpe"))),
                    html.Td(metric_value("psr", final.get("psr"))),
                    html.Td(str(member.params.get("verdict_label", ""))),
                ]
            )
        )
        if isinstance(fold, int) and isinstance(seed, int) and "excess_sharpe" in final:
            points.setdefault(seed, []).append((fold, final["excess_sharpe"]))
    header = ["fold", "seed", "run", "status", "Sharpe", "buy & hold", "excess", "PSR", "verdict"]
    figure = excess_figure(points, run.final_metrics)
    return [
        html.H2(f"The group's {len(members)} trainings"),
        dcc.Graph(figure=figure, config={"displaylogo": False}, id="group-excess"),
        table(header, rows, body_id="group-members"),
    ]


def excess_figure(
    points: dict[int, list[tuple[int, float]]], final: dict[str, float]
) -> dict[str, Any]:
    """Each training's excess Sharpe by fold (a marker per seed), with the group's interquartile
    mean and its bootstrap interval as a band."""
    traces: list[dict[str, Any]] = [
        {
            "type": "scatter",
            "mode": "markers",
            "name": f"seed {seed}",
            "x": [fold for fold, _ in values],
            "y": [value for _, value in values],
            "marker": {"size": 10},
        }
        for seed, values in sorted(points.items())
    ]
    folds = sorted({fold for values in points.values() for fold, _ in values})
    shapes = []
    if "excess_sharpe_iqm" in final and folds:
        span = {"x0": folds[0] - 0.5, "x1": folds[-1] + 0.5, "xref": "x", "yref": "y"}
        shapes.append(
            {
                **span,
                "type": "rect",
                "y0": final.get("excess_sharpe_ci_low", 0.0),
                "y1": final.get("excess_sharpe_ci_high", 0.0),
                "fillcolor": "rgba(23, 86, 169, 0.12)",
                "line": {"width": 0},
            }
        )
        shapes.append(
            {
                **span,
                "type": "line",
                "y0": final["excess_sharpe_iqm"],
                "y1": final["excess_sharpe_iqm"],
                "line": {"color": "#1756a9"},
            }
        )
    shapes.append({"type": "line", "x0": 0, "x1": 1, "xref": "paper", "y0": 0, "y1": 0,
                   "yref": "y", "line": {"color": "#888", "dash": "dash"}})  # fmt: skip
    figure = figure_layout(
        "Excess Sharpe over buy-and-hold by fold (band: interquartile mean, 95% interval)",
        traces,
        "fold",
        "excess Sharpe (annualised)",
    )
    figure["layout"]["shapes"] = shapes
    figure["layout"]["xaxis"].update({"dtick": 1, "zeroline": False})
    return figure


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


def _environment(run: RunDetail) -> list[Any]:
    rows = environment_rows(run.environment)
    if not rows:
        return [html.P("Not recorded (a run tracked before environments were captured).")]
    settings = run.environment.get("settings") or {}
    return [
        table(["", ""], [html.Tr([html.Td(k), html.Td(v)]) for k, v in rows], "run-environment"),
        html.Details(
            [
                html.Summary("Settings in force (secrets masked)"),
                table(
                    ["setting", "value"],
                    [html.Tr([html.Td(k), html.Td(str(v))]) for k, v in settings.items()],
                ),
            ]
        ),
    ]


def _group_link(run: RunDetail) -> Any:
    group = run.config.get("group_id")
    if not isinstance(group, str):
        return html.Div()
    return html.P(
        [
            f"Fold {run.config.get('fold')}, seed {run.config.get('seed')} of walk-forward group ",
            run_link(group),
        ],
        id="run-group",
    )


#: Series the tracker's writer samples (``tracking.system_metrics``), shown apart.
SYSTEM_PREFIX = "system/"

#: How often the page of a running run refreshes itself.
REFRESH_MS = 3000


def layout(context: DashboardContext, run_id: str) -> html.Div:
    """The page of ``run_id``; a clear message if there is no such run. While the run is
    running the page refreshes itself every few seconds."""
    try:
        body, run = _body(context, run_id)
    except (TrackingError, ValueError) as exc:
        return html.Div([html.H1("Run not found"), html.P(str(exc), className="error")])
    running = run.status is ExperimentStatus.RUNNING
    return html.Div(
        [
            html.Div(body, id="run-body"),
            *_output_section(run),
            *_alerts_section(context, run),
            *_actions(context, run),
            dcc.Store(id="run-id", data=run_id),
            dcc.Interval(id="run-tick", interval=REFRESH_MS, disabled=not running),
        ]
    )


#: Console lines the page shows at most (the last ones that match the search).
OUTPUT_LINES_SHOWN = 2000


def _output_section(run: RunDetail) -> list[Any]:
    """The training's console output (``output.log``, stored when the run ends), searchable."""
    if OUTPUT_ARTIFACT not in run.artifacts:
        return []
    return [
        html.H2("Console output"),
        dcc.Input(
            id="run-output-search",
            type="search",
            placeholder="search the output (case-insensitive)",
            debounce=True,
            value="",
        ),
        html.Div(id="run-output-count", className="muted"),
        html.Pre(id="run-output-lines", className="mono console"),
    ]


def output_lines(text: str, search: str | None) -> tuple[str, list[str]]:
    """The lines of ``text`` that hold ``search`` (all without one), the last
    ``OUTPUT_LINES_SHOWN`` of them, and a line saying how many there are."""
    lines = text.splitlines()
    wanted = (search or "").strip().lower()
    found = [line for line in lines if wanted in line.lower()] if wanted else lines
    shown = found[-OUTPUT_LINES_SHOWN:]
    count = f"{len(found):,} of {len(lines):,} lines" + (f" hold {search!r}" if wanted else "")
    if len(shown) < len(found):
        count += f"; the last {len(shown):,} shown"
    return count, shown


def _alerts_section(context: DashboardContext, run: RunDetail) -> list[Any]:
    """The alerts sent about this run (``ALERT_URLS``): event, when, by whom, attempts."""
    sent = context.alerts(run.run_id)
    if not sent:
        return []
    rows = [
        html.Tr(
            [
                html.Td(alert["key"].split(":", 2)[2]),
                html.Td(
                    datetime.fromtimestamp(alert["sent_at"], UTC).strftime("%Y-%m-%d %H:%M:%S")
                    if alert["sent_at"]
                    else f"not yet: {alert['last_error'] or 'sending'}"
                ),
                html.Td(alert["claimed_by"]),
                html.Td(str(alert["attempts"])),
            ]
        )
        for alert in sent
    ]
    head = html.Tr([html.Th(name) for name in ("event", "sent (UTC)", "by", "attempts")])
    return [html.H2("Alerts"), html.Table([html.Thead(head), html.Tbody(rows)], id="run-alerts")]


def _actions(context: DashboardContext, run: RunDetail) -> list[Any]:
    """Re-run a finished training, register a completed run's model: with control enabled,
    under the same token as Stop."""
    if not context.control.enabled:
        return []
    rerunnable = (
        run.status.is_finished
        and run.config.get("kind") is None
        and {"agent_type", "timesteps"} <= set(run.config)
    )
    registrable = run.status is ExperimentStatus.COMPLETED and MODEL_ARTIFACT in run.artifacts
    if not (rerunnable or registrable):
        return []
    pieces: list[Any] = [html.H2("Actions"), *stop_controls(context)]
    if rerunnable:
        pieces.append(
            html.Div(
                [
                    html.Button("Re-run exactly", id="rerun-button", n_clicks=0),
                    html.Span(
                        " trains again from this run's record (config, seed, threads; the data "
                        "checked by its sha256), live on this dashboard; "
                        "agentic-trading experiments rerun compares the two bit for bit"
                    ),
                ],
                className="controls",
            )
        )
    if registrable:
        agent = str(run.config.get("agent_type", "PPO"))
        pair = str(run.config.get("pair", "EUR_USD")).replace("_", "")
        versions = context.repository.registered_runs().get(run.run_id, [])
        already = (
            [html.Span(f"already registered as {', '.join(versions)}", id="run-registered")]
            if versions
            else []
        )
        name = f"{pair}-{agent}"
        pieces.append(
            html.Div(
                [
                    html.Label(
                        [
                            "model name",
                            # Wide enough for the name it suggests and a longer one.
                            dcc.Input(id="register-name", value=name, style={"width": "24ch"}),
                        ]
                    ),
                    html.Button("Register this run's model", id="register-button", n_clicks=0),
                    *already,
                    dcc.Link("Models", href="/models"),
                ],
                className="controls",
            )
        )
    return pieces


def register(app: Dash, context: DashboardContext) -> None:
    """Refresh a running run's page until it has finished."""

    @app.callback(
        Output("run-body", "children"),
        Output("run-tick", "disabled"),
        Input("run-tick", "n_intervals"),
        State("run-id", "data"),
        prevent_initial_call=True,
    )
    def refresh(_: int | None, run_id: str) -> tuple[Any, bool]:
        try:
            body, run = _body(context, run_id)
        except (TrackingError, ValueError):
            return no_update, True
        return body, run.status is not ExperimentStatus.RUNNING

    @app.callback(
        Output("run-output-count", "children"),
        Output("run-output-lines", "children"),
        Input("run-output-search", "value"),
        State("run-id", "data"),
    )
    def search_output(search: str | None, run_id: str) -> tuple[str, str]:
        data = context.read_artifact(run_id, OUTPUT_ARTIFACT)
        if data is None:
            return "the output could not be read", ""
        count, lines = output_lines(data.decode("utf-8", errors="replace"), search)
        return count, "\n".join(lines)

    if not context.control.enabled:
        return

    @app.callback(
        Output("control-message", "children", allow_duplicate=True),
        Input("register-button", "n_clicks"),
        State("register-name", "value"),
        State("run-id", "data"),
        State("token", "value"),
        prevent_initial_call=True,
    )
    def register_model(clicks: int, name: str | None, run_id: str, token: str | None) -> str:
        if not clicks:
            return ""
        registry = context.registry
        if registry is None:
            return "Not registered: there is no run catalogue here (ML_CATALOG_URL)."
        try:
            return context.control.register_model(registry, run_id, name, token)
        except ControlError as exc:
            return f"Not registered: {exc}"

    @app.callback(
        Output("control-message", "children", allow_duplicate=True),
        Input("rerun-button", "n_clicks"),
        State("run-id", "data"),
        State("token", "value"),
        prevent_initial_call=True,
    )
    def rerun(clicks: int, run_id: str, token: str | None) -> str:
        if not clicks:
            return ""
        try:
            return context.control.rerun(run_id, token)
        except ControlError as exc:
            return f"Not re-run: {exc}"


def _body(context: DashboardContext, run_id: str) -> tuple[list[Any], RunDetail]:
    run = context.repository.get_run(run_id)
    series = context.repository.get_metrics(run_id)
    charts = []
    if EQUITY_SERIES[0] in series:
        figure = equity_figure([("agent", series[EQUITY_SERIES[0]])], series.get(EQUITY_SERIES[1]))
        charts.append(dcc.Graph(figure=figure, config={"displaylogo": False}))
    system: list[Any] = []
    for name, values in series.items():
        if name not in EQUITY_SERIES:
            graph = dcc.Graph(
                figure=curves_figure(name, [(name, values)]), config={"displaylogo": False}
            )
            (system if name.startswith(SYSTEM_PREFIX) else charts).append(graph)
    info = (
        f"experiment {run.experiment} · created {run.created_at:%Y-%m-%d %H:%M:%S} · "
        f"duration {duration(run.duration)}" + (f" · {run.host} pid {run.pid}" if run.host else "")
    )
    config_rows = [html.Tr([html.Td(k), html.Td(str(v))]) for k, v in run.config.items()]
    body = [
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
                    f"Open in {context.ui_name}",
                    href=context.run_ui_url(run.run_id),
                    target="_blank",
                    id="aim-link",
                ),
                " (start it with agentic-trading tracking-ui) · ",
                dcc.Link("Compare with other runs", href=f"/compare?runs={run.run_id}"),
            ]
        ),
        verdict_banner(run.params),
        _group_link(run),
        *(_group_members(context, run) if run.config.get("kind") == GROUP_KIND else []),
        *(_final_tables(run) if run.final_metrics else [html.P("No final metrics yet.")]),
        html.H2("Metrics"),
        html.Div(charts, className="grid", id="run-charts")
        if charts
        else html.P("No metrics tracked."),
        *(
            [
                html.H2("System"),
                html.P(
                    "The training process and its machine, sampled by its tracker's writer "
                    "every ML_SYSTEM_METRICS_INTERVAL seconds (x: seconds since the start)."
                ),
                html.Div(system, className="grid", id="run-system"),
            ]
            if system
            else []
        ),
        html.H2("Config"),
        table(["key", "value"], config_rows, body_id="run-config"),
        html.H2("Environment"),
        *_environment(run),
        html.H2("Artifacts"),
        _artifacts(run),
    ]
    return body, run
