"""``agentic-trading train``: a training with a live progress bar, then agent vs buy-and-hold."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import typer
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

from agentic_trading.cli._common import (
    EXIT_FAILURE,
    EXIT_INCOMPLETE_RECORD,
    BrokerOption,
    NamespaceOption,
    console,
    errors,
    expected_errors,
    fail,
    print_json,
    settings_with,
    start_writer,
)
from agentic_trading.cli.format import LABEL_STYLE
from agentic_trading.cli.tables import Cell, Column, print_table
from agentic_trading.common import signals
from agentic_trading.common.formatting import metric_value
from agentic_trading.common.loop_thread import BackgroundLoop
from agentic_trading.config import Settings
from agentic_trading.evaluation.verdict import GroupVerdict, RunVerdict
from agentic_trading.messaging.channels.training import TrainingChannel
from agentic_trading.status import ExperimentStatus
from agentic_trading.training.config import TrainingConfig

if TYPE_CHECKING:  # both import torch: a command imports them once its writer has started
    from agentic_trading.training.runner import TrainingOutcome
    from agentic_trading.training.walk_forward import GroupOutcome


def train_command(
    agent: Annotated[
        str,
        typer.Option(
            help="ppo, a2c or dqn (short, flat or long), sac or td3 (a position in [-1, 1])."
        ),
    ] = "ppo",
    pair: Annotated[str, typer.Option(help="Currency pair of the bundled data.")] = "EUR_USD",
    timesteps: Annotated[int, typer.Option(help="Environment steps to train for.")] = 50_000,
    experiment: Annotated[
        str | None,
        typer.Option(help="Tracking experiment name (default: AGENT_PAIR, e.g. PPO_EUR_USD)."),
    ] = None,
    folds: Annotated[
        int,
        typer.Option(
            help="Walk-forward folds: train on every bar before each test block (anchored, "
            "expanding), judge the folds together.",
            rich_help_panel="Evaluation",
        ),
    ] = 1,
    seeds: Annotated[
        int,
        typer.Option(
            help="Train each fold with this many seeds (--seed, --seed+1, ...).",
            rich_help_panel="Evaluation",
        ),
    ] = 1,
    validation_fraction: Annotated[
        float,
        typer.Option(
            help="Share of the bars before a test block that validate (studies choose on them).",
            rich_help_panel="Evaluation",
        ),
    ] = 0.2,
    test_fraction: Annotated[
        float | None,
        typer.Option(
            help="Share of all bars held out for testing: default 0.2, or 0.5 with --folds.",
            rich_help_panel="Evaluation",
        ),
    ] = None,
    fee_pips: Annotated[
        float,
        typer.Option(help="Fee per unit of position traded, in pips.", rich_help_panel="Costs"),
    ] = 3.0,
    spread_pips: Annotated[
        float,
        typer.Option(help="Spread paid per unit traded, in pips.", rich_help_panel="Costs"),
    ] = 0.0,
    learning_rate: Annotated[
        float, typer.Option(help="Optimizer learning rate.", rich_help_panel="Agent")
    ] = 3e-4,
    n_steps: Annotated[
        int, typer.Option(help="PPO/A2C steps per update.", rich_help_panel="Agent")
    ] = 512,
    batch_size: Annotated[
        int, typer.Option(help="PPO/DQN/SAC/TD3 minibatch size.", rich_help_panel="Agent")
    ] = 64,
    gamma: Annotated[float, typer.Option(help="Discount factor.", rich_help_panel="Agent")] = 0.99,
    gae_lambda: Annotated[
        float, typer.Option(help="PPO/A2C GAE lambda.", rich_help_panel="Agent")
    ] = 0.95,
    ent_coef: Annotated[
        float,
        typer.Option(
            help="PPO/A2C entropy bonus; SAC's (0: SAC tunes it itself).", rich_help_panel="Agent"
        ),
    ] = 0.0,
    clip_range: Annotated[float, typer.Option(help="PPO clipping.", rich_help_panel="Agent")] = 0.2,
    n_epochs: Annotated[
        int, typer.Option(help="PPO epochs per update.", rich_help_panel="Agent")
    ] = 10,
    net_arch: Annotated[
        str,
        typer.Option(
            help="Network size: tiny (2x32), small (2x64), medium (2x256).", rich_help_panel="Agent"
        ),
    ] = "small",
    activation: Annotated[
        str, typer.Option(help="tanh or relu.", rich_help_panel="Agent")
    ] = "tanh",
    seed: Annotated[int, typer.Option(help="Random seed; the same seed repeats the run.")] = 1,
    window_size: Annotated[
        int, typer.Option(help="Past returns the agent sees per decision (returns features).")
    ] = 10,
    features: Annotated[
        str,
        typer.Option(
            help="What the agent sees: returns (the last --window-size returns), standard "
            "(returns over 1, 4, 24 and 120 bars in units of volatility, the volatility, MACD, "
            "RSI, hour and weekday, bars held), or blocks by comma: returns, horizons, "
            "volatility, macd, rsi, time, held."
        ),
    ] = "returns",
    reward: Annotated[
        str,
        typer.Option(
            help="What the agent is paid each bar, costs included: net (the net return), dsr "
            "(the differential Sharpe ratio) or drawdown (the net return minus the rise in "
            "drawdown)."
        ),
    ] = "net",
    drawdown_penalty: Annotated[
        float, typer.Option(help="With --reward drawdown: the weight of a drawdown's rise.")
    ] = 1.0,
    data: Annotated[
        str | None, typer.Option(help="CSV of your own bars: datetime, open, high, low, close.")
    ] = None,
    json_output: Annotated[
        bool, typer.Option("--json", help="No bar; print the outcome as JSON.")
    ] = False,
    namespace: NamespaceOption = None,
    broker: BrokerOption = None,
) -> None:
    """Train an agent on FX bars, live and tracked, and judge it against buy-and-hold.

    The agent learns on the training bars; validation bars follow them, and the test bars,
    never seen in training or validation, give the verdict: the agent's Sharpe against
    buy-and-hold's and whether the difference could be luck. Costs (--fee-pips,
    --spread-pips) are charged on every position change, in training and in the verdict.
    With --folds and --seeds the same configuration is trained on each walk-forward fold with
    each seed and judged as a group (interquartile mean and bootstrap interval of the excess
    Sharpe). The bar is fed by the messaging channel, as the dashboard is. Examples:

    \b
      agentic-trading train                                         # PPO, 50,000 steps
      agentic-trading train --folds 5 --seeds 5 --timesteps 20000   # a trustworthy verdict
      agentic-trading train --agent dqn --timesteps 20000 --learning-rate 1e-4
      agentic-trading train --features standard --reward dsr
      agentic-trading train --agent sac --timesteps 10000 --features standard
      agentic-trading train --data my_bars.csv --experiment MyData --fee-pips 1
    """
    with expected_errors():
        settings = settings_with(message_broker_type=broker, message_namespace=namespace)
        start_writer(settings)  # its imports overlap torch's, below
        from agentic_trading.training.config import TrainingConfig

        config = TrainingConfig(
            agent_type=agent,
            pair=pair,
            data=data,
            timesteps=timesteps,
            learning_rate=learning_rate,
            n_steps=n_steps,
            batch_size=batch_size,
            gamma=gamma,
            gae_lambda=gae_lambda,
            ent_coef=ent_coef,
            clip_range=clip_range,
            n_epochs=n_epochs,
            net_arch=net_arch,
            activation=activation,
            seed=seed,
            window_size=window_size,
            features=features,
            validation_fraction=validation_fraction,
            test_fraction=test_fraction,
            folds=folds,
            fee_pips=fee_pips,
            spread_pips=spread_pips,
            reward=reward,
            drawdown_penalty=drawdown_penalty,
        )
        if not 1 <= seeds <= 100:
            fail(f"--seeds {seeds} is not allowed: use 1 to 100", 2)
        try:
            code = run(settings, config, experiment, json_output, seeds=seeds)
        except KeyboardInterrupt:
            raise typer.Exit(130) from None
    signum = signals.received()
    if signum is not None:  # recorded as cancelled; leave as a terminated process does
        raise typer.Exit(signals.exit_code(signum))
    if code:
        raise typer.Exit(code)


T = TypeVar("T")


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


def _progress(show: bool) -> Progress:
    return Progress(
        TextColumn("[bold]{task.description:>9}"),
        BarColumn(),
        TaskProgressColumn(),
        TextColumn("{task.completed:,.0f}/{task.total:,.0f}"),
        _Rate(),
        TimeRemainingColumn(),
        console=console,
        disable=not show,
    )


def _followed(
    settings: Settings, experiment_id: str, total: int, show: bool, work: Callable[[], T]
) -> T:
    """Run ``work`` with a bar fed from messaging by ``experiment_id``'s live state."""
    progress = _progress(show)
    task = progress.add_task("pending", total=total)
    follower = BackgroundLoop.get().submit(_follow(settings, experiment_id, progress, task))
    try:
        with progress:
            result = work()
            try:
                follower.result(timeout=5)
            except Exception:
                follower.cancel()
    except KeyboardInterrupt:
        follower.cancel()
        console.print("[yellow]cancelled[/]: the run is recorded as cancelled")
        raise
    return result


def run(
    settings: Settings,
    config: TrainingConfig,
    experiment_name: str | None,
    as_json: bool,
    quiet: bool = False,
    seeds: int = 1,
) -> int:
    """One training, or a walk-forward group when ``config.folds`` or ``seeds`` exceed 1;
    returns the exit code (see :func:`exit_code`)."""
    if config.folds > 1 or seeds > 1:
        group = run_group(settings, config, experiment_name, as_json, seeds, quiet)
        problems = [p for m in group.members for p in m.record_errors]
        return exit_code(group.status, problems)
    outcome = run_one(settings, config, experiment_name, as_json, quiet)
    return exit_code(outcome.status, outcome.record_errors)


def exit_code(status: ExperimentStatus, record_errors: list[str]) -> int:
    """0: completed and recorded; 1: not completed (cancelled, failed, pruned); 3: completed,
    but its tracking record is incomplete (a full disk, a stuck writer: the results printed
    stand, tracking lacks some of them). Signals have their own (see ``agentic_trading.common
    .signals``)."""
    if status is not ExperimentStatus.COMPLETED:
        return EXIT_FAILURE
    return EXIT_INCOMPLETE_RECORD if record_errors else 0


def run_one(
    settings: Settings,
    config: TrainingConfig,
    experiment_name: str | None,
    as_json: bool,
    quiet: bool = False,
) -> TrainingOutcome:
    """Train with a live bar (unless ``as_json`` or ``quiet``), then print the results."""
    name = experiment_name or f"{config.agent_type}_{config.pair}"
    outcome = followed_training(settings, config, name, show=not (as_json or quiet))
    if as_json:
        print_json(outcome_data(outcome))
    elif not quiet:
        print_outcome(outcome)
    return outcome


def followed_training(
    settings: Settings,
    config: TrainingConfig,
    name: str,
    extra_config: dict[str, Any] | None = None,
    *,
    show: bool = True,
) -> TrainingOutcome:
    """One training of ``config`` in experiment ``name``, with a live bar when ``show``."""
    from agentic_trading.training.runner import train

    experiment_id = f"{name}-{uuid.uuid4().hex[:8]}"
    if show:
        console.print(
            f"Training {config.agent_type} on {config.pair} for {config.timesteps:,} steps: "
            f"experiment [bold]{name}[/], live id [bold]{experiment_id}[/] "
            f"(namespace {settings.message_namespace}, {settings.message_broker_type} broker)"
        )
    return _followed(
        settings,
        experiment_id,
        config.timesteps,
        show,
        lambda: train(
            config, name, experiment_id=experiment_id, settings=settings, extra_config=extra_config
        ),
    )


def run_group(
    settings: Settings,
    config: TrainingConfig,
    experiment_name: str | None,
    as_json: bool,
    seeds: int,
    quiet: bool = False,
) -> GroupOutcome:
    """A walk-forward evaluation with one bar for all its trainings, then the group's verdict."""
    from agentic_trading.training.walk_forward import train_group

    name = experiment_name or f"{config.agent_type}_{config.pair}"
    experiment_id = f"{name}-group-{uuid.uuid4().hex[:8]}"
    show = not (as_json or quiet)
    runs = config.folds * seeds
    if show:
        console.print(
            f"Walk-forward evaluation of {config.agent_type} on {config.pair}: "
            f"{config.folds} fold(s) x {seeds} seed(s) = {runs} trainings of "
            f"{config.timesteps:,} steps; experiment [bold]{name}[/], live id "
            f"[bold]{experiment_id}[/]"
        )
    outcome = _followed(
        settings,
        experiment_id,
        config.timesteps * runs,
        show,
        lambda: train_group(
            config, name, seeds=seeds, settings=settings, experiment_id=experiment_id
        ),
    )
    if as_json:
        print_json(group_data(outcome))
    elif not quiet:
        print_group(outcome)
    return outcome


def verdict_data(verdict: RunVerdict | GroupVerdict | None) -> dict[str, Any] | None:
    """A verdict as JSON data: its label, its words and every figure."""
    if verdict is None:
        return None
    return {
        "label": verdict.label,
        "summary": verdict.summary(),
        "degenerate": verdict.degenerate,
        **verdict.figures(),
    }


def outcome_data(outcome: TrainingOutcome) -> dict[str, Any]:
    """One training's outcome as JSON data (``train --json``)."""
    return {
        "experiment_id": outcome.experiment_id,
        "run_id": outcome.run_id,
        "experiment": outcome.experiment_name,
        "status": outcome.status.value,
        "fold": outcome.fold,
        "seed": outcome.seed,
        "agent": outcome.agent,
        "buy_and_hold": outcome.baseline,
        "validation": outcome.validation,
        "verdict": verdict_data(outcome.verdict),
        "model": outcome.model_uri,
        "data": outcome.data,
        "record_errors": outcome.record_errors,
    }


def group_data(outcome: GroupOutcome) -> dict[str, Any]:
    """A walk-forward evaluation as JSON data."""
    return {
        "group_id": outcome.group_id,
        "experiment_id": outcome.experiment_id,
        "experiment": outcome.experiment_name,
        "status": outcome.status.value,
        "folds": outcome.folds,
        "seeds": outcome.seeds,
        "verdict": verdict_data(outcome.verdict),
        "runs": [outcome_data(member) for member in outcome.members],
    }


def print_verdict(verdict: RunVerdict | GroupVerdict) -> None:
    """The verdict line, coloured by its label."""
    console.print(
        Text("verdict: ", style="bold") + Text(verdict.summary(), style=LABEL_STYLE[verdict.label])
    )


def print_outcome(outcome: TrainingOutcome) -> None:
    """The test results, agent against buy-and-hold, and the verdict."""
    from agentic_trading.training.runner import RESULT_METRICS

    if outcome.status is not ExperimentStatus.COMPLETED:
        console.print(f"Training {outcome.status.value}: run {outcome.run_id}")
        return
    data = outcome.data
    table = Table(title="test bars, never seen in training or validation")
    table.add_column("metric")
    table.add_column("agent", justify="right")
    table.add_column("buy & hold", justify="right")
    table.add_column("agent on validation", justify="right", style="dim")
    for name in RESULT_METRICS:
        ours, theirs = outcome.agent[name], outcome.baseline[name]
        better = ours < theirs if name in ("max_drawdown", "turnover") else ours > theirs
        style = "green" if better and name not in ("n_trades", "exposure") else ""
        table.add_row(
            name,
            Text(metric_value(name, ours), style=style),
            metric_value(name, theirs),
            metric_value(name, outcome.validation.get(name)),
        )
    console.print(table)
    console.print(
        f"test: {data.get('test_bars')} bars from {data.get('test_from')} to "
        f"{data.get('test_to')}; validation: {data.get('validation_bars')} bars before them; "
        f"trained on {data.get('training_bars')} bars before those"
    )
    if outcome.verdict is not None:
        print_verdict(outcome.verdict)
    console.print(f"run [bold]{outcome.run_id}[/] in experiment {outcome.experiment_name}")
    console.print(f"model: {outcome.model_uri}")
    print_record_errors(outcome.run_id, outcome.record_errors)


def print_record_errors(run_id: str | None, problems: list[str]) -> None:
    """Say in one line on stderr what tracking could not record: the results above stand."""
    if problems:
        more = f" (and {len(problems) - 1} more, logged above)" if len(problems) > 1 else ""
        errors.print(
            f"[bold yellow]warning:[/] the tracking record of run {run_id} is incomplete: "
            f"{problems[0]}{more}",
            highlight=False,
            soft_wrap=True,
        )


def print_group(outcome: GroupOutcome) -> None:
    """Each training of the group on its test block, then the group's verdict."""
    for member in outcome.members:
        print_record_errors(member.run_id, member.record_errors)
    if outcome.status is not ExperimentStatus.COMPLETED or outcome.verdict is None:
        console.print(
            f"Walk-forward evaluation {outcome.status.value} after {len(outcome.members)} "
            f"training(s): group run {outcome.group_id}"
        )
        return
    columns = [
        Column("fold", justify="right"),
        Column("seed", justify="right"),
        Column("run", whole=True, drop=1),
        Column("test bars", justify="right", drop=2),
        Column("Sharpe", justify="right"),
        Column("buy & hold", justify="right"),
        Column("excess", justify="right"),
        Column("PSR", justify="right", drop=3),
        Column("verdict"),
    ]
    rows: list[list[Cell]] = [
        [
            str(member.fold),
            str(member.seed),
            member.run_id or "",
            f"{verdict.bars:,}",
            f"{verdict.sharpe:+.2f}",
            f"{verdict.baseline_sharpe:+.2f}",
            Text(
                f"{verdict.excess_sharpe:+.2f}", style="green" if verdict.excess_sharpe > 0 else ""
            ),
            f"{verdict.psr:.2f}",
            Text(
                verdict.label + (" (degenerate)" if verdict.degenerate else ""),
                style=LABEL_STYLE[verdict.label],
            ),
        ]
        for member, verdict in zip(outcome.members, outcome.verdict.members, strict=True)
    ]
    print_table(console, columns, rows, title="each training on its own test block")
    print_verdict(outcome.verdict)
    console.print(
        f"group run [bold]{outcome.group_id}[/] in experiment {outcome.experiment_name}: "
        f"agentic-trading experiments show {outcome.group_id}"
    )
