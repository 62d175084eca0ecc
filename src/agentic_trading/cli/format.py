"""Human formatting of durations, rates and states for the terminal."""

from __future__ import annotations

from rich.progress_bar import ProgressBar
from rich.table import Table
from rich.text import Text

from agentic_trading.common.formatting import duration, rate
from agentic_trading.messaging.messages import ExperimentState
from agentic_trading.status import ExperimentStatus

STATUS_STYLE = {
    ExperimentStatus.PENDING: "dim",
    ExperimentStatus.RUNNING: "bold cyan",
    ExperimentStatus.COMPLETED: "bold green",
    ExperimentStatus.FAILED: "bold red",
    ExperimentStatus.CANCELLED: "yellow",
    ExperimentStatus.CRASHED: "bold magenta",
    ExperimentStatus.PRUNED: "dim yellow",
}


#: How a verdict's label is shown.
LABEL_STYLE = {"skill": "bold green", "trails": "bold red", "luck": "bold yellow"}


def status_text(status: ExperimentStatus) -> Text:
    return Text(status.value, style=STATUS_STYLE[status])


def experiments_table(states: list[ExperimentState], title: str) -> Table:
    """The live table ``monitor`` shows."""
    table = Table(title=title, expand=True)
    # Ids and statuses whole (they are copied into the next command); the progress bar and
    # the message take what is left.
    longest = max((len(s.experiment_id) for s in states), default=10)
    table.add_column("experiment", no_wrap=True, min_width=longest)
    table.add_column("status", no_wrap=True, min_width=9)
    table.add_column("progress", ratio=2)
    table.add_column("%", justify="right", no_wrap=True)
    table.add_column("steps", justify="right", no_wrap=True)
    table.add_column("speed", justify="right", no_wrap=True)
    table.add_column("ETA", justify="right", no_wrap=True)
    table.add_column("reward", justify="right", no_wrap=True)
    table.add_column("message", ratio=3, overflow="ellipsis", no_wrap=True)
    for state, row in zip(states, experiment_rows(states), strict=True):
        table.add_row(
            row[0],
            status_text(state.status),
            ProgressBar(total=100, completed=state.progress),
            *row[2:],
        )
    if not states:
        table.add_row("(no experiments yet)", "", "", "", "", "", "", "", "")
    return table


#: ``monitor --once`` in a pipe: the live table's columns as plain text.
PLAIN_COLUMNS = ("experiment", "status", "%", "steps", "speed", "ETA", "reward", "message")


def experiment_rows(states: list[ExperimentState]) -> list[list[str]]:
    """The live table's values as plain text (``PLAIN_COLUMNS``)."""
    rows = []
    for state in states:
        reward = state.latest_metrics.get("reward")
        steps = f"{state.current_step:,}" + (f"/{state.total_steps:,}" if state.total_steps else "")
        rows.append(
            [
                state.experiment_id,
                state.status.value,
                f"{state.progress:.1f}",
                steps,
                rate(state.steps_per_second),
                duration(state.eta_seconds),
                "-" if reward is None else f"{reward:,.3f}",
                state.message or "",
            ]
        )
    return rows
