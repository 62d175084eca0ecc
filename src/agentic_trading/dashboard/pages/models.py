"""The models page: every registered model with its versions, the run and verdict of each, and
its aliases; a version is promoted to an alias (champion, challenger, ...) after a
confirmation."""

from __future__ import annotations

from typing import Any

from dash import Dash, Input, Output, State, dcc, html, no_update

from agentic_trading.common.formatting import metric_value
from agentic_trading.dashboard.components import run_link, stop_controls, table
from agentic_trading.dashboard.context import DashboardContext
from agentic_trading.dashboard.control import ControlError
from agentic_trading.models import RegisteredModel
from agentic_trading.tracking import TrackingError

__all__ = ["layout", "model_sections", "register"]

HEADER = ["version", "aliases", "run", "registered", "agent", "verdict", "excess Sharpe", "PSR"]


def _section(model: RegisteredModel) -> list[Any]:
    rows = [
        html.Tr(
            [
                html.Td(str(v.version)),
                html.Td(", ".join(v.aliases), className="mono"),
                html.Td(run_link(v.run_id)),
                html.Td(v.created_at.strftime("%Y-%m-%d %H:%M")),
                html.Td(str(v.config.get("agent_type", ""))),
                html.Td(str(v.verdict.get("verdict_label", "")), title=v.verdict.get("verdict")),
                html.Td(metric_value("excess_sharpe", v.verdict.get("excess_sharpe"))),
                html.Td(metric_value("psr", v.verdict.get("psr"))),
            ]
        )
        for v in reversed(model.versions)
    ]
    aliases = ", ".join(f"{a} → {v}" for a, v in sorted(model.aliases.items())) or "no aliases"
    return [
        html.H2([html.Span(model.name, className="mono"), f" ({aliases})"]),
        table(HEADER, rows, body_id=f"model-{model.name}"),
    ]


def model_sections(context: DashboardContext) -> tuple[list[Any], list[RegisteredModel]]:
    """A heading and a version table per model, and the models."""
    registry = context.registry
    if registry is None:
        return [html.P("There is no run catalogue here, so no registry (ML_CATALOG_URL).")], []
    models = registry.models()
    if not models:
        return [
            html.P(
                "No models yet: register one from a completed run's page, or with "
                "agentic-trading models register RUN_ID NAME."
            )
        ], []
    return [part for model in models for part in _section(model)], models


def _promote_form(models: list[RegisteredModel]) -> Any:
    return html.Div(
        [
            html.Label(
                [
                    "model",
                    dcc.Dropdown(
                        [m.name for m in models],
                        models[0].name if models else None,
                        id="promote-model",
                        clearable=False,
                        style={"minWidth": "14em"},
                    ),
                ]
            ),
            html.Label(
                [
                    "version",
                    dcc.Input(
                        id="promote-version",
                        type="number",
                        min=1,
                        step=1,
                        value=models[0].versions[-1].version if models else 1,
                        style={"width": "5em"},
                    ),
                ]
            ),
            html.Label(
                ["alias", dcc.Input(id="promote-alias", value="champion", style={"width": "16ch"})]
            ),
            html.Button("Promote", id="promote-button", n_clicks=0),
        ],
        className="controls",
    )


def layout(context: DashboardContext) -> html.Div:
    """The registry as it is now."""
    try:
        sections, models = model_sections(context)
    except TrackingError as exc:
        sections, models = [html.P(f"Models unavailable: {exc}", className="error")], []
    controls: list[Any] = []
    if context.control.enabled and models:
        controls = [
            *stop_controls(context),
            _promote_form(models),
            dcc.ConfirmDialog(id="promote-confirm"),
        ]
    return html.Div(
        [
            html.H1("Models"),
            html.P(
                "Registered models: each version is a run's model with its config and verdict. "
                "Trading code loads one by alias: "
                "agentic_trading.models.load_model('NAME@champion').",
                style={"color": "#666"},
            ),
            *controls,
            html.Div(sections, id="models-body"),
        ]
    )


def register(app: Dash, context: DashboardContext) -> None:
    """Promote with confirmation; the page's tables then show the move."""
    if not context.control.enabled:
        return

    @app.callback(
        Output("promote-confirm", "displayed"),
        Output("promote-confirm", "message"),
        Input("promote-button", "n_clicks"),
        State("promote-model", "value"),
        State("promote-version", "value"),
        State("promote-alias", "value"),
        prevent_initial_call=True,
    )
    def ask(clicks: int, name: str, version: Any, alias: str) -> tuple[Any, Any]:
        if not clicks or not name:
            return no_update, no_update
        return True, f"Make version {version} of {name} its {alias!r}? Trading code loads it next."

    @app.callback(
        Output("control-message", "children", allow_duplicate=True),
        Output("models-body", "children"),
        Input("promote-confirm", "submit_n_clicks"),
        State("promote-model", "value"),
        State("promote-version", "value"),
        State("promote-alias", "value"),
        State("token", "value"),
        prevent_initial_call=True,
    )
    def promote(
        _: int | None, name: str, version: Any, alias: str, token: str | None
    ) -> tuple[Any, Any]:
        registry = context.registry
        if registry is None:
            return "There is no registry here.", no_update
        try:
            message = context.control.promote_model(registry, name, version, alias, token)
        except ControlError as exc:
            return f"Not promoted: {exc}", no_update
        return message, model_sections(context)[0]
