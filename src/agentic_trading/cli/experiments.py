"""``agentic-trading experiments``: list, show, compare, find the best, delete tracked runs."""

from __future__ import annotations

from dataclasses import asdict
from datetime import datetime
from typing import Annotated, Any

import typer
from rich.table import Table
from rich.text import Text

from agentic_trading.cli import gc
from agentic_trading.cli._common import (
    JsonOption,
    console,
    errors,
    expected_errors,
    fail,
    parse_since,
    print_json,
    repository,
    settings_with,
    start_writer,
)
from agentic_trading.cli.format import LABEL_STYLE, status_text
from agentic_trading.cli.tables import Cell, Column, WideOption, print_table
from agentic_trading.common.formatting import environment_rows, exact_values, verdict_label
from agentic_trading.config import Settings
from agentic_trading.evaluation.verdict import GROUP_KIND
from agentic_trading.tracking import RunDetail, RunSummary, SyncExperimentRepository

app = typer.Typer(
    rich_markup_mode=None,  # help texts verbatim: [a-z0-9_-] is not markup
    help="Tracked runs: list, show, compare, best, rerun, delete, gc, reindex (ML_STORAGE_PATH).",
    no_args_is_help=True,
)


@app.command("list")
def list_command(
    experiment: Annotated[str | None, typer.Option(help="Only this experiment.")] = None,
    status: Annotated[
        str | None, typer.Option(help="Only this status (crashed and pruned included).")
    ] = None,
    limit: Annotated[int, typer.Option(min=1, help="At most this many runs.")] = 50,
    order_by: Annotated[
        str | None,
        typer.Option(help="created_at, final_metrics.NAME, config.NAME; '-' for descending."),
    ] = None,
    group: Annotated[
        str | None,
        typer.Option(help="Only the trainings of this walk-forward group (its group run id)."),
    ] = None,
    study: Annotated[str | None, typer.Option(help="Only the trials of this study.")] = None,
    where: Annotated[
        list[str] | None,
        typer.Option(
            "--where",
            "-w",
            help=(
                "A condition on a final metric or config key, e.g. "
                "'final_metrics.sharpe_ratio > 1' or 'config.agent_type == PPO'; "
                "repeat it for AND. Operators: == != < <= > >=."
            ),
        ),
    ] = None,
    since: Annotated[
        str | None,
        typer.Option(help="Only runs created since: 2026-11-28, 2026-11-28T09:30, 12h, 7d, 2w."),
    ] = None,
    offset: Annotated[int, typer.Option(min=0, help="Skip this many (the next page).")] = 0,
    json_output: Annotated[bool, typer.Option("--json", help="A JSON list for scripts.")] = False,
    wide: WideOption = False,
) -> None:
    """Runs, newest first, with each one's verdict (skill, luck or trails buy-and-hold).

    Answered from the run catalogue (ML_CATALOG_URL) in milliseconds, at any number of runs.
    Examples:

    \b
      agentic-trading experiments list --order-by -final_metrics.sharpe_ratio --limit 10
      agentic-trading experiments list -w 'config.learning_rate < 0.001' --since 7d
    """
    with expected_errors():
        list_runs(
            repository(),
            experiment,
            status,
            limit,
            order_by,
            json_output,
            group,
            study,
            where=where,
            since=None if since is None else parse_since(since),
            offset=offset,
            wide=wide,
        )


@app.command("reindex")
def reindex_command(
    json_output: JsonOption = False,
) -> None:
    """Rebuild the run catalogue from the tracking store (the Aim repository or aim:// server):
    every run re-read; says how many rows it added, fixed and removed.

    Safe while trainings run. Use it after restoring a backup, after the catalogue's database
    was down for long, or after runs were written without a catalogue.
    """
    with expected_errors():
        reindex(repository(), json_output)


@app.command("export")
def export_command(
    to: Annotated[str, typer.Option("--to", help="The backend to copy into: mlflow.")],
    experiment: Annotated[
        str | None, typer.Option(help="Only the runs of this experiment.")
    ] = None,
    json_output: JsonOption = False,
) -> None:
    """Copy the finished runs of the Aim repository (ML_STORAGE_PATH) into MLflow
    (MLFLOW_TRACKING_URI; by default mlflow.db in the same folder): config, metric series,
    final metrics, status, error, params, tags and model files.

    Idempotent: runs already in MLflow are skipped, a half-copied one is copied again; running
    runs wait for a later export. Exit 1 if any run could not be copied.
    """
    with expected_errors():
        if not export(settings_with(), to, experiment, json_output):
            raise typer.Exit(1)


@app.command("show")
def show_command(
    run_id: Annotated[str, typer.Argument(help="The run id (Aim run hash).")],
    json_output: JsonOption = False,
) -> None:
    """One run: config, status, error, final metrics, metric names, artifacts (the model) and
    its verdict; for a walk-forward group, its trainings and the group's verdict."""
    with expected_errors():
        show(repository(), run_id, json_output)


@app.command("compare")
def compare_command(
    run_ids: Annotated[list[str], typer.Argument(help="Two or more run ids.")],
    metric: Annotated[
        list[str] | None,
        typer.Option("--metric", "-m", help="Metrics to compare (default: every final metric)."),
    ] = None,
    json_output: JsonOption = False,
) -> None:
    """Runs side by side: final metrics with the best marked, and the config that differs."""
    with expected_errors():
        compare(repository(), run_ids, metric, json_output)


@app.command("best")
def best_command(
    experiment: Annotated[str, typer.Argument(help="Experiment name.")],
    metric: Annotated[str, typer.Option(help="Final metric to rank by.")] = "sharpe_ratio",
    mode: Annotated[str, typer.Option(help="max or min.")] = "max",
    json_output: JsonOption = False,
) -> None:
    """The completed run of an experiment with the best final metric."""
    with expected_errors():
        found = best(repository(), experiment, metric, mode, json_output)
    if not found:
        raise typer.Exit(1)


@app.command("rerun")
def rerun_command(
    run_id: Annotated[str, typer.Argument(help="The run id of a training to re-run.")],
    json_output: JsonOption = False,
) -> None:
    """Re-run a training exactly from its record, and compare the two runs.

    The config, the seed and torch's thread count come from the run; its data is found by path
    and checked by sha256 (changed bars are refused). On CPU with the same code and packages
    every final metric is equal bit for bit, and the command says "identical"; otherwise it
    shows the metrics that differ and what changed (commit, uncommitted diff, package versions,
    data). Exit 0 when identical, 1 when anything differs.
    """
    with expected_errors():
        settings = settings_with()
        start_writer(settings)  # its imports overlap torch's, below
        from agentic_trading.cli.train import followed_training
        from agentic_trading.training.rerun import RerunError, rerun

        def train(config: Any, name: str, extra: dict[str, Any]) -> Any:
            return followed_training(settings, config, name, extra, show=not json_output)

        try:
            report = rerun(run_id, settings, train)
        except RerunError as exc:
            fail(str(exc))
        except KeyboardInterrupt:
            raise typer.Exit(130) from None
    if json_output:
        print_json(report.as_data())
    else:
        print_rerun(report)
    if not report.identical:
        raise typer.Exit(1)


@app.command("delete")
def delete_command(
    run_id: Annotated[str, typer.Argument(help="The run id to delete for good.")],
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask.")] = False,
    force: Annotated[bool, typer.Option(help="Also a run that is still running.")] = False,
) -> None:
    """Delete a run and its data (not reversible)."""
    with expected_errors():
        repo = repository()
        run = repo.get_run(run_id)
        if not yes and not typer.confirm(f"Delete run {run_id} of {run.experiment} for good?"):
            raise typer.Exit(1)
        freed = repo.delete_run(run_id, force=force)
    console.print(f"deleted run {run_id} ({gc.human_bytes(freed)})", highlight=False)


def run_data(run: RunSummary) -> dict[str, Any]:
    """A run as JSON data (``list --json`` and ``show --json``)."""
    data = run.model_dump(mode="json")
    data["duration_seconds"] = run.duration_seconds
    return data


def _short(value: float | None) -> str:
    return "" if value is None else f"{value:.4g}"


def list_runs(
    repo: SyncExperimentRepository,
    experiment: str | None,
    status: str | None,
    limit: int,
    order_by: str | None,
    as_json: bool,
    group: str | None = None,
    study: str | None = None,
    where: list[str] | None = None,
    since: datetime | None = None,
    offset: int = 0,
    wide: bool = False,
) -> None:
    filters: dict[str, Any] = {
        "experiment": experiment,
        "status": status,
        "group": group,
        "study": study,
        "where": where or (),
        "since": since,
    }
    runs = repo.list_runs(order_by=order_by, limit=limit, offset=offset, **filters)
    if as_json:
        print_json([run_data(run) for run in runs])
        return
    if not runs:
        console.print(f"no runs in {repo.location}" + (f" for {experiment}" if experiment else ""))
        return
    total = repo.count_runs(**filters)
    caption = f"runs {offset + 1}-{offset + len(runs)} of {total}"
    if offset + len(runs) < total:
        caption += f" (--offset {offset + len(runs)} for more)"
    columns = [
        Column("run_id", whole=True),
        Column("experiment", whole=True),
        Column("status"),
        Column("created", drop=4),
        Column("total_profit", justify="right", drop=3),
        Column("sharpe", justify="right", drop=1),
        Column("agent", drop=5),
        Column("verdict", drop=2),
    ]
    rows: list[list[Cell]] = [
        [
            run.run_id,
            run.experiment,
            status_text(run.status),
            run.created_at.strftime("%Y-%m-%d %H:%M"),
            _short(run.final_metrics.get("total_profit")),
            _short(run.final_metrics.get("sharpe_ratio")),
            str(run.config.get("agent_type", "")),
            verdict_label(run.config, run.params),
        ]
        for run in runs
    ]
    print_table(
        console, columns, rows, title=f"runs in {repo.location}", caption=caption, wide=wide
    )


def show(repo: SyncExperimentRepository, run_id: str, as_json: bool) -> None:
    detail: RunDetail = repo.get_run(run_id)
    if as_json:
        print_json(run_data(detail))
        return
    console.print(f"[bold]{detail.run_id}[/] in {detail.experiment}: {detail.status.value}")
    if detail.error:
        console.print(f"[red]error:[/] {detail.error}")
    ended = detail.ended_at.isoformat(timespec="seconds") if detail.ended_at else "-"
    duration = f"{detail.duration:.1f} s" if detail.duration is not None else "-"
    console.print(
        f"created {detail.created_at.isoformat(timespec='seconds')}, ended {ended}, {duration}"
    )
    for title, values in (("config", detail.config), ("final metrics", detail.final_metrics)):
        table = Table(title=title)
        table.add_column("name")
        table.add_column("value", justify="right")
        for key, value in values.items():
            # A config value as given (0.9999 is not 1); a metric to four digits.
            shown = (
                _short(value)
                if isinstance(value, float) and values is detail.final_metrics
                else str(value)
            )
            table.add_row(key, shown)
        console.print(table)
    console.print("metrics: " + (", ".join(detail.metrics) or "none"))
    for what, value in environment_rows(detail.environment):
        console.print(f"{what}: {value}", highlight=False)
    for name, uri in detail.artifacts.items():
        console.print(f"artifact [bold]{name}[/]: {uri}")
    if detail.config.get("kind") == GROUP_KIND:
        _members(repo, detail)
    elif detail.config.get("group_id"):
        console.print(
            f"part of walk-forward group {detail.config['group_id']} "
            f"(fold {detail.config.get('fold')}, seed {detail.config.get('seed')})"
        )
    verdict = detail.params.get("verdict")
    if verdict:
        style = LABEL_STYLE.get(str(detail.params.get("verdict_label")), "")
        console.print(Text("verdict: ", style="bold") + Text(str(verdict), style=style))


def _members(repo: SyncExperimentRepository, group: RunDetail) -> None:
    members = repo.list_runs(experiment=group.experiment, group=group.run_id, order_by="created_at")
    table = Table(title=f"the group's {len(members)} trainings")
    for column in ("fold", "seed", "run_id", "status", "sharpe", "excess", "psr", "verdict"):
        table.add_column(column)
    for run in members:
        final = run.final_metrics
        table.add_row(
            str(run.config.get("fold", "")),
            str(run.config.get("seed", "")),
            run.run_id,
            status_text(run.status),
            _short(final.get("sharpe_ratio")),
            _short(final.get("excess_sharpe")),
            _short(final.get("psr")),
            str(run.params.get("verdict_label", "")),
        )
    console.print(table)


def compare(
    repo: SyncExperimentRepository, run_ids: list[str], metrics: list[str] | None, as_json: bool
) -> None:
    result = repo.compare_runs(run_ids, metrics or None)
    if as_json:
        print_json({"table": result.table, "best": result.best, "config_diff": result.config_diff})
        return
    table = Table(title="final metrics (best in green)")
    table.add_column("metric")
    for run_id in result.run_ids:
        table.add_column(run_id, justify="right", no_wrap=True)  # ids whole
    for name in result.metrics:
        cells = []
        for run_id in result.run_ids:
            text = _short(result.table[run_id][name])
            cells.append(f"[green]{text}[/]" if result.best.get(name) == run_id else text)
        table.add_row(name, *cells)
    console.print(table)
    if result.config_diff:
        diff = Table(title="config that differs")
        diff.add_column("key")
        for run_id in result.run_ids:
            diff.add_column(run_id, no_wrap=True)
        for key, values in result.config_diff.items():
            diff.add_row(key, *exact_values([values[r] for r in result.run_ids]))
        console.print(diff)
    else:
        console.print("the runs have the same config")


def best(
    repo: SyncExperimentRepository, experiment: str, metric: str, mode: str, as_json: bool
) -> bool:
    run = repo.best_run(experiment, metric, mode=mode)  # type: ignore[arg-type]
    if as_json:
        print_json(None if run is None else run_data(run))
        return run is not None
    if run is None:
        console.print(f"no completed run of {experiment} has the final metric {metric!r}")
        return False
    console.print(
        f"best {metric} ({mode}) in {experiment}: [bold]{run.run_id}[/] = "
        f"{run.final_metrics[metric]:.6g}"
    )
    return True


def reindex(repo: SyncExperimentRepository, as_json: bool) -> None:
    report = repo.reindex()
    total = repo.count_runs()
    if as_json:
        print_json({**asdict(report), "runs": total, "catalogue": repo.catalogue_location})
        return
    console.print(
        f"run catalogue at {repo.catalogue_location} rebuilt from {repo.location}: {report}; "
        f"{total} runs"
    )


def export(settings: Settings, to: str, experiment: str | None, as_json: bool) -> bool:
    """Copy the Aim repository's finished runs into MLflow; True when none failed."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    from agentic_trading.tracking.backends import backend_for, create_run_reader
    from agentic_trading.tracking.backends.mlflow.export import export_to_mlflow

    if to != "mlflow":
        fail(f"--to {to!r} is not a backend runs can be exported to: use --to mlflow")
    if backend_for(settings).name == to:
        fail(
            f"export copies runs out of another backend into {to}: run it with "
            "ML_TRACKING_BACKEND=aim, ML_STORAGE_PATH at the repository and MLFLOW_TRACKING_URI "
            "at the target"
        )
    source = create_run_reader(settings)
    target = settings.model_copy(update={"ml_tracking_backend": "mlflow"})
    total = len(source.run_ids())
    columns = (
        TextColumn("exporting"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.description}"),
    )
    with Progress(*columns, console=errors, disable=as_json or total == 0) as progress:
        task = progress.add_task("", total=total)
        report = export_to_mlflow(
            source,
            target,
            experiment,
            lambda run_id: progress.update(task, advance=1, description=run_id),
        )
    if as_json:
        print_json({**report.as_data(), "from": source.location, "to": target.tracking_location()})
        return not report.failed
    console.print(
        f"{len(report.copied)} runs ({report.points} points) copied from {source.location} to "
        f"{target.tracking_location()}; {len(report.present)} already there, "
        f"{len(report.running)} still running (left for a later export)"
    )
    for key, uri in report.artifacts_left.items():
        errors.print(f"[yellow]not copied:[/] artifact {key} at {uri} (not a local file)")
    for run_id, why in report.failed.items():
        errors.print(f"[red]failed:[/] run {run_id}: {why}")
    return not report.failed


def print_rerun(report: Any) -> None:
    """A re-run's verdict: identical, or a table of what differs."""
    if report.identical:
        console.print(
            f"[green]identical[/]: every final metric of run {report.run_id} and of its re-run "
            f"{report.rerun_id} is equal bit for bit"
        )
    else:
        console.print(
            f"[yellow]different[/]: run {report.run_id} and its re-run {report.rerun_id} "
            f"({report.status})"
        )
    if report.metrics:
        table = Table(title="final metrics that differ")
        for column in ("metric", "original", "re-run"):
            table.add_column(column)
        for name, (a, b) in report.metrics.items():
            table.add_row(name, repr(a), repr(b))
        console.print(table)
    if report.environment:
        table = Table(title="what changed since the original run")
        for column in ("item", "original", "re-run"):
            table.add_column(column)
        for name, (a, b) in report.environment.items():
            table.add_row(name, str(a), str(b))
        console.print(table)


app.command("gc")(gc.gc_command)
