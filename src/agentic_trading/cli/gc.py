"""``agentic-trading experiments gc``: delete old runs for good, keeping the best and the
registered ones."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

import typer

from agentic_trading.cli._common import (
    JsonOption,
    console,
    errors,
    expected_errors,
    parse_since,
    print_json,
    repository,
    settings_with,
)
from agentic_trading.cli.format import status_text
from agentic_trading.cli.tables import Cell, Column, print_table
from agentic_trading.status import ExperimentStatus


def gc_command(
    older_than: Annotated[
        str | None,
        typer.Option(help="Only runs that ended longer ago than this age: 30d, 12h, 2w."),
    ] = None,
    status: Annotated[
        str,
        typer.Option(
            help="Statuses to delete, comma-separated, or 'all' (every finished status; "
            "running runs never)."
        ),
    ] = "failed,crashed,cancelled",
    experiment: Annotated[str | None, typer.Option(help="Only this experiment.")] = None,
    keep_best: Annotated[
        int,
        typer.Option(min=0, help="Keep this many best completed runs of each experiment (--by)."),
    ] = 0,
    by: Annotated[
        str | None,
        typer.Option(help="The final metric that makes a run best (with --keep-best)."),
    ] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Only say what would go, and how many bytes.")
    ] = False,
    force: Annotated[
        bool, typer.Option(help="Also runs behind a registered model version.")
    ] = False,
    as_json: JsonOption = False,
) -> None:
    """Delete old runs for good: from the backend (series, artifacts; MLflow runs purged),
    the run catalogue and messaging's finished states.

    By default it deletes failed, crashed and cancelled runs of any age; runs behind a
    registered model version stay unless --force. Try --dry-run first. Interrupted, it leaves
    no run half there; run it again to finish.

    Examples:

    \b
      agentic-trading experiments gc --older-than 30d --dry-run
      agentic-trading experiments gc --status all --keep-best 5 --by sharpe_ratio
    """
    from agentic_trading.tracking.retention import collect_garbage

    with expected_errors():
        statuses = _statuses(status)
        seconds = None
        if older_than is not None:
            if older_than.strip()[-1:] not in ("m", "h", "d", "w"):
                raise ValueError(
                    f"--older-than {older_than!r} is not allowed: give an age such as 30d, 12h, 2w"
                )
            seconds = (datetime.now(UTC) - parse_since(older_than)).total_seconds()
        repo = repository()
        report = collect_garbage(
            repo,
            dry_run=dry_run,
            forget_live=None if dry_run else _forgetter(),
            older_than=seconds,
            statuses=statuses,
            experiment=experiment,
            keep_best=keep_best,
            by=by,
            force=force,
        )
    if as_json:
        print_json(report.as_data())
        return
    if report.runs:
        columns = [
            Column("run", whole=True),
            Column("experiment", whole=True),
            Column("status"),
            Column("created", drop=1),
            Column("size", justify="right"),
        ]
        rows: list[list[Cell]] = [
            [
                run["run_id"],
                run["experiment"],
                status_text(ExperimentStatus(run["status"])),
                run["created_at"][:16].replace("T", " "),
                human_bytes(run["bytes"]),
            ]
            for run in report.runs
        ]
        print_table(console, columns, rows, title="would delete" if dry_run else "deleted")
    for run_id, why in sorted(report.kept.items()):
        console.print(f"kept {run_id}: {why}", highlight=False)
    verb = "would free" if dry_run else "freed"
    console.print(
        f"{len(report.runs)} run(s) {'to delete' if dry_run else 'deleted'}, {verb} "
        f"{human_bytes(report.bytes)}; {len(report.kept)} kept"
        + (
            f"; {human_bytes(report.finished_earlier)} of an earlier, interrupted gc"
            if report.finished_earlier
            else ""
        ),
        highlight=False,
    )


def _statuses(text: str) -> list[ExperimentStatus] | None:
    words = [w.strip() for w in text.split(",") if w.strip()]
    if words == ["all"]:
        return None
    statuses = [ExperimentStatus.parse(word) for word in words]
    live = [s.value for s in statuses if s in (ExperimentStatus.RUNNING, ExperimentStatus.PENDING)]
    if live or not statuses:
        raise ValueError(
            f"--status {text!r} is not allowed: give finished statuses (completed, failed, "
            "cancelled, crashed, pruned), comma-separated, or all"
        )
    return statuses


def _forgetter() -> Any:
    """Removes a deleted run's finished state from messaging (Redis; the memory broker keeps
    nothing across processes)."""
    settings = settings_with()
    if settings.message_broker_type != "redis":
        return None
    from agentic_trading.messaging import SyncTrainingChannel

    channel = SyncTrainingChannel(settings=settings)

    def forget(run: Any) -> None:
        live_id = run.config.get("experiment_id")
        if not isinstance(live_id, str):
            return
        try:
            channel.delete_experiment(live_id)
        except Exception as exc:  # the run is gone; its live state expires on its own (TTL)
            errors.print(f"messaging: the live state of {live_id} stays until it expires: {exc}")

    return forget


def human_bytes(count: int) -> str:
    """``1.2 MB``, ``340 kB``, ``12 B``."""
    size = float(count)
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if size < 1000 or unit == "TB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1000
    return f"{count} B"
