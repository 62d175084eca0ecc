"""``agentic-trading train``: a training with a live progress bar, then agent vs buy-and-hold."""

from __future__ import annotations

import uuid
from typing import Any

from rich.progress import (
    BarColumn,
    Progress,
    ProgressColumn,
    Task,
    TaskProgressColumn,
    TextColumn,
    TimeRemainingColumn,
)
from rich.table import Table
from rich.text import Text

from agentic_trading.cli._common import console, print_json
from agentic_trading.common.formatting import metric_value
from agentic_trading.common.loop_thread import BackgroundLoop
from agentic_trading.config import Settings
from agentic_trading.messaging.channels.training import TrainingChannel
from agentic_trading.status import ExperimentStatus
from agentic_trading.training.config import TrainingConfig
from agentic_trading.training.runner import RESULT_METRICS, TrainingOutcome, train


class _Rate(ProgressColumn):
    def render(self, task: Task) -> Text:
        rate = task.fields.get("rate")
        reward = task.fields.get("reward")
        text = f"{rate:,.0f} steps/s" if rate else "- steps/s"
        if reward is not None:
            text += f"  reward {reward:+.1f}"
        return Text(text, style="cyan")


async def _follow(settings: Settings, experiment_id: str, progress: Progress, task: Any) -> None:
    """Feed the bar from messaging: the same events the dashboard and ``monitor`` read."""
    channel = TrainingChannel(settings=settings)
    try:
        async for event in channel.subscribe(experiment_id, poll_interval=0.5):
            state = event.state
            if state is None or state.experiment_id != experiment_id:
                continue
            progress.update(
                task,
                completed=state.current_step,
                total=state.total_steps or None,
                rate=state.steps_per_second,
                reward=state.latest_metrics.get("reward"),
                description=f"{state.status.value}",
            )
            if state.status.is_finished:
                return
    finally:
        await channel.close()


def run(
    settings: Settings,
    config: TrainingConfig,
    experiment_name: str | None,
    as_json: bool,
    quiet: bool = False,
) -> TrainingOutcome:
    """Train with a live bar (unless ``as_json`` or ``quiet``), then print the results."""
    name = experiment_name or f"{config.agent_type}_{config.pair}"
    experiment_id = f"{name}-{uuid.uuid4().hex[:8]}"
    show = not (as_json or quiet)
    progress = Progress(
        TextColumn("[bold]{task.description:>9}"),
        BarColumn(),
        TaskProgressColumn(),
        TextColumn("{task.completed:,.0f}/{task.total:,.0f}"),
        _Rate(),
        TimeRemainingColumn(),
        console=console,
        disable=not show,
    )
    task = progress.add_task("pending", total=config.timesteps)
    if show:
        console.print(
            f"Training {config.agent_type} on {config.pair} for {config.timesteps:,} steps: "
            f"experiment [bold]{name}[/], live id [bold]{experiment_id}[/] "
            f"(namespace {settings.message_namespace}, {settings.message_broker_type} broker)"
        )
    follower = BackgroundLoop.get().submit(_follow(settings, experiment_id, progress, task))
    try:
        with progress:
            outcome = train(config, name, experiment_id=experiment_id, settings=settings)
            try:
                follower.result(timeout=5)
            except Exception:
                follower.cancel()
    except KeyboardInterrupt:
        follower.cancel()
        console.print("[yellow]cancelled[/]: the run is recorded as cancelled")
        raise
    if as_json:
        print_json(_as_data(outcome))
    elif not quiet:
        print_outcome(outcome)
    return outcome


def _as_data(outcome: TrainingOutcome) -> dict[str, Any]:
    return {
        "experiment_id": outcome.experiment_id,
        "run_id": outcome.run_id,
        "experiment": outcome.experiment_name,
        "status": outcome.status.value,
        "agent": outcome.agent,
        "buy_and_hold": outcome.baseline,
        "model": outcome.model_uri,
        "data": outcome.data,
    }


def print_outcome(outcome: TrainingOutcome) -> None:
    """The held-out results, agent against buy-and-hold."""
    if outcome.status is not ExperimentStatus.COMPLETED:
        console.print(f"Training {outcome.status.value}: run {outcome.run_id}")
        return
    data = outcome.data
    table = Table(title="held-out bars, never seen in training")
    table.add_column("metric")
    table.add_column("agent", justify="right")
    table.add_column("buy & hold", justify="right")
    for name in RESULT_METRICS:
        ours, theirs = outcome.agent[name], outcome.baseline[name]
        better = ours < theirs if name == "max_drawdown" else ours > theirs
        style = "green" if better and name != "n_trades" else ""
        table.add_row(name, Text(metric_value(name, ours), style=style), metric_value(name, theirs))
    console.print(table)
    console.print(
        f"held out: {data.get('evaluation_bars')} bars from {data.get('evaluation_from')} "
        f"to {data.get('evaluation_to')}; trained on {data.get('training_bars')} bars before them"
    )
    console.print(f"run [bold]{outcome.run_id}[/] in experiment {outcome.experiment_name}")
    console.print(f"model: {outcome.model_uri}")
