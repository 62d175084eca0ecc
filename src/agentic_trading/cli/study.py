"""``agentic-trading study``: create a study, run its workers, watch and judge it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from typing import Any

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from rich.text import Text

from agentic_trading.cli._common import console, errors, print_json
from agentic_trading.cli.format import LABEL_STYLE
from agentic_trading.common.formatting import duration
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
    run_worker,
    summarise,
    trial_rows,
)
from agentic_trading.studies.attributes import trial_info

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
    columns = (
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[detail]}"),
        TimeElapsedColumn(),
    )
    console.print(f"{workers} workers on study [bold]{name}[/] ({settings.study_location()})")
    try:
        with Progress(*columns, console=console) as progress:
            task = progress.add_task(name, total=spec.trials, detail="")
            while any(p.poll() is None for p in procs):
                _update(progress, task, study, spec)
                time.sleep(1.0)
            _update(progress, task, study, spec)
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


def _update(progress: Progress, task: Any, study: Any, spec: StudySpec) -> None:
    summary = summarise(study, spec)
    states = summary.states
    detail = ", ".join(f"{states[s]} {s}" for s in ("running", "pruned", "fail") if states.get(s))
    best = "" if summary.best_value is None else f"; best {summary.best_value:.4g}"
    progress.update(task, completed=summary.finished, total=summary.budget, detail=detail + best)


def list_all(settings: Settings, as_json: bool) -> None:
    summaries = list_studies(settings)
    if as_json:
        print_json([s.as_data() for s in summaries])
        return
    if not summaries:
        console.print(f"no studies in {settings.study_location()}; create one with study create")
        return
    table = Table(title=f"studies in {settings.study_location()}")
    for column in ("study", "agent", "objective", "trials", "states", "best", "workers", "created"):
        table.add_column(column)
    for s in summaries:
        table.add_row(
            s.name,
            s.agent,
            f"{s.direction[:3]} {s.objective}",
            f"{s.finished}/{s.budget}",
            _states(s.states),
            "-" if s.best_value is None else f"{s.best_value:.4g} (#{s.best_trial})",
            str(len(s.workers)),
            s.created_at.strftime("%Y-%m-%d %H:%M") if s.created_at else "-",
        )
    console.print(table)


def _states(states: dict[str, int]) -> Text:
    text = Text()
    for state, count in sorted(states.items()):
        if text:
            text.append(" ")
        text.append(f"{count} {state}", style=STATE_STYLE.get(state, ""))
    return text


def show(settings: Settings, name: str, as_json: bool, limit: int = 50) -> None:
    study, spec = load_study(name, settings)
    trials = study.get_trials(deepcopy=False)
    summary = summarise(study, spec, trials)
    rows = trial_rows(trials)
    importances = parameter_importances(study)
    verdict = judge(trials)
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
            }
        )
        return
    _print_summary(summary)
    if limit:
        _print_trials(rows[-limit:], spec.search_space.parameters)
    if importances:
        table = Table(title="parameter importances (Optuna)")
        table.add_column("parameter")
        table.add_column("importance", justify="right")
        for parameter, value in importances.items():
            table.add_row(parameter, f"{value:.3f}")
        console.print(table)
    if verdict is not None:
        console.print(
            Text("study verdict: ", style="bold")
            + Text(verdict.summary(), style=LABEL_STYLE[verdict.label])
        )


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


def _print_trials(rows: Sequence[Any], parameters: dict[str, Any]) -> None:
    table = Table(title="trials")
    for column in ("#", "state", "value", "steps", "duration", "run", *parameters):
        table.add_column(column, overflow="fold")
    for row in rows:
        table.add_row(
            str(row.number),
            Text(row.state, style=STATE_STYLE.get(row.state, "")),
            "-" if row.value is None else f"{row.value:.4g}",
            "-" if row.last_step is None else f"{row.last_step:,}",
            duration(row.duration_seconds),
            (row.run_id or "-")[:8],
            *(_param(row.params.get(p)) for p in parameters),
        )
    console.print(table)


def _param(value: Any) -> str:
    if value is None:
        return "-"
    return f"{value:.3g}" if isinstance(value, float) else str(value)


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
