"""``agentic-trading doctor``: the settings in force and whether the services answer."""

from __future__ import annotations

import asyncio
from typing import Any

from rich.table import Table

from agentic_trading.cli._common import console, print_json
from agentic_trading.config import Settings
from agentic_trading.messaging.brokers import BrokerError


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


def checks(settings: Settings) -> dict[str, Any]:
    """Everything ``doctor`` reports, as data."""
    redis = asyncio.run(_check_redis(settings))
    redis["used"] = settings.message_broker_type == "redis"
    return {"settings": settings.public_dict(), "redis": redis}


def report(settings: Settings, as_json: bool) -> bool:
    """Print the report; True when everything that is used works."""
    result = checks(settings)
    redis = result["redis"]
    healthy = redis["ok"] or not redis["used"]
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
    return healthy
