"""``agentic-trading demo``: a walkthrough of live messaging with a simulated training.

A background thread plays a training (the way Stable-Baselines3 would, through the synchronous
channel) while the foreground follows it through a subscription: the same path the dashboard and
``monitor`` use.
"""

from __future__ import annotations

import asyncio
import math
import random
import threading
import time
import uuid
from typing import Annotated

import typer
from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

from agentic_trading.cli._common import (
    BrokerOption,
    console,
    expected_errors,
    settings_with,
    start_writer,
)
from agentic_trading.config import Settings
from agentic_trading.messaging import SyncTrainingChannel, TrainingChannel


def demo_command(
    timesteps: Annotated[
        int, typer.Option(min=100, help="Training steps (about a minute on 2 cores).")
    ] = 50_000,
    simulate: Annotated[
        bool,
        typer.Option(
            "--simulate", help="Instead: a simulated training followed through messaging."
        ),
    ] = False,
    seconds: Annotated[
        float, typer.Option(min=1, help="With --simulate: how long the simulation runs.")
    ] = 8.0,
    broker: BrokerOption = None,
) -> None:
    """The main job on the embedded defaults: train PPO on EUR/USD live, compare with buy-and-hold.

    Uses the in-memory broker and the local Aim repository (ML_STORAGE_PATH), so it needs no
    server. Afterwards it prints the commands that open the results.
    """
    with expected_errors():
        settings = settings_with(message_broker_type=broker)
        if simulate:
            run(settings, timesteps, seconds)
            return
        start_writer(settings)  # its imports overlap torch's, below
        from agentic_trading.cli import train
        from agentic_trading.training.config import TrainingConfig

        try:
            outcome = train.run_one(settings, TrainingConfig(timesteps=timesteps), None, False)
        except KeyboardInterrupt:
            raise typer.Exit(130) from None
        from agentic_trading.cli._common import console
        from agentic_trading.tracking.backends import backend_for

        ui = f"{backend_for(settings).title}'s UI"
        console.print(
            "\nNext:\n"
            f"  agentic-trading experiments show {outcome.run_id}   # this run in full\n"
            "  agentic-trading experiments list               # every run\n"
            "  agentic-trading dashboard                      # http://127.0.0.1:8050\n"
            f"  agentic-trading tracking-ui                    # {ui} at http://127.0.0.1:43800\n"
            "  agentic-trading train --agent a2c --timesteps 20000   # another agent to compare"
        )


def _simulate(channel: SyncTrainingChannel, experiment_id: str, steps: int, seconds: float) -> None:
    config = {"agent_type": "PPO", "pair": "EUR_USD", "learning_rate": 3e-4, "timesteps": steps}
    channel.create_experiment(experiment_id, config)
    channel.publish_status(experiment_id, "running", "PPO training started (simulated)")
    rng = random.Random(7)
    reward = 0.0
    pause = seconds / steps
    for step in range(1, steps + 1):
        time.sleep(pause)
        channel.publish_progress(experiment_id, step, steps)
        if step % max(1, steps // 50) == 0:
            reward = 1000 * (1 - math.exp(-3 * step / steps)) + rng.gauss(0, 25)
            channel.publish_metrics(experiment_id, step, {"reward": reward, "loss": 1 / (1 + step)})
    channel.publish_status(experiment_id, "completed", "Training finished successfully")
    channel.flush()


async def _watch(settings: Settings, experiment_id: str, steps: int) -> None:
    async with TrainingChannel(settings=settings, heartbeats=False) as channel:
        columns = (
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            TextColumn("{task.completed:,.0f}/{task.total:,.0f} steps"),
            TextColumn("{task.fields[speed]}"),
            TimeRemainingColumn(),
            TextColumn("reward {task.fields[reward]}"),
        )
        with Progress(*columns, console=console) as progress:
            task = progress.add_task(experiment_id, total=steps, speed="", reward="-")
            async for event in channel.subscribe(experiment_id):
                state = event.state
                if state is None:
                    continue
                reward = state.latest_metrics.get("reward")
                progress.update(
                    task,
                    completed=state.current_step,
                    speed=f"{state.steps_per_second:,.0f} steps/s"
                    if state.steps_per_second
                    else "",
                    reward="-" if reward is None else f"{reward:,.1f}",
                )
                if state.status.is_finished:
                    break
        final = await channel.get_experiment(experiment_id)
    if final is not None:
        console.print(
            f"[bold]{experiment_id}[/]: {final.status.value} at step {final.current_step:,} "
            f"- {final.message}; latest metrics {final.latest_metrics}"
        )


def run(settings: Settings, steps: int, seconds: float) -> None:
    experiment_id = f"demo-{uuid.uuid4().hex[:8]}"
    console.rule("Messaging walkthrough")
    console.print(
        f"broker: [bold]{settings.message_broker_type}[/], namespace "
        f"[bold]{settings.message_namespace}[/]. A simulated PPO training publishes progress on "
        "every step from a background thread; this terminal follows it through a subscription."
    )
    channel = SyncTrainingChannel(settings=settings)
    trainer = threading.Thread(
        target=_simulate, args=(channel, experiment_id, steps, seconds), daemon=True
    )
    trainer.start()
    asyncio.run(_watch(settings, experiment_id, steps))
    trainer.join()
    channel.close()
    console.print(
        "Watch live trainings from another terminal with "
        "[bold]MESSAGE_BROKER_TYPE=redis agentic-trading monitor[/]."
    )
