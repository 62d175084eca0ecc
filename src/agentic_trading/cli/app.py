"""The ``agentic-trading`` command: train, watch and compare trading agents.

Each command group lives in its own module (its options, its help, its work); this module
only composes them.
"""

from __future__ import annotations

import typer

from agentic_trading.cli import (
    dashboard,
    demo,
    doctor,
    experiments,
    models,
    monitor,
    pbt,
    study,
    tracking_ui,
    train,
    watch,
)

app = typer.Typer(
    rich_markup_mode=None,  # help texts verbatim: [a-z0-9_-] is not markup
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

app.command("demo")(demo.demo_command)
app.command("train")(train.train_command)
app.add_typer(experiments.app, name="experiments")
app.add_typer(models.app, name="models")
app.add_typer(study.app, name="study")
app.add_typer(pbt.app, name="pbt")
app.command("monitor")(monitor.monitor_command)
app.command("doctor")(doctor.doctor_command)
app.command("watch")(watch.watch_command)
app.command("dashboard")(dashboard.dashboard_command)
app.command("tracking-ui")(tracking_ui.tracking_ui_command)


def main() -> None:
    """Entry point of the console script."""
    app()


if __name__ == "__main__":
    main()
