"""``agentic-trading experiments``: list, show, compare, find the best, delete tracked runs."""

from __future__ import annotations

from dataclasses import asdict
from datetime import datetime
from typing import Any

from rich.table import Table
from rich.text import Text

from agentic_trading.cli._common import console, errors, fail, print_json
from agentic_trading.cli.format import LABEL_STYLE, status_text
from agentic_trading.common.formatting import verdict_label
from agentic_trading.config import Settings
from agentic_trading.evaluation.verdict import GROUP_KIND
from agentic_trading.tracking import RunDetail, RunSummary, SyncExperimentRepository


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
    table = Table(title=f"runs in {repo.location}", caption=caption)
    columns = ("run_id", "experiment", "status", "created", "total_profit", "sharpe", "agent")
    for column in (*columns, "verdict"):
        table.add_column(column)
    for run in runs:
        table.add_row(
            run.run_id,
            run.experiment,
            status_text(run.status),
            run.created_at.strftime("%Y-%m-%d %H:%M"),
            _short(run.final_metrics.get("total_profit")),
            _short(run.final_metrics.get("sharpe_ratio")),
            str(run.config.get("agent_type", "")),
            verdict_label(run.config, run.params),
        )
    console.print(table)


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
            table.add_row(key, _short(value) if isinstance(value, float) else str(value))
        console.print(table)
    console.print("metrics: " + (", ".join(detail.metrics) or "none"))
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
        table.add_column(run_id[:8], justify="right")
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
            diff.add_column(run_id[:8])
        for key, values in result.config_diff.items():
            diff.add_row(key, *(str(values[r]) for r in result.run_ids))
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

    from agentic_trading.tracking.backends import create_run_reader
    from agentic_trading.tracking.backends.mlflow.export import export_to_mlflow

    if to != "mlflow":
        fail(f"--to {to!r} is not a backend runs can be exported to: use --to mlflow")
    if settings.ml_tracking_backend != "aim":
        fail(
            "export copies runs out of an Aim repository: run it with ML_TRACKING_BACKEND=aim, "
            "ML_STORAGE_PATH at the repository and MLFLOW_TRACKING_URI at the target"
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
