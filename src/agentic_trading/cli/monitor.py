"""``agentic-trading monitor``: the live table of a namespace's experiments."""

from __future__ import annotations

import asyncio
import time

from rich.live import Live

from agentic_trading.cli._common import console, errors, print_json
from agentic_trading.cli.format import experiments_table
from agentic_trading.config import Settings
from agentic_trading.messaging import EventType, ExperimentState, TrainingChannel
from agentic_trading.status import ExperimentStatus


async def snapshot(
    settings: Settings, namespace: str | None, status: ExperimentStatus | None
) -> list[ExperimentState]:
    async with TrainingChannel(namespace, settings=settings, heartbeats=False) as channel:
        return await channel.list_experiments(status)


def print_once(
    settings: Settings, namespace: str | None, status: ExperimentStatus | None, as_json: bool
) -> None:
    states = asyncio.run(snapshot(settings, namespace, status))
    if as_json:
        print_json([s.model_dump(mode="json") for s in states])
    else:
        console.print(experiments_table(states, _title(settings, namespace)))


def _title(settings: Settings, namespace: str | None) -> str:
    where = "memory" if settings.message_broker_type == "memory" else settings.redis_location()
    return f"experiments in namespace '{namespace or settings.message_namespace}' ({where})"


async def follow(
    settings: Settings, namespace: str | None, status: ExperimentStatus | None, refresh: float
) -> None:
    """Keep the table current from the channel's events until interrupted."""
    if settings.message_broker_type == "memory":
        errors.print(
            "[yellow]note:[/] MESSAGE_BROKER_TYPE=memory shows only this process's experiments; "
            "set MESSAGE_BROKER_TYPE=redis to watch trainings in other processes"
        )
    states: dict[str, ExperimentState] = {}
    title = _title(settings, namespace)

    def view() -> list[ExperimentState]:
        shown = sorted(states.values(), key=lambda s: s.created_at, reverse=True)
        return [s for s in shown if status is None or s.status == status]

    async with TrainingChannel(namespace, settings=settings, heartbeats=False) as channel:
        with Live(experiments_table([], title), console=console, refresh_per_second=4) as live:
            last = 0.0
            async for event in channel.subscribe(poll_interval=min(refresh, 1.0)):
                if event.type == EventType.DELETED:
                    states.pop(event.experiment_id, None)
                elif event.state is not None:
                    known = states.get(event.experiment_id)
                    state = event.state
                    if known is not None and not state.config:
                        state.config = known.config
                    states[event.experiment_id] = state
                now = time.monotonic()
                if now - last >= refresh:
                    live.update(experiments_table(view(), title))
                    last = now
