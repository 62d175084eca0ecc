"""``agentic-trading monitor``: the live table of a namespace's experiments."""

from __future__ import annotations

import asyncio
import time
from typing import Annotated

import typer
from rich.live import Live

from agentic_trading.cli._common import (
    BrokerOption,
    NamespaceOption,
    console,
    errors,
    expected_errors,
    fail,
    print_json,
    settings_with,
)
from agentic_trading.cli.format import PLAIN_COLUMNS, experiment_rows, experiments_table
from agentic_trading.cli.tables import Column, print_table
from agentic_trading.config import Settings
from agentic_trading.messaging import EventType, ExperimentState, TrainingChannel
from agentic_trading.status import ExperimentStatus


def monitor_command(
    namespace: NamespaceOption = None,
    once: Annotated[
        bool, typer.Option("--once", help="Print the current states and exit.")
    ] = False,
    json_output: Annotated[
        bool, typer.Option("--json", help="With --once: print a JSON list for scripts.")
    ] = False,
    status: Annotated[
        str | None,
        typer.Option(
            help="Only this status: pending, running, completed, failed, cancelled, crashed, pruned."
        ),
    ] = None,
    refresh: Annotated[float, typer.Option(min=0.1, help="Seconds between screen updates.")] = 0.5,
    broker: BrokerOption = None,
) -> None:
    """Watch the experiments of a namespace live: status, progress, speed, ETA, last message.

    Across processes and machines when MESSAGE_BROKER_TYPE=redis. Examples:

    \b
      agentic-trading monitor                  # live table, Ctrl-C to leave
      agentic-trading monitor --once --json    # current states for a script
    """
    import asyncio

    if json_output and not once:
        fail("--json goes with --once (the live view is for people)", 2)
    with expected_errors():
        settings = settings_with(message_broker_type=broker)
        wanted = None if status is None else ExperimentStatus.parse(status)
        if once:
            print_once(settings, namespace, wanted, json_output)
            return
        try:
            asyncio.run(follow(settings, namespace, wanted, refresh))
        except KeyboardInterrupt:
            pass


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
    elif not console.is_terminal:
        right = {"%", "steps", "speed", "ETA", "reward"}
        columns = [
            Column(c, justify="right" if c in right else "left", whole=c == "experiment")
            for c in PLAIN_COLUMNS
        ]
        print_table(console, columns, experiment_rows(states))
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
