"""A study: create it, open it, sum it up, list its trials, enqueue trials, judge its best.

A study is an Optuna study in ``STUDY_STORAGE`` plus our :class:`StudySpec` in its user
attributes; Optuna's dashboard pointed at the same storage shows the same study.
"""

from __future__ import annotations

import math
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from agentic_trading.config import Settings
from agentic_trading.evaluation.verdict import StudyVerdict, study_verdict
from agentic_trading.studies.attributes import VALIDATION_ATTRIBUTE, trial_info
from agentic_trading.studies.spec import DEFAULT_TIMESTEPS as SUGGESTED_TIMESTEPS
from agentic_trading.studies.spec import SPEC_ATTRIBUTE, StudySpec
from agentic_trading.studies.storage import StudyStorageError, import_optuna, open_storage

__all__ = [
    "StudyError",
    "StudyStorageError",
    "StudySummary",
    "TrialRow",
    "add_trials",
    "create_study",
    "delete_study",
    "enqueue_trials",
    "judge",
    "list_studies",
    "load_study",
    "make_pruner",
    "make_sampler",
    "parameter_importances",
    "summarise",
    "trial_rows",
]

#: Optuna trial states that count towards a study's budget.
FINISHED_STATES = ("COMPLETE", "PRUNED")


class StudyError(ValueError):
    """A study that cannot be created, found or changed; the message says why."""


def make_sampler(spec: StudySpec, seed: int | None = None) -> Any:
    """The spec's sampler: TPE (default) or random, seeded with ``seed``."""
    optuna = import_optuna()
    if spec.sampler == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    return optuna.samplers.TPESampler(seed=seed, n_startup_trials=min(10, max(2, spec.trials // 4)))


def make_pruner(spec: StudySpec) -> Any:
    """The spec's pruner; trials report their validation score every ``eval_every`` steps."""
    optuna = import_optuna()
    every = spec.evaluation_interval
    if spec.pruner == "median":
        startup = min(5, max(1, spec.trials // 5))
        return optuna.pruners.MedianPruner(n_startup_trials=startup)
    if spec.pruner == "successive_halving":
        return optuna.pruners.SuccessiveHalvingPruner(min_resource=every)
    if spec.pruner == "hyperband":
        return optuna.pruners.HyperbandPruner(min_resource=every, max_resource=spec.timesteps)
    return optuna.pruners.NopPruner()


def create_study(spec: StudySpec, settings: Settings) -> Any:
    """Create the study in ``STUDY_STORAGE``; :class:`StudyError` if its name is taken."""
    optuna = import_optuna()
    storage = open_storage(settings)
    try:
        study = optuna.create_study(
            study_name=spec.name,
            storage=storage,
            direction=spec.study_direction,
            sampler=make_sampler(spec, spec.seed),
            pruner=make_pruner(spec),
        )
    except optuna.exceptions.DuplicatedStudyError:
        raise StudyError(
            f"a study named {spec.name!r} already exists in {settings.study_location()}; "
            "choose another name, or add trials to it with study enqueue"
        ) from None
    try:
        study.set_user_attr(SPEC_ATTRIBUTE, spec.model_dump(mode="json"))
        study.set_user_attr(CREATED_ATTRIBUTE, time.time())
    except BaseException:
        optuna.delete_study(study_name=spec.name, storage=storage)  # nothing half-created
        raise
    return study


def load_study(name: str, settings: Settings, *, seed: int | None = None) -> tuple[Any, StudySpec]:
    """The study and its spec; :class:`StudyError` if there is none of that name."""
    optuna = import_optuna()
    storage = open_storage(settings)
    try:
        raw = optuna.load_study(study_name=name, storage=storage)
    except KeyError:
        known = [s.study_name for s in optuna.get_all_study_summaries(storage, False)]
        raise StudyError(
            f"no study {name!r} in {settings.study_location()}"
            + (f"; studies: {', '.join(known)}" if known else "; create one with study create")
        ) from None
    data = raw.user_attrs.get(SPEC_ATTRIBUTE)
    if not isinstance(data, dict):
        raise StudyError(
            f"study {name!r} was not created by agentic-trading (no {SPEC_ATTRIBUTE} spec); "
            "its trials cannot be run here"
        )
    spec = StudySpec.model_validate(data)
    study = optuna.load_study(
        study_name=name,
        storage=storage,
        sampler=make_sampler(spec, seed),
        pruner=make_pruner(spec),
    )
    return study, spec


def delete_study(name: str, settings: Settings) -> None:
    """Delete the study and its trials from the storage (tracked runs stay)."""
    optuna = import_optuna()
    try:
        optuna.delete_study(study_name=name, storage=open_storage(settings))
    except KeyError:
        raise StudyError(f"no study {name!r} in {settings.study_location()}") from None


@dataclass
class StudySummary:
    """A study at a glance: budget, trials per state, best value so far, workers active."""

    name: str
    agent: str
    objective: str
    direction: str
    budget: int
    timesteps: int
    states: dict[str, int]
    finished: int
    best_value: float | None
    best_trial: int | None
    workers: list[str]
    created_at: datetime | None
    spec: StudySpec | None = field(default=None, repr=False)

    def as_data(self) -> dict[str, Any]:
        """As JSON data (``study list --json``)."""
        return {
            "name": self.name,
            "agent": self.agent,
            "objective": self.objective,
            "direction": self.direction,
            "budget": self.budget,
            "timesteps": self.timesteps,
            "states": self.states,
            "finished": self.finished,
            "best_value": self.best_value,
            "best_trial": self.best_trial,
            "workers": self.workers,
            "created_at": self.created_at.isoformat() if self.created_at else None,
        }


def summarise(study: Any, spec: StudySpec, trials: list[Any] | None = None) -> StudySummary:
    """The summary of one study (``trials`` if already read)."""
    trials = study.get_trials(deepcopy=False) if trials is None else trials
    states = Counter(_state(t) for t in trials)
    best = _best(study, trials)
    running = [t for t in trials if t.state.name == "RUNNING"]
    starts = [t.datetime_start for t in trials if t.datetime_start is not None]
    created = study.user_attrs.get(CREATED_ATTRIBUTE)
    return StudySummary(
        name=spec.name,
        agent=spec.agent,
        objective=spec.objective,
        direction=spec.study_direction,
        budget=spec.trials,
        timesteps=spec.timesteps,
        states=dict(states),
        finished=states["complete"] + states["pruned"],
        best_value=None if best is None else best.value,
        best_trial=None if best is None else best.number,
        workers=sorted({str(trial_info(t).get("worker", "?")) for t in running}),
        created_at=datetime.fromtimestamp(created, UTC)
        if isinstance(created, int | float)
        else min(starts).astimezone(UTC)
        if starts
        else None,
        spec=spec,
    )


def _best(study: Any, trials: list[Any]) -> Any:
    complete = [t for t in trials if t.state.name == "COMPLETE" and t.value is not None]
    if not complete:
        return None
    pick = max if study.direction.name == "MAXIMIZE" else min
    return pick(complete, key=lambda t: t.value)


def list_studies(settings: Settings) -> list[StudySummary]:
    """Every study in ``STUDY_STORAGE`` that agentic-trading created."""
    optuna = import_optuna()
    storage = open_storage(settings)
    out = []
    for item in optuna.get_all_study_summaries(storage, include_best_trial=False):
        data = item.user_attrs.get(SPEC_ATTRIBUTE)
        if not isinstance(data, dict):
            continue
        study = optuna.load_study(study_name=item.study_name, storage=storage)
        out.append(summarise(study, StudySpec.model_validate(data)))
    return out


@dataclass
class TrialRow:
    """One trial as the study's tables show it."""

    number: int
    state: str
    value: float | None
    params: dict[str, Any]
    started_at: datetime | None
    completed_at: datetime | None
    run_id: str | None
    experiment_id: str | None
    worker: str | None
    last_step: int | None
    intermediate: dict[int, float]
    retry_of: int | None
    steps: int | None = None  # steps trained; the last pruning check for older trials

    @property
    def duration_seconds(self) -> float | None:
        """Seconds from start to end (or to now while running)."""
        if self.started_at is None:
            return None
        end = self.completed_at or datetime.now(self.started_at.tzinfo)
        return max(0.0, (end - self.started_at).total_seconds())

    def as_data(self) -> dict[str, Any]:
        """As JSON data."""
        return {
            "number": self.number,
            "state": self.state,
            "value": self.value,
            "params": self.params,
            "started_at": self.started_at.isoformat() if self.started_at else None,
            "completed_at": self.completed_at.isoformat() if self.completed_at else None,
            "duration_seconds": self.duration_seconds,
            "run_id": self.run_id,
            "experiment_id": self.experiment_id,
            "worker": self.worker,
            "retry_of": self.retry_of,
            "steps": self.steps,
            "intermediate_values": {str(k): v for k, v in self.intermediate.items()},
        }


#: When ``study create`` made the study (Unix seconds): studies made earlier read their
#: first trial's start.
CREATED_ATTRIBUTE = "created_at"


def trial_state(trial: Any) -> str:
    """Optuna's state in lower case; a trial whose training was stopped reads ``cancelled``
    (Optuna calls it failed), everywhere a trial's state is shown."""
    return _state(trial)


def _state(trial: Any) -> str:
    """Optuna's state in lower case; a trial whose training was stopped reads ``cancelled``."""
    state = str(trial.state.name.lower())
    if state == "fail" and trial_info(trial).get("status") == "cancelled":
        return "cancelled"
    return state


def trial_rows(trials: list[Any]) -> list[TrialRow]:
    """Every trial, in order, as rows."""
    rows = []
    for t in trials:
        intermediate = dict(t.intermediate_values)
        state = _state(t)
        info = trial_info(t)
        rows.append(
            TrialRow(
                number=t.number,
                state=state,
                value=t.value,
                # A queued trial's parameters are fixed in advance; Optuna sets them when it runs.
                params=dict(t.params or t.system_attrs.get("fixed_params") or {}),
                started_at=t.datetime_start,
                completed_at=t.datetime_complete,
                run_id=info.get("run_id"),
                experiment_id=info.get("experiment_id"),
                worker=info.get("worker"),
                last_step=max(intermediate) if intermediate else None,
                intermediate=intermediate,
                retry_of=t.system_attrs.get("failed_trial"),
                steps=_steps(info, intermediate),
            )
        )
    return rows


def _steps(info: dict[str, Any], intermediate: dict[int, float]) -> int | None:
    steps = info.get("steps")
    if isinstance(steps, int):
        return steps
    return max(intermediate) if intermediate else None


def enqueue_trials(
    name: str, params: dict[str, Any], settings: Settings, count: int = 1
) -> list[int]:
    """Queue ``count`` trials with fixed ``params`` (``seed`` sets the training's seed); the
    study's budget grows by ``count`` so that workers run them. Returns the trial numbers."""
    if not 1 <= count <= 1000:
        raise StudyError(f"count must be from 1 to 1000, got {count}")
    study, spec = load_study(name, settings)
    seed = params.pop("seed", None)
    space = spec.search_space
    unknown = set(params) - set(space.parameters)
    if unknown:
        raise StudyError(
            f"parameter(s) {', '.join(sorted(unknown))} are not searched by study {name!r}; "
            f"it searches {', '.join(space.parameters)} (and seed)"
        )
    config = spec.training_config({**space.fixed, **params})  # the training accepts them
    del config
    attrs = {} if seed is None else {"seed": int(seed)}
    for _ in range(count):
        study.enqueue_trial(params, user_attrs=attrs, skip_if_exists=False)
    waiting = [t.number for t in study.get_trials(deepcopy=False) if t.state.name == "WAITING"]
    add_trials(name, count, settings)
    return waiting[-count:]


def add_trials(name: str, count: int, settings: Settings) -> int:
    """Grow the study's budget by ``count`` trials (the sampler picks their parameters);
    returns the new budget. Running workers take them up; others must be started."""
    if isinstance(count, bool) or not isinstance(count, int) or not 1 <= count <= 10_000:
        raise StudyError(f"count must be a whole number from 1 to 10,000, got {count!r}")
    study, spec = load_study(name, settings)
    data = study.user_attrs.get(SPEC_ATTRIBUTE)
    budget = int(data["trials"]) if isinstance(data, dict) else spec.trials
    bigger = spec.model_copy(update={"trials": budget + count})
    study.set_user_attr(SPEC_ATTRIBUTE, bigger.model_dump(mode="json"))
    return budget + count


def judge(trials: list[Any], blocks: int = 16) -> StudyVerdict | None:
    """The study's verdict: DSR of the best trial against every trial tried, PBO over the
    complete trials' validation returns. ``None`` before any trial completed."""
    returns = {
        str(t.number): record["returns"]
        for t in trials
        if t.state.name == "COMPLETE"
        and isinstance(record := t.user_attrs.get(VALIDATION_ATTRIBUTE), dict)
        and isinstance(record.get("returns"), list)
    }
    if not returns:
        return None
    states = Counter(_state(t) for t in trials if t.state.name in ("COMPLETE", "PRUNED", "FAIL"))
    words = ", ".join(f"{states[s]} {s}" for s in STATE_ORDER if states.get(s))
    tried = sum(states.values())
    return study_verdict(returns, blocks=blocks, trials=max(tried, len(returns)), tried=words)


def trial_warnings(trials: list[Any], timesteps: int) -> str | None:
    """Words on complete trials whose policy churned or held one position on the validation
    bars, with what to do about it; ``None`` when none did."""
    warnings = [
        str(record["warning"])
        for t in trials
        if t.state.name == "COMPLETE"
        and isinstance(record := t.user_attrs.get(VALIDATION_ATTRIBUTE), dict)
        and record.get("warning")
    ]
    if not warnings:
        return None
    complete = sum(t.state.name == "COMPLETE" for t in trials)
    churn = sum(w.startswith("it churns") for w in warnings)
    parts = []
    if churn:
        parts.append(f"{churn} churn (costs above their gain before costs)")
    if len(warnings) > churn:
        parts.append(f"{len(warnings) - churn} hold one position (degenerate)")
    text = f"{' and '.join(parts)} of {complete} complete trials on validation bars"
    if timesteps < SUGGESTED_TIMESTEPS:
        text += (
            f"; trials of {timesteps:,} steps may be too short to learn: try --timesteps "
            f"{SUGGESTED_TIMESTEPS:,} (docs/benchmark.md)"
        )
    return text


#: Trial states in the order a study's counts list them.
STATE_ORDER = ("running", "waiting", "complete", "pruned", "cancelled", "fail")


def ordered_states(states: dict[str, int]) -> list[tuple[str, int]]:
    """``states`` (state -> count) in ``STATE_ORDER``, others after them."""
    rank = {state: i for i, state in enumerate(STATE_ORDER)}
    return sorted(states.items(), key=lambda item: (rank.get(item[0], len(rank)), item[0]))


def parameter_importances(study: Any) -> dict[str, float]:
    """Optuna's own parameter importances; empty until two trials completed."""
    optuna = import_optuna()
    complete = [t for t in study.get_trials(deepcopy=False) if t.state.name == "COMPLETE"]
    if len(complete) < 2:
        return {}
    try:
        found = optuna.importance.get_param_importances(study)
    except (RuntimeError, ValueError, ZeroDivisionError):
        return {}
    return {k: float(v) for k, v in found.items() if math.isfinite(v)}
