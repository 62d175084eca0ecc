"""The ``agentic-trading`` command: train, watch and compare trading agents."""

from __future__ import annotations

from typing import Annotated

import typer

from agentic_trading.cli._common import expected_errors, fail, settings_with
from agentic_trading.status import ExperimentStatus

app = typer.Typer(
    name="agentic-trading",
    help=(
        "Experiment data management for trading agents.\n\n"
        "Live state travels through messaging (MESSAGE_BROKER_TYPE=memory or redis); permanent "
        "records go to tracking (Aim, at ML_STORAGE_PATH). Settings come from the environment "
        "and a .env file; `agentic-trading doctor` shows them."
    ),
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)

NamespaceOption = Annotated[
    str | None,
    typer.Option(
        "--namespace", "-n", help="Messaging namespace [default: MESSAGE_NAMESPACE or 'default']."
    ),
]
BrokerOption = Annotated[
    str | None,
    typer.Option("--broker", help="'memory' or 'redis' [default: MESSAGE_BROKER_TYPE]."),
]


def _status(value: str | None) -> ExperimentStatus | None:
    return None if value is None else ExperimentStatus.parse(value)


@app.command()
def demo(
    steps: Annotated[int, typer.Option(min=10, help="Simulated training steps.")] = 20_000,
    seconds: Annotated[float, typer.Option(min=1, help="How long the simulation runs.")] = 8.0,
    broker: BrokerOption = None,
) -> None:
    """Walk through live messaging: a simulated training, followed through a subscription.

    Uses the embedded defaults (in-memory broker), so it needs no server.
    """
    from agentic_trading.cli import demo as demo_command

    with expected_errors():
        demo_command.run(settings_with(message_broker_type=broker), steps, seconds)


@app.command()
def monitor(
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
            help="Only this status: pending, running, completed, failed, cancelled, crashed."
        ),
    ] = None,
    refresh: Annotated[float, typer.Option(min=0.1, help="Seconds between screen updates.")] = 0.5,
    broker: BrokerOption = None,
) -> None:
    """Watch the experiments of a namespace live: status, progress, speed, ETA, last message.

    Across processes and machines when MESSAGE_BROKER_TYPE=redis. Examples:

        agentic-trading monitor                      # live table, Ctrl-C to leave

        agentic-trading monitor --once --json        # current states for a script
    """
    import asyncio

    from agentic_trading.cli import monitor as monitor_command

    if json_output and not once:
        fail("--json goes with --once (the live view is for people)", 2)
    with expected_errors():
        settings = settings_with(message_broker_type=broker)
        wanted = _status(status)
        if once:
            monitor_command.print_once(settings, namespace, wanted, json_output)
            return
        try:
            asyncio.run(monitor_command.follow(settings, namespace, wanted, refresh))
        except KeyboardInterrupt:
            pass


@app.command()
def doctor(
    json_output: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
) -> None:
    """Show the settings in force (secrets masked), whether Redis answers, and where the Aim
    repository is and how many runs it holds."""
    from agentic_trading.cli import doctor as doctor_command

    with expected_errors():
        healthy = doctor_command.report(settings_with(), json_output)
    if not healthy:
        raise typer.Exit(1)


@app.command("tracking-ui")
def tracking_ui(
    host: Annotated[
        str, typer.Option(help="Address to bind; anything but loopback exposes the UI.")
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=1, max=65535, help="Port of the UI.")] = 43800,
) -> None:
    """Open Aim's own UI on the tracking repository (ML_STORAGE_PATH).

    Every run the tracker wrote is there: configs as hparams, metric curves, status and final
    metrics as run attributes (AimQL: run.status == "completed"). Ctrl-C stops it.
    """
    from agentic_trading.cli import tracking_ui as tracking_ui_command

    with expected_errors():
        tracking_ui_command.run(settings_with(), host, port)


def main() -> None:
    """Entry point of the console script."""
    app()


if __name__ == "__main__":
    main()
