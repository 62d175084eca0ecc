"""``agentic-trading study``: create a study, run its workers, watch and judge it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from typing import Annotated, Any

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.text import Text

from agentic_trading.cli._common import (
    EXIT_USAGE,
    JsonOption,
    console,
    errors,
    expected_errors,
    fail,
    print_json,
    settings_with,
    start_writer,
)
from agentic_trading.cli.format import LABEL_STYLE
from agentic_trading.cli.tables import Cell, Column, WideOption, print_table
from agentic_trading.common import parent, signals
from agentic_trading.common.formatting import duration, exact_values
from agentic_trading.config import Settings
from agentic_trading.studies import (
    SearchSpace,
    StudyError,
    StudySpec,
    StudySummary,
    create_study,
    enqueue_trials,
    judge,
    list_studies,
    load_study,
    parameter_importances,
    summarise,
    trial_rows,
)
from agentic_trading.studies.attributes import trial_info
from agentic_trading.studies.spec import DEFAULT_TIMESTEPS
from agentic_trading.studies.study import ordered_states, trial_warnings

app = typer.Typer(
    rich_markup_mode=None,  # help texts verbatim: [a-z0-9_-] is not markup
    help=(
        "Hyperparameter studies on Optuna (STUDY_STORAGE: an SQLite file, or PostgreSQL shared "
        "by workers on many hosts). Every trial is a normal training, live and tracked; the "
        "pruner stops hopeless ones early (pruned)."
    ),
    no_args_is_help=True,
)
StudyName = Annotated[str, typer.Argument(help="The study's name.")]


@app.command("create")
def create_command(
    name: StudyName,
    agent: Annotated[str, typer.Option(help="ppo, a2c, dqn, sac or td3.")] = "ppo",
    space: Annotated[
        str | None,
        typer.Option(
            help="YAML file of the search space (default: the agent's built-in space), e.g. "
            "'learning_rate: {low: 1.0e-5, high: 1.0e-3, log: true}' and 'n_steps: [128, 512]'."
        ),
    ] = None,
    trials: Annotated[int, typer.Option(help="Budget: complete + pruned trials.")] = 20,
    timesteps: Annotated[
        int,
        typer.Option(
            help="Training steps of each trial. The default is the shortest budget at which PPO "
            "trials on the bundled bars mostly stopped churning (docs/benchmark.md)."
        ),
    ] = DEFAULT_TIMESTEPS,
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
    features: Annotated[
        str,
        typer.Option(help="Every trial's features (as `train --features`) unless searched."),
    ] = "returns",
    reward: Annotated[
        str, typer.Option(help="Every trial's reward (net, dsr, drawdown) unless searched.")
    ] = "net",
    fee_pips: Annotated[float, typer.Option(help="Fee per unit traded, in pips.")] = 3.0,
    spread_pips: Annotated[float, typer.Option(help="Spread per unit traded, in pips.")] = 0.0,
    json_output: JsonOption = False,
) -> None:
    """Create a study: agent, search space, objective on the validation bars, budget, pruner.

    Nothing is created when anything is wrong (a taken name, an unknown objective, a bad space,
    a storage that does not answer). Then run it with `study run NAME --workers 2` on this
    machine, or `study worker NAME` on every host (with STUDY_STORAGE=postgresql://...).
    """
    with expected_errors():
        base: dict[str, Any] = {
            "pair": pair,
            "window_size": window_size,
            "features": features,
            "reward": reward,
            "fee_pips": fee_pips,
            "spread_pips": spread_pips,
        }
        if data:
            base["data"] = data
        create(
            settings_with(), name, agent, space, trials, timesteps, objective, direction,
            sampler, pruner, eval_every, seed, base, json_output,
        )  # fmt: skip


@app.command("worker")
def worker_command(
    name: StudyName,
    trials: Annotated[
        int | None, typer.Option(min=1, help="At most this many trials (default: until done).")
    ] = None,
    json_output: JsonOption = False,
    exit_with_parent: Annotated[
        bool,
        typer.Option(
            "--exit-with-parent",
            hidden=True,
            help="Exit at once, as if killed, when stdin closes (a Ray task's child).",
        ),
    ] = False,
) -> None:
    """Run the study's trials until its budget is spent: one worker per host or core.

    Workers share nothing but STUDY_STORAGE (and messaging and tracking). A worker that dies
    loses no trial: after STUDY_GRACE_PERIOD another worker re-runs its parameters. Ctrl-C
    ends the current trial as cancelled and exits.
    """
    if exit_with_parent:
        parent.exit_with_parent()
        parent.take_ctrl_c()
    with expected_errors():
        settings = settings_with()
        start_writer(settings)  # its imports overlap torch's, below

        try:
            worker(settings, name, trials, json_output)
        except KeyboardInterrupt:
            raise typer.Exit(130) from None
    signum = signals.received()
    if signum is not None:  # its trial is recorded as cancelled
        raise typer.Exit(signals.exit_code(signum))


@app.command("run")
def run_command(
    name: StudyName,
    workers: Annotated[
        int | None,
        typer.Option(
            min=1,
            max=1024,
            help="Workers to start (local: 2; ray: as many as the cluster's CPUs fit).",
        ),
    ] = None,
    engine: Annotated[
        str,
        typer.Option(
            help="local: worker processes on this machine; ray: Ray tasks placed on a Ray "
            "cluster's nodes (pip install 'agentic-trading[ray]')."
        ),
    ] = "local",
    address: Annotated[
        str | None,
        typer.Option(
            help="With --engine ray: the cluster (auto, or HOST:PORT of its head); "
            "default: a Ray started for this run on this machine."
        ),
    ] = None,
    cpus_per_trial: Annotated[
        float, typer.Option(help="With --engine ray: CPUs Ray reserves for each worker.")
    ] = 1.0,
    gpus_per_trial: Annotated[
        float, typer.Option(help="With --engine ray: GPUs Ray reserves for each worker.")
    ] = 0.0,
) -> None:
    """Run the study with several workers and one progress bar, on this machine or on Ray.

    With --engine ray, each worker is a Ray task running the same loop as `study worker`, on
    whichever node has the CPUs: trials stay ordinary trainings (live, tracked, in the
    study's storage), and hand-started workers may serve the same study at once. Every node
    reads its settings (STUDY_STORAGE, REDIS_URL, ...) from its own environment. Examples:

    \b
      agentic-trading study run ppo-eurusd --workers 2
      agentic-trading study run ppo-eurusd --engine ray                    # a local Ray
      agentic-trading study run ppo-eurusd --engine ray --address auto --cpus-per-trial 2
    """
    with expected_errors():
        if engine not in ("local", "ray"):
            fail(f"--engine {engine!r} is not allowed: use local or ray", EXIT_USAGE)
        if engine == "ray":
            code = run_on_ray(
                settings_with(), name, workers, address, cpus_per_trial, gpus_per_trial
            )
        else:
            if address is not None:
                fail("--address needs --engine ray", EXIT_USAGE)
            code = run_local(settings_with(), name, workers or 2, {})
    if code:
        raise typer.Exit(code)


@app.command("list")
def list_command(json_output: JsonOption = False, wide: WideOption = False) -> None:
    """Every study: budget, trials per state, best value so far, workers active."""
    with expected_errors():
        list_all(settings_with(), json_output, wide)


@app.command("show")
def show_command(
    name: StudyName,
    limit: Annotated[int, typer.Option(min=0, help="Show the last this many trials.")] = 50,
    json_output: JsonOption = False,
    wide: WideOption = False,
) -> None:
    """A study's trials, best trial, parameter importances and verdict (DSR, PBO)."""
    with expected_errors():
        show(settings_with(), name, json_output, limit, wide)


@app.command("best")
def best_command(name: StudyName, json_output: JsonOption = False) -> None:
    """The best complete trial: its parameters, run, and how to re-run or judge it."""
    with expected_errors():
        found = best(settings_with(), name, json_output)
    if not found:
        raise typer.Exit(1)


@app.command("enqueue")
def enqueue_command(
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
    with expected_errors():
        enqueue(settings_with(), name, param, count, json_output)


@app.command("delete")
def delete_command(
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


STATE_STYLE = {
    "complete": "green",
    "pruned": "dim yellow",
    "running": "bold cyan",
    "waiting": "dim",
    "fail": "red",
    "cancelled": "yellow",
}


def create(
    settings: Settings,
    name: str,
    agent: str,
    space_file: str | None,
    trials: int,
    timesteps: int,
    objective: str,
    direction: str | None,
    sampler: str,
    pruner: str,
    eval_every: int | None,
    seed: int,
    base: dict[str, Any],
    as_json: bool,
) -> None:
    space = SearchSpace.from_file(space_file, agent) if space_file else SearchSpace.builtin(agent)
    spec = StudySpec(
        name=name,
        agent=agent,
        space=space.as_data(),
        trials=trials,
        timesteps=timesteps,
        objective=objective,
        direction=direction,
        sampler=sampler,
        pruner=pruner,
        eval_every=eval_every,
        seed=seed,
        base=base,
    )
    create_study(spec, settings)
    if as_json:
        print_json({"name": name, "storage": settings.study_location(), **spec.model_dump()})
        return
    console.print(
        f"study [bold]{name}[/] created in {settings.study_location()}: {spec.agent}, "
        f"{trials} trials of {timesteps:,} steps, {spec.study_direction} validation "
        f"{spec.objective}, {sampler} sampler, {pruner} pruner"
    )
    for parameter in space.parameters.values():
        console.print(f"  {parameter.describe()}")
    console.print(
        f"\nRun it: agentic-trading study run {name} --workers 2      (this machine)\n"
        f"    or: agentic-trading study run {name} --engine ray --address auto   (a Ray cluster)\n"
        f"    or: agentic-trading study worker {name}                (one per host or core)"
    )


def worker(settings: Settings, name: str, trials: int | None, as_json: bool) -> None:
    def told(trial: Any) -> None:
        if not as_json:
            value = "-" if trial.value is None else f"{trial.value:.4g}"
            console.print(
                f"trial {trial.number}: {trial.state.name.lower()} "
                f"(value {value}, run {trial_info(trial).get('run_id', '-')})"
            )

    if not as_json:
        console.print(f"worker on study [bold]{name}[/] ({settings.study_location()})")
    from agentic_trading.studies import run_worker  # imports torch: after start_writer

    report = run_worker(name, settings, max_trials=trials, on_trial=told)
    if as_json:
        print_json(report.as_data())
    else:
        ran = ", ".join(f"{n} {state}" for state, n in report.trials.items()) or "no trials"
        console.print(f"worker done: {ran}; {report.reason}")


def run_local(settings: Settings, name: str, workers: int, env: dict[str, str]) -> int:
    """``workers`` worker processes on this machine, one bar for the study; their exit code."""
    study, spec = load_study(name, settings)
    command = [sys.executable, "-m", "agentic_trading.cli.app", "study", "worker", name]
    # Each worker's torch would use every core: K of them oversubscribe the machine (two
    # workers on two cores ran each trial four times slower). Share the cores out instead.
    threads = str(max(1, (os.cpu_count() or 1) // workers))
    shared = {"OMP_NUM_THREADS": threads, "MKL_NUM_THREADS": threads}
    procs = [
        subprocess.Popen(
            command,
            env={**shared, **os.environ, **env},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,  # Ctrl-C reaches them through us, once
        )
        for _ in range(workers)
    ]
    console.print(f"{workers} workers on study [bold]{name}[/] ({settings.study_location()})")

    def finished() -> bool:
        time.sleep(1.0)
        return all(p.poll() is not None for p in procs)

    try:
        _follow(study, spec, finished)
    except KeyboardInterrupt:
        console.print("[yellow]stopping[/]: each worker ends its trial as cancelled")
        for proc in procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGINT)
        for proc in procs:
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                proc.kill()
        return 130
    codes = [p.returncode for p in procs]
    for proc in procs:
        tail = (proc.stderr.read() if proc.stderr else "").strip().splitlines()[-3:]
        if proc.returncode and tail:
            errors.print(f"worker {proc.pid} exited {proc.returncode}: " + " | ".join(tail))
    show(settings, name, as_json=False, limit=0)
    return max(codes, default=0)


def run_on_ray(
    settings: Settings,
    name: str,
    workers: int | None,
    address: str | None,
    cpus_per_trial: float,
    gpus_per_trial: float,
) -> int:
    """The study's workers as Ray tasks on a cluster (or a Ray started here); the exit code."""
    from agentic_trading.studies.ray_engine import RayEngineError, RayStudyRun

    study, spec = load_study(name, settings)
    engine = RayStudyRun(name, address, workers, cpus_per_trial, gpus_per_trial)
    try:
        try:
            launched = engine.start()
        except (ImportError, RayEngineError) as exc:
            fail(str(exc), EXIT_USAGE)
        where = address or "a local Ray"
        console.print(f"{launched} Ray workers on study [bold]{name}[/] ({where})")
        try:
            _follow(study, spec, lambda: engine.wait(1.0))
        except KeyboardInterrupt:
            console.print("[yellow]stopping[/]: each worker ends its trial as cancelled")
            engine.cancel()
            return 130
    finally:
        engine.shutdown()
    for error in engine.errors:
        errors.print(f"a Ray worker failed: {error}")
    show(settings, name, as_json=False, limit=0)
    return 1 if engine.errors else 0


def _follow(study: Any, spec: StudySpec, finished: Callable[[], bool]) -> None:
    """One progress bar for the study until ``finished()`` (which waits about a second)."""
    columns = (
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[detail]}"),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=console) as progress:
        task = progress.add_task(spec.name, total=spec.trials, detail="")
        while not finished():
            _update(progress, task, study, spec)
        _update(progress, task, study, spec)


def _update(progress: Progress, task: Any, study: Any, spec: StudySpec) -> None:
    summary = summarise(study, spec)
    parts = [f"{n} {s}" for s, n in ordered_states(summary.states) if s != "complete"]
    if summary.best_value is not None:
        parts.append(f"best {summary.best_value:.4g}")
    progress.update(task, completed=summary.finished, total=summary.budget, detail="; ".join(parts))


def list_all(settings: Settings, as_json: bool, wide: bool = False) -> None:
    summaries = list_studies(settings)
    if as_json:
        print_json([s.as_data() for s in summaries])
        return
    if not summaries:
        console.print(f"no studies in {settings.study_location()}; create one with study create")
        return
    columns = [
        Column("study", whole=True),
        Column("agent", drop=4),
        Column("objective", drop=3),
        Column("trials", justify="right"),
        Column("states", drop=2),
        Column("best", justify="right"),
        Column("workers", justify="right", drop=5),
        Column("created", drop=1),
    ]
    rows: list[list[Cell]] = [
        [
            s.name,
            s.agent,
            f"{s.direction[:3]} {s.objective}",
            f"{s.finished}/{s.budget}",
            _states(s.states),
            "-" if s.best_value is None else f"{s.best_value:.4g} (#{s.best_trial})",
            str(len(s.workers)),
            s.created_at.strftime("%Y-%m-%d %H:%M") if s.created_at else "-",
        ]
        for s in summaries
    ]
    print_table(console, columns, rows, title=f"studies in {settings.study_location()}", wide=wide)


def _states(states: dict[str, int]) -> Text:
    text = Text()
    for state, count in ordered_states(states):
        if text:
            text.append(", ")
        text.append(f"{count} {state}", style=STATE_STYLE.get(state, ""))
    return text


def show(settings: Settings, name: str, as_json: bool, limit: int = 50, wide: bool = False) -> None:
    study, spec = load_study(name, settings)
    trials = study.get_trials(deepcopy=False)
    summary = summarise(study, spec, trials)
    rows = trial_rows(trials)
    importances = parameter_importances(study)
    verdict = judge(trials)
    warning = trial_warnings(trials, spec.timesteps)
    if as_json:
        print_json(
            {
                **summary.as_data(),
                "spec": spec.model_dump(),
                "trials": [r.as_data() for r in rows],
                "importances": importances,
                "verdict": None
                if verdict is None
                else {"label": verdict.label, "summary": verdict.summary(), **verdict.figures()},
                "warning": warning,
            }
        )
        return
    _print_summary(summary)
    if limit:
        _print_trials(rows[-limit:], list(spec.search_space.parameters), wide, importances)
    if importances:
        print_table(
            console,
            [Column("parameter", whole=True), Column("importance", justify="right")],
            [[parameter, f"{value:.3f}"] for parameter, value in importances.items()],
            title="parameter importances (Optuna)",
        )
    if verdict is not None:
        console.print(
            Text("study verdict: ", style="bold")
            + Text(verdict.summary(), style=LABEL_STYLE[verdict.label])
        )
    if warning:
        console.print(Text("warning: ", style="bold yellow") + Text(warning, style="yellow"))


def _print_summary(summary: StudySummary) -> None:
    best = (
        "no trial complete yet"
        if summary.best_value is None
        else f"best {summary.best_value:.4g} (trial {summary.best_trial})"
    )
    console.print(
        f"[bold]{summary.name}[/]: {summary.agent}, {summary.direction} validation "
        f"{summary.objective}; {summary.finished}/{summary.budget} trials done ("
        + _states(summary.states).plain
        + f"); {best}; workers active: {len(summary.workers)}"
    )


def _print_trials(
    rows: Sequence[Any],
    parameters: Sequence[str],
    wide: bool = False,
    importances: dict[str, float] | None = None,
) -> None:
    # On a narrow terminal the least important parameters go first, then duration, steps,
    # the run's id, and last the two most important parameters.
    ranked = sorted(parameters, key=lambda p: -(importances or {}).get(p, 0.0))
    drop = {p: rank + 1 if rank < 2 else rank + 4 for rank, p in enumerate(ranked)}
    columns = [
        Column("#", justify="right"),
        Column("state"),
        Column("value", justify="right"),
        Column("steps", justify="right", drop=4),
        Column("wall time", justify="right", drop=5),
        Column("run", whole=True, drop=3),
        *(Column(p, justify="right", drop=drop[p]) for p in parameters),
    ]
    # Exact values: two different values of a parameter never print alike (0.999, 0.9999).
    values = {p: exact_values([row.params.get(p) for row in rows]) for p in parameters}
    table = [
        [
            str(row.number),
            Text(row.state, style=STATE_STYLE.get(row.state, "")),
            "-" if row.value is None else f"{row.value:.4g}",
            "-" if row.steps is None else f"{row.steps:,}",
            duration(row.duration_seconds),
            row.run_id or "-",
            *(values[p][i] for p in parameters),
        ]
        for i, row in enumerate(rows)
    ]
    print_table(console, columns, table, title="trials", wide=wide)


def best(settings: Settings, name: str, as_json: bool) -> bool:
    study, spec = load_study(name, settings)
    trials = study.get_trials(deepcopy=False)
    summary = summarise(study, spec, trials)
    if summary.best_trial is None:
        if as_json:
            print_json(None)
        else:
            console.print(f"no trial of {name} has completed yet")
        return False
    row = next(r for r in trial_rows(trials) if r.number == summary.best_trial)
    verdict = judge(trials)
    if as_json:
        print_json(
            {
                **row.as_data(),
                "objective": spec.objective,
                "verdict": None if verdict is None else verdict.summary(),
            }
        )
        return True
    console.print(
        f"best trial of [bold]{name}[/]: #{row.number}, validation {spec.objective} "
        f"{row.value:.4g}, run {row.run_id}"
    )
    for key, value in row.params.items():
        console.print(f"  {key} = {value}")
    # Exact values on command lines: 0.9999 is not 1.
    options = " ".join(f"--{k.replace('_', '-')} {v}" for k, v in row.params.items())
    console.print(
        f"\nre-run it with other seeds: agentic-trading study enqueue {name} "
        + " ".join(f"--param {k}={v}" for k, v in row.params.items())
        + " --param seed=2",
        soft_wrap=True,
    )
    console.print(
        f"judge it walk-forward: agentic-trading train --agent {spec.agent.lower()} "
        f"--timesteps {spec.timesteps} {options} --folds 5 --seeds 5",
        soft_wrap=True,
    )
    if verdict is not None:
        console.print(
            Text("study verdict: ", style="bold")
            + Text(verdict.summary(), style=LABEL_STYLE[verdict.label])
        )
    return True


def enqueue(settings: Settings, name: str, params: list[str], count: int, as_json: bool) -> None:
    parsed: dict[str, Any] = {}
    for item in params:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise StudyError(f"--param {item!r} is not key=value (e.g. --param learning_rate=3e-4)")
        parsed[key.strip()] = _value(raw.strip())
    numbers = enqueue_trials(name, parsed, settings, count)
    if as_json:
        print_json({"study": name, "trials": numbers, "params": parsed})
        return
    console.print(
        f"queued trial(s) {', '.join(map(str, numbers))} in {name} with {parsed}; the next "
        "free worker runs them"
    )


def _value(raw: str) -> Any:
    for cast in (int, float):
        try:
            return cast(raw)
        except ValueError:
            pass
    return raw


__all__ = ["best", "create", "enqueue", "list_all", "run_local", "show", "worker"]
