"""The ``agentic-trading`` command: train, watch and compare trading agents."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from agentic_trading.cli._common import expected_errors, fail, settings_with, start_writer
from agentic_trading.common import signals
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
        "--namespace",
        "-n",
        help="Messaging namespace (default: MESSAGE_NAMESPACE, else 'default').",
    ),
]
BrokerOption = Annotated[
    str | None,
    typer.Option("--broker", help="'memory' or 'redis' (default: MESSAGE_BROKER_TYPE)."),
]


def _status(value: str | None) -> ExperimentStatus | None:
    return None if value is None else ExperimentStatus.parse(value)


@app.command()
def demo(
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
            from agentic_trading.cli import demo as demo_command

            demo_command.run(settings, timesteps, seconds)
            return
        start_writer(settings)  # its imports overlap torch's, below
        from agentic_trading.cli import train as train_command
        from agentic_trading.training.config import TrainingConfig

        try:
            outcome = train_command.run_one(
                settings, TrainingConfig(timesteps=timesteps), None, False
            )
        except KeyboardInterrupt:
            raise typer.Exit(130) from None
        from agentic_trading.cli._common import console

        ui = "MLflow's UI" if settings.ml_tracking_backend == "mlflow" else "Aim's UI"
        console.print(
            "\nNext:\n"
            f"  agentic-trading experiments show {outcome.run_id}   # this run in full\n"
            "  agentic-trading experiments list               # every run\n"
            "  agentic-trading dashboard                      # http://127.0.0.1:8050\n"
            f"  agentic-trading tracking-ui                    # {ui} at http://127.0.0.1:43800\n"
            "  agentic-trading train --agent a2c --timesteps 20000   # another agent to compare"
        )


@app.command()
def train(
    agent: Annotated[str, typer.Option(help="ppo, a2c or dqn.")] = "ppo",
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
        int, typer.Option(help="PPO/DQN minibatch size.", rich_help_panel="Agent")
    ] = 64,
    gamma: Annotated[float, typer.Option(help="Discount factor.", rich_help_panel="Agent")] = 0.99,
    gae_lambda: Annotated[
        float, typer.Option(help="PPO/A2C GAE lambda.", rich_help_panel="Agent")
    ] = 0.95,
    ent_coef: Annotated[
        float, typer.Option(help="PPO/A2C entropy bonus.", rich_help_panel="Agent")
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
    window_size: Annotated[int, typer.Option(help="Past bars the agent sees per decision.")] = 10,
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

        agentic-trading train                                 # PPO, EUR/USD, 50,000 steps

        agentic-trading train --folds 5 --seeds 5 --timesteps 20000   # a trustworthy verdict

        agentic-trading train --agent dqn --timesteps 20000 --learning-rate 1e-4

        agentic-trading train --data my_bars.csv --experiment MyData --fee-pips 1
    """
    with expected_errors():
        settings = settings_with(message_broker_type=broker, message_namespace=namespace)
        start_writer(settings)  # its imports overlap torch's, below
        from agentic_trading.cli import train as train_command
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
            validation_fraction=validation_fraction,
            test_fraction=test_fraction,
            folds=folds,
            fee_pips=fee_pips,
            spread_pips=spread_pips,
        )
        if not 1 <= seeds <= 100:
            fail(f"--seeds {seeds} is not allowed: use 1 to 100", 2)
        try:
            code = train_command.run(settings, config, experiment, json_output, seeds=seeds)
        except KeyboardInterrupt:
            raise typer.Exit(130) from None
    signum = signals.received()
    if signum is not None:  # recorded as cancelled; leave as a terminated process does
        raise typer.Exit(signals.exit_code(signum))
    if code:
        raise typer.Exit(code)


experiments_app = typer.Typer(
    help="Tracked runs: list, show, compare, best, delete, reindex (ML_STORAGE_PATH).",
    no_args_is_help=True,
)
app.add_typer(experiments_app, name="experiments")


def _repository() -> Any:
    from agentic_trading.tracking import get_sync_experiment_repository

    return get_sync_experiment_repository(settings_with())


@experiments_app.command("list")
def experiments_list(
    experiment: Annotated[str | None, typer.Option(help="Only this experiment.")] = None,
    status: Annotated[
        str | None, typer.Option(help="Only this status (crashed and pruned included).")
    ] = None,
    limit: Annotated[int, typer.Option(min=1, help="At most this many runs.")] = 50,
    order_by: Annotated[
        str | None,
        typer.Option(help="created_at, final_metrics.NAME, config.NAME; '-' for descending."),
    ] = None,
    group: Annotated[
        str | None,
        typer.Option(help="Only the trainings of this walk-forward group (its group run id)."),
    ] = None,
    study: Annotated[str | None, typer.Option(help="Only the trials of this study.")] = None,
    where: Annotated[
        list[str] | None,
        typer.Option(
            "--where",
            "-w",
            help=(
                "A condition on a final metric or config key, e.g. "
                "'final_metrics.sharpe_ratio > 1' or 'config.agent_type == PPO'; "
                "repeat it for AND. Operators: == != < <= > >=."
            ),
        ),
    ] = None,
    since: Annotated[
        str | None,
        typer.Option(help="Only runs created since: 2026-11-28, 2026-11-28T09:30, 12h, 7d, 2w."),
    ] = None,
    offset: Annotated[int, typer.Option(min=0, help="Skip this many (the next page).")] = 0,
    json_output: Annotated[bool, typer.Option("--json", help="A JSON list for scripts.")] = False,
) -> None:
    """Runs, newest first, with each one's verdict (skill, luck or trails buy-and-hold).

    Answered from the run catalogue (ML_CATALOG_URL) in milliseconds, at any number of runs.
    Examples:

        agentic-trading experiments list --order-by -final_metrics.sharpe_ratio --limit 10

        agentic-trading experiments list -w 'config.learning_rate < 0.001' --since 7d
    """
    from agentic_trading.cli import experiments as command
    from agentic_trading.cli._common import parse_since

    with expected_errors():
        command.list_runs(
            _repository(),
            experiment,
            status,
            limit,
            order_by,
            json_output,
            group,
            study,
            where=where,
            since=None if since is None else parse_since(since),
            offset=offset,
        )


@experiments_app.command("reindex")
def experiments_reindex(
    json_output: Annotated[bool, typer.Option("--json", help="JSON for scripts.")] = False,
) -> None:
    """Rebuild the run catalogue from the tracking store (the Aim repository or aim:// server):
    every run re-read; says how many rows it added, fixed and removed.

    Safe while trainings run. Use it after restoring a backup, after the catalogue's database
    was down for long, or after runs were written without a catalogue.
    """
    from agentic_trading.cli import experiments as command

    with expected_errors():
        command.reindex(_repository(), json_output)


@experiments_app.command("export")
def experiments_export(
    to: Annotated[str, typer.Option("--to", help="The backend to copy into: mlflow.")],
    experiment: Annotated[
        str | None, typer.Option(help="Only the runs of this experiment.")
    ] = None,
    json_output: Annotated[bool, typer.Option("--json", help="JSON for scripts.")] = False,
) -> None:
    """Copy the finished runs of the Aim repository (ML_STORAGE_PATH) into MLflow
    (MLFLOW_TRACKING_URI; by default mlflow.db in the same folder): config, metric series,
    final metrics, status, error, params, tags and model files.

    Idempotent: runs already in MLflow are skipped, a half-copied one is copied again; running
    runs wait for a later export. Exit 1 if any run could not be copied.
    """
    from agentic_trading.cli import experiments as command

    with expected_errors():
        if not command.export(settings_with(), to, experiment, json_output):
            raise typer.Exit(1)


@experiments_app.command("show")
def experiments_show(
    run_id: Annotated[str, typer.Argument(help="The run id (Aim run hash).")],
    json_output: Annotated[bool, typer.Option("--json", help="JSON for scripts.")] = False,
) -> None:
    """One run: config, status, error, final metrics, metric names, artifacts (the model) and
    its verdict; for a walk-forward group, its trainings and the group's verdict."""
    from agentic_trading.cli import experiments as command

    with expected_errors():
        command.show(_repository(), run_id, json_output)


@experiments_app.command("compare")
def experiments_compare(
    run_ids: Annotated[list[str], typer.Argument(help="Two or more run ids.")],
    metric: Annotated[
        list[str] | None,
        typer.Option("--metric", "-m", help="Metrics to compare (default: every final metric)."),
    ] = None,
    json_output: Annotated[bool, typer.Option("--json", help="JSON for scripts.")] = False,
) -> None:
    """Runs side by side: final metrics with the best marked, and the config that differs."""
    from agentic_trading.cli import experiments as command

    with expected_errors():
        command.compare(_repository(), run_ids, metric, json_output)


@experiments_app.command("best")
def experiments_best(
    experiment: Annotated[str, typer.Argument(help="Experiment name.")],
    metric: Annotated[str, typer.Option(help="Final metric to rank by.")] = "sharpe_ratio",
    mode: Annotated[str, typer.Option(help="max or min.")] = "max",
    json_output: Annotated[bool, typer.Option("--json", help="JSON for scripts.")] = False,
) -> None:
    """The completed run of an experiment with the best final metric."""
    from agentic_trading.cli import experiments as command

    with expected_errors():
        found = command.best(_repository(), experiment, metric, mode, json_output)
    if not found:
        raise typer.Exit(1)


@experiments_app.command("delete")
def experiments_delete(
    run_id: Annotated[str, typer.Argument(help="The run id to delete for good.")],
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask.")] = False,
    force: Annotated[bool, typer.Option(help="Also a run that is still running.")] = False,
) -> None:
    """Delete a run and its data (not reversible)."""
    with expected_errors():
        repo = _repository()
        run = repo.get_run(run_id)
        if not yes and not typer.confirm(f"Delete run {run_id} of {run.experiment} for good?"):
            raise typer.Exit(1)
        repo.delete_run(run_id, force=force)
    from agentic_trading.cli._common import console

    console.print(f"deleted run {run_id}")


models_app = typer.Typer(
    help=(
        "The model registry: named models, numbered versions (a run's model with its config "
        "and verdict) and aliases such as champion, which trading code loads with "
        "agentic_trading.models.load_model('NAME@champion'). It lives in the run catalogue "
        "(ML_CATALOG_URL)."
    ),
    no_args_is_help=True,
)
app.add_typer(models_app, name="models")
ModelName = Annotated[str, typer.Argument(help="The model's name, e.g. EURUSD-PPO.")]


def _registry() -> Any:
    from agentic_trading.models import get_model_registry

    return get_model_registry(settings_with())


@models_app.command("register")
def models_register(
    run_id: Annotated[str, typer.Argument(help="A completed run that stored model.zip.")],
    name: ModelName,
    json_output: Annotated[bool, typer.Option("--json", help="JSON for scripts.")] = False,
) -> None:
    """Make a run's model the next version of NAME (created if new)."""
    from agentic_trading.cli import models as command

    with expected_errors():
        command.register(_repository(), settings_with(), run_id, name, json_output)


@models_app.command("list")
def models_list(
    json_output: Annotated[bool, typer.Option("--json", help="JSON for scripts.")] = False,
) -> None:
    """Every model: versions, aliases, the latest version's verdict."""
    from agentic_trading.cli import models as command

    with expected_errors():
        command.list_models(_registry(), json_output)


@models_app.command("show")
def models_show(
    name: ModelName,
    json_output: Annotated[bool, typer.Option("--json", help="JSON for scripts.")] = False,
) -> None:
    """A model's versions: the run each came from, its aliases and its verdict's figures."""
    from agentic_trading.cli import models as command

    with expected_errors():
        command.show(_registry(), name, json_output)


@models_app.command("promote")
def models_promote(
    name: ModelName,
    version: Annotated[int, typer.Argument(min=1, help="The version the alias points to.")],
    alias: Annotated[
        str, typer.Option(help="champion, challenger or any 1-64 of [a-z0-9_-].")
    ] = "champion",
    json_output: Annotated[bool, typer.Option("--json", help="JSON for scripts.")] = False,
) -> None:
    """Point NAME@ALIAS at VERSION, atomically (racing promotions leave exactly one)."""
    from agentic_trading.cli import models as command

    with expected_errors():
        command.promote(_registry(), name, version, alias, json_output)


@models_app.command("load")
def models_load(
    reference: Annotated[str, typer.Argument(help="NAME@alias, NAME/VERSION or NAME (latest).")],
    json_output: Annotated[bool, typer.Option("--json", help="JSON for scripts.")] = False,
) -> None:
    """Check a model as trading code would get it: load it with load_model(REFERENCE) and let
    it act on the last bars of its pair's bundled data."""
    from agentic_trading.cli import models as command

    with expected_errors():
        command.load(reference, json_output)


study_app = typer.Typer(
    help=(
        "Hyperparameter studies on Optuna (STUDY_STORAGE: an SQLite file, or PostgreSQL shared "
        "by workers on many hosts). Every trial is a normal training, live and tracked; the "
        "pruner stops hopeless ones early (pruned)."
    ),
    no_args_is_help=True,
)
app.add_typer(study_app, name="study")
StudyName = Annotated[str, typer.Argument(help="The study's name.")]
JsonOption = Annotated[bool, typer.Option("--json", help="JSON for scripts.")]


@study_app.command("create")
def study_create(
    name: StudyName,
    agent: Annotated[str, typer.Option(help="ppo, a2c or dqn.")] = "ppo",
    space: Annotated[
        str | None,
        typer.Option(
            help="YAML file of the search space (default: the agent's built-in space), e.g. "
            "'learning_rate: {low: 1.0e-5, high: 1.0e-3, log: true}' and 'n_steps: [128, 512]'."
        ),
    ] = None,
    trials: Annotated[int, typer.Option(help="Budget: complete + pruned trials.")] = 20,
    timesteps: Annotated[int, typer.Option(help="Training steps of each trial.")] = 2_000,
    objective: Annotated[
        str,
        typer.Option(
            help="Validation metric to optimise: sharpe_ratio, sortino_ratio, calmar_ratio, "
            "excess_sharpe, total_profit, total_reward, max_drawdown."
        ),
    ] = "sharpe_ratio",
    direction: Annotated[
        str | None, typer.Option(help="maximize or minimize (default: the metric's own).")
    ] = None,
    sampler: Annotated[str, typer.Option(help="tpe or random.")] = "tpe",
    pruner: Annotated[
        str, typer.Option(help="median, successive_halving, hyperband or none.")
    ] = "median",
    eval_every: Annotated[
        int | None,
        typer.Option(help="Steps between validation scores for the pruner (default: a fifth)."),
    ] = None,
    seed: Annotated[int, typer.Option(help="Seed of every trial's training.")] = 1,
    pair: Annotated[str, typer.Option(help="Currency pair of the bundled data.")] = "EUR_USD",
    data: Annotated[str | None, typer.Option(help="CSV of your own bars.")] = None,
    window_size: Annotated[int, typer.Option(help="Past bars the agent sees.")] = 10,
    fee_pips: Annotated[float, typer.Option(help="Fee per unit traded, in pips.")] = 3.0,
    spread_pips: Annotated[float, typer.Option(help="Spread per unit traded, in pips.")] = 0.0,
    json_output: JsonOption = False,
) -> None:
    """Create a study: agent, search space, objective on the validation bars, budget, pruner.

    Nothing is created when anything is wrong (a taken name, an unknown objective, a bad space,
    a storage that does not answer). Then run it with `study run NAME --workers 2` on this
    machine, or `study worker NAME` on every host (with STUDY_STORAGE=postgresql://...).
    """
    from agentic_trading.cli import study as command

    with expected_errors():
        base: dict[str, Any] = {
            "pair": pair,
            "window_size": window_size,
            "fee_pips": fee_pips,
            "spread_pips": spread_pips,
        }
        if data:
            base["data"] = data
        command.create(
            settings_with(), name, agent, space, trials, timesteps, objective, direction,
            sampler, pruner, eval_every, seed, base, json_output,
        )  # fmt: skip


@study_app.command("worker")
def study_worker(
    name: StudyName,
    trials: Annotated[
        int | None, typer.Option(min=1, help="At most this many trials (default: until done).")
    ] = None,
    json_output: JsonOption = False,
) -> None:
    """Run the study's trials until its budget is spent: one worker per host or core.

    Workers share nothing but STUDY_STORAGE (and messaging and tracking). A worker that dies
    loses no trial: after STUDY_GRACE_PERIOD another worker re-runs its parameters. Ctrl-C
    ends the current trial as cancelled and exits.
    """
    with expected_errors():
        settings = settings_with()
        start_writer(settings)  # its imports overlap torch's, below
        from agentic_trading.cli import study as command

        try:
            command.worker(settings, name, trials, json_output)
        except KeyboardInterrupt:
            raise typer.Exit(130) from None
    signum = signals.received()
    if signum is not None:  # its trial is recorded as cancelled
        raise typer.Exit(signals.exit_code(signum))


@study_app.command("run")
def study_run(
    name: StudyName,
    workers: Annotated[int, typer.Option(min=1, max=64, help="Worker processes to start.")] = 2,
) -> None:
    """Run the study on this machine with several worker processes and one progress bar."""
    from agentic_trading.cli import study as command

    with expected_errors():
        code = command.run_local(settings_with(), name, workers, {})
    if code:
        raise typer.Exit(code)


@study_app.command("list")
def study_list(json_output: JsonOption = False) -> None:
    """Every study: budget, trials per state, best value so far, workers active."""
    from agentic_trading.cli import study as command

    with expected_errors():
        command.list_all(settings_with(), json_output)


@study_app.command("show")
def study_show(
    name: StudyName,
    limit: Annotated[int, typer.Option(min=0, help="Show the last this many trials.")] = 50,
    json_output: JsonOption = False,
) -> None:
    """A study's trials, best trial, parameter importances and verdict (DSR, PBO)."""
    from agentic_trading.cli import study as command

    with expected_errors():
        command.show(settings_with(), name, json_output, limit)


@study_app.command("best")
def study_best(name: StudyName, json_output: JsonOption = False) -> None:
    """The best complete trial: its parameters, run, and how to re-run or judge it."""
    from agentic_trading.cli import study as command

    with expected_errors():
        found = command.best(settings_with(), name, json_output)
    if not found:
        raise typer.Exit(1)


@study_app.command("enqueue")
def study_enqueue(
    name: StudyName,
    param: Annotated[
        list[str],
        typer.Option(
            "--param", "-p", help="key=value of a searched parameter, or seed=N; repeat it."
        ),
    ],
    count: Annotated[int, typer.Option(min=1, help="How many such trials.")] = 1,
    json_output: JsonOption = False,
) -> None:
    """Queue a trial with fixed parameters (the next free worker runs it), e.g. the best
    trial again with another seed. The study's budget grows by --count."""
    from agentic_trading.cli import study as command

    with expected_errors():
        command.enqueue(settings_with(), name, param, count, json_output)


@study_app.command("delete")
def study_delete(
    name: StudyName,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask.")] = False,
) -> None:
    """Delete a study and its trials from STUDY_STORAGE (the tracked runs stay)."""
    from agentic_trading.studies import delete_study

    with expected_errors():
        if not yes and not typer.confirm(f"Delete study {name} and its trials?"):
            raise typer.Exit(1)
        delete_study(name, settings_with())
    from agentic_trading.cli._common import console

    console.print(f"deleted study {name}")


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
            help="Only this status: pending, running, completed, failed, cancelled, crashed, pruned."
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


@app.command()
def dashboard(
    host: Annotated[
        str | None,
        typer.Option(
            help="Address to bind (DASHBOARD_HOST, else 127.0.0.1). Anything but loopback "
            "exposes it and needs DASHBOARD_TOKEN for stop/start, or DASHBOARD_CONTROL=false."
        ),
    ] = None,
    port: Annotated[
        int | None,
        typer.Option(min=1, max=65535, help="Port (DASHBOARD_PORT, else 8050)."),
    ] = None,
    read_only: Annotated[
        bool,
        typer.Option("--read-only", help="No stop buttons and no training form."),
    ] = False,
) -> None:
    """The web dashboard: live experiments, all runs, a run's page, runs compared.

    Live experiments come from messaging: with MESSAGE_BROKER_TYPE=memory only those of the
    dashboard's own process (start one from its form), with redis every process's. Runs come
    from tracking (ML_STORAGE_PATH). Open http://127.0.0.1:8050.
    """
    from agentic_trading.cli._common import errors
    from agentic_trading.dashboard.app import create_app

    with expected_errors():
        overrides: dict[str, Any] = {"dashboard_host": host, "dashboard_port": port}
        if read_only:
            overrides["dashboard_control"] = False
        settings = settings_with(**overrides)
        bind, bind_port = settings.dashboard_host, settings.dashboard_port
        server = create_app(settings, host=bind)
        control = server.context.control
        if control.requires_token:
            errors.print("stop and start need the token from DASHBOARD_TOKEN")
        if not control.enabled:
            errors.print("read-only: stop and start are disabled")
        errors.print(f"dashboard on http://{bind}:{bind_port} (Ctrl-C stops it)")

        def terminated(reason: str) -> None:
            # SIGTERM or SIGHUP: the trainings started here were asked to stop (they are
            # watched too); let them record "cancelled", then leave with the signal's code.
            left = control.wait_for_trainings(30.0)
            if left:
                errors.print(f"{reason}: trainings still running after 30 s: {', '.join(left)}")
            raise SystemExit(signals.exit_code(signals.received() or 15))

        signals.watch(terminated)
        server.run(host=bind, port=bind_port, debug=False)


@app.command("tracking-ui")
def tracking_ui(
    host: Annotated[
        str, typer.Option(help="Address to bind; anything but loopback exposes the UI.")
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=1, max=65535, help="Port of the UI.")] = 43800,
) -> None:
    """Open the tracking backend's own UI on the runs the tracker wrote.

    Aim (ML_TRACKING_BACKEND=aim): `aim up` on ML_STORAGE_PATH; configs are hparams, status and
    final metrics run attributes (AimQL: run.status == "completed"). MLflow: `mlflow ui` on the
    local store (an MLflow server is its own UI: its address is printed); configs are params,
    our status is tag agentic.status, final metrics are metrics final/NAME. Ctrl-C stops it.
    """
    from agentic_trading.cli import tracking_ui as tracking_ui_command

    with expected_errors():
        tracking_ui_command.run(settings_with(), host, port)


def main() -> None:
    """Entry point of the console script."""
    app()


if __name__ == "__main__":
    main()
