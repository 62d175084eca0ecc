"""``agentic-trading doctor``: the settings in force and whether the services answer."""

from __future__ import annotations

import asyncio
from typing import Annotated, Any

import typer
from rich.table import Table

from agentic_trading.cli._common import (
    console,
    expected_errors,
    print_json,
    settings_with,
)
from agentic_trading.config import Settings
from agentic_trading.messaging.brokers import BrokerError


def doctor_command(
    json_output: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
) -> None:
    """Show the settings in force (secrets masked), whether Redis answers, and where the Aim
    repository is and how many runs it holds."""
    with expected_errors():
        healthy = report(settings_with(), json_output)
    if not healthy:
        raise typer.Exit(1)


async def _check_redis(settings: Settings) -> dict[str, Any]:
    from agentic_trading.messaging.brokers.redis import RedisBroker

    broker = RedisBroker(settings)
    try:
        await broker.ping()
        return {"ok": True, "location": broker.location, "detail": "answers PING"}
    except BrokerError as exc:
        return {"ok": False, "location": broker.location, "detail": str(exc)}
    finally:
        await broker.close()


def _check_tracking(settings: Settings) -> dict[str, Any]:
    from agentic_trading.tracking import TrackingError, get_sync_experiment_repository
    from agentic_trading.tracking.backends import create_run_store

    repo = get_sync_experiment_repository(settings)
    out: dict[str, Any] = {
        "backend": settings.ml_tracking_backend,
        "location": repo.location,
        "catalogue": repo.catalogue_location,
    }
    try:
        create_run_store(settings).check_writable()
        counts: dict[str, int] = {}
        for experiment in repo.list_experiments():
            for status, n in experiment.status_counts.items():
                counts[status] = counts.get(status, 0) + n
    except (TrackingError, OSError, ValueError) as exc:
        return {**out, "ok": False, "runs": None, "detail": str(exc)}
    total = sum(counts.values())
    detail = f"{total} runs" + (f" ({counts})" if counts else "")
    detail += f"; run catalogue {repo.catalogue_location or 'none (ML_CATALOG_URL=none)'}"
    return {**out, "ok": True, "runs": total, "status_counts": counts, "detail": detail}


def checks(settings: Settings) -> dict[str, Any]:
    """Everything ``doctor`` reports, as data."""
    redis = asyncio.run(_check_redis(settings))
    redis["used"] = settings.message_broker_type == "redis"
    return {
        "settings": settings.public_dict(),
        "redis": redis,
        "tracking": _check_tracking(settings),
    }


def report(settings: Settings, as_json: bool) -> bool:
    """Print the report; True when everything that is used works."""
    result = checks(settings)
    redis = result["redis"]
    tracking = result["tracking"]
    healthy = (redis["ok"] or not redis["used"]) and tracking["ok"]
    if as_json:
        print_json({**result, "healthy": healthy})
        return healthy
    table = Table(title="settings in force (environment and .env)", show_lines=False)
    table.add_column("variable")
    table.add_column("value")
    for name, value in result["settings"].items():
        table.add_row(name, "" if value is None else str(value))
    console.print(table)
    mark = (
        "[green]ok[/]" if redis["ok"] else ("[red]FAILED[/]" if redis["used"] else "[yellow]no[/]")
    )
    use = "in use" if redis["used"] else "not in use: MESSAGE_BROKER_TYPE=memory"
    console.print(f"Redis ({use}) at {redis['location']}: {mark} - {redis['detail']}")
    mark = "[green]ok[/]" if tracking["ok"] else "[red]FAILED[/]"
    console.print(
        f"Tracking ({tracking['backend']}) at {tracking['location']}: {mark} - {tracking['detail']}"
    )
    return healthy
