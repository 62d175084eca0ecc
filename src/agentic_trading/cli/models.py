"""``agentic-trading models``: register runs' models, list and show them, move aliases, check
that a model loads and trades."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from agentic_trading.cli._common import (
    JsonOption,
    console,
    errors,
    expected_errors,
    print_json,
    repository,
    settings_with,
)
from agentic_trading.cli.tables import Cell, Column, print_table
from agentic_trading.config import Settings
from agentic_trading.models import ModelRegistry, RegisteredModel, get_model_registry
from agentic_trading.tracking import SyncExperimentRepository

app = typer.Typer(
    rich_markup_mode=None,  # help texts verbatim: [a-z0-9_-] is not markup
    help=(
        "The model registry: named models, numbered versions (a run's model with its config "
        "and verdict) and aliases such as champion, which trading code loads with "
        "agentic_trading.models.load_model('NAME@champion'). It lives in the run catalogue "
        "(ML_CATALOG_URL)."
    ),
    no_args_is_help=True,
)
ModelName = Annotated[str, typer.Argument(help="The model's name, e.g. EURUSD-PPO.")]


def _registry() -> Any:
    from agentic_trading.models import get_model_registry

    return get_model_registry(settings_with())


@app.command("register")
def register_command(
    run_id: Annotated[str, typer.Argument(help="A completed run that stored model.zip.")],
    name: ModelName,
    json_output: JsonOption = False,
) -> None:
    """Make a run's model the next version of NAME (created if new)."""
    with expected_errors():
        register(repository(), settings_with(), run_id, name, json_output)


@app.command("list")
def list_command(
    json_output: JsonOption = False,
) -> None:
    """Every model: versions, aliases, the latest version's verdict."""
    with expected_errors():
        list_models(_registry(), json_output)


@app.command("show")
def show_command(
    name: ModelName,
    json_output: JsonOption = False,
) -> None:
    """A model's versions: the run each came from, its aliases and its verdict's figures."""
    with expected_errors():
        show(_registry(), name, json_output)


@app.command("promote")
def promote_command(
    name: ModelName,
    version: Annotated[int, typer.Argument(min=1, help="The version the alias points to.")],
    alias: Annotated[
        str, typer.Option(help="champion, challenger or any 1-64 of [a-z0-9_-].")
    ] = "champion",
    json_output: JsonOption = False,
) -> None:
    """Point NAME@ALIAS at VERSION, atomically (racing promotions leave exactly one)."""
    with expected_errors():
        promote(_registry(), name, version, alias, json_output)


@app.command("load")
def load_command(
    reference: Annotated[str, typer.Argument(help="NAME@alias, NAME/VERSION or NAME (latest).")],
    json_output: JsonOption = False,
) -> None:
    """Check a model as trading code would get it: load it with load_model(REFERENCE) and let
    it act on the last bars of its pair's bundled data."""
    with expected_errors():
        load(reference, json_output)


#: Verdict figures shown beside a version, in this order.
FIGURES = ("excess_sharpe", "psr_vs_buy_and_hold", "sharpe_ratio", "total_profit")


def register(
    repo: SyncExperimentRepository, settings: Settings, run_id: str, name: str, as_json: bool
) -> None:
    repo.get_run(run_id)  # a clear "no run" before the registry's own checks
    version = get_model_registry(settings, repo).register(run_id, name)
    if version.warning:
        errors.print(f"[yellow]warning:[/] {version.reference}: {version.warning}", highlight=False)
    if as_json:
        print_json(version.as_data())
        return
    console.print(
        f"registered [bold]{version.reference}[/] from run {run_id}; make it the one in use "
        f"with:\n  agentic-trading models promote {version.name} {version.version} "
        "--alias champion"
    )


def list_models(registry: ModelRegistry, as_json: bool) -> None:
    models = registry.models()
    if as_json:
        print_json([model.as_data() for model in models])
        return
    if not models:
        console.print(
            f"no models in the registry at {registry.catalogue.location}; register one with "
            "agentic-trading models register RUN_ID NAME"
        )
        return
    rows: list[list[Cell]] = []
    for model in models:
        latest = model.versions[-1] if model.versions else None
        rows.append(
            [
                model.name,
                str(len(model.versions)),
                str(latest.version) if latest else "-",
                _aliases(model),
                str(latest.verdict.get("verdict_label", "")) if latest else "",
            ]
        )
    columns = [
        Column("name", whole=True),
        Column("versions", justify="right", drop=2),
        Column("latest", justify="right"),
        Column("aliases"),
        Column("latest verdict", drop=1),
    ]
    print_table(console, columns, rows, title=f"models in {registry.catalogue.location}")


def show(registry: ModelRegistry, name: str, as_json: bool) -> None:
    model = registry.model(name)
    if as_json:
        print_json(model.as_data())
        return
    columns = [
        Column("version", justify="right"),
        Column("aliases"),
        Column("run", whole=True),
        Column("created", drop=len(FIGURES) + 2),
        Column("agent", drop=len(FIGURES) + 1),
        Column("verdict"),
        *(Column(key, justify="right", drop=len(FIGURES) - i) for i, key in enumerate(FIGURES)),
    ]
    rows: list[list[Cell]] = [
        [
            str(version.version),
            ", ".join(version.aliases),
            version.run_id,
            version.created_at.strftime("%Y-%m-%d %H:%M"),
            str(version.config.get("agent_type", "")),
            str(version.verdict.get("verdict_label", "")),
            *(_figure(version.verdict.get(key)) for key in FIGURES),
        ]
        for version in model.versions
    ]
    title = f"model {model.name}: {_aliases(model) or 'no aliases'}"
    print_table(console, columns, rows, title=title)


def promote(registry: ModelRegistry, name: str, version: int, alias: str, as_json: bool) -> None:
    before = registry.model(name).aliases.get(alias)
    promoted = registry.promote(name, version, alias)
    if as_json:
        print_json({**promoted.as_data(), "previous": before})
        return
    was = f" (was version {before})" if before is not None and before != version else ""
    console.print(f"{name}@{alias} is now version {version}{was}")


def load(reference: str, as_json: bool) -> None:
    """Load the model, as trading code would, and act on the bundled data's last bars."""
    from agentic_trading.models import load_model
    from agentic_trading.training.data import load_prices

    loaded = load_model(reference)
    config = loaded.config
    data = config.get("data")
    bars = load_prices(str(config.get("pair", "EUR_USD")), data)
    position = loaded.act(bars["Close"].to_numpy(), times=bars.index)
    if as_json:
        print_json(
            {**loaded.version.as_data(), "reference": reference, "position_on_last_bar": position}
        )
        return
    word = {-1.0: "short", 0.0: "flat", 1.0: "long"}.get(position, str(position))
    console.print(
        f"{reference} is {loaded.version.reference} (run {loaded.version.run_id}, "
        f"{config.get('agent_type', '?')} on {config.get('pair', '?')}): loads and predicts; "
        f"on the last bar of the bundled data it goes [bold]{word}[/]"
    )
    if loaded.verdict.get("verdict"):
        console.print(f"verdict: {loaded.verdict['verdict']}")


def _aliases(model: RegisteredModel) -> str:
    return ", ".join(f"{a}={v}" for a, v in sorted(model.aliases.items()))


def _figure(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, int | float) else ""
