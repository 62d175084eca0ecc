"""One training from start to finish: data, agent, live + tracked learning, validation and test.

The agent learns on the training bars only; the validation bars score it for choosing and
pruning (studies); the test bars are scored once, for the verdict against buy-and-hold.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from agentic_trading.config import Settings, get_settings
from agentic_trading.evaluation.trading import TradingRecord, buy_and_hold, trade_positions
from agentic_trading.evaluation.verdict import RunVerdict, run_verdict
from agentic_trading.status import ExperimentStatus
from agentic_trading.tracking import TrackingError
from agentic_trading.training.agents import make_agent
from agentic_trading.training.callbacks import ExperimentCallback
from agentic_trading.training.config import TrainingConfig
from agentic_trading.training.data import PriceSplit, Window, data_file, load_prices, walk_forward
from agentic_trading.training.env import ACTION_POSITIONS, TradingEnv
from agentic_trading.training.features import FeatureScaler
from agentic_trading.training.rewards import make_reward

__all__ = [
    "RESULT_METRICS",
    "CallbackFactory",
    "TrainingOutcome",
    "TrainingSession",
    "prepare",
    "run_policy",
    "train",
]

#: Trading metrics of the agent on the test bars shown first; the baseline's get a
#: ``buy_and_hold_`` prefix and the validation bars' a ``validation_`` prefix.
RESULT_METRICS = (
    "total_reward",
    "total_profit",
    "sharpe_ratio",
    "sortino_ratio",
    "max_drawdown",
    "n_trades",
    "win_rate",
    "turnover",
    "exposure",
)


@dataclass
class TrainingOutcome:
    """What a training produced: ids, final status, test results against buy-and-hold, the
    validation results, and the verdict. ``record_errors`` says what of it tracking could not
    record (the results stand)."""

    experiment_id: str
    run_id: str | None
    experiment_name: str
    status: ExperimentStatus
    fold: int = 0
    seed: int = 0
    training_seconds: float = 0.0
    steps: int = 0  # the steps trained (fewer than asked when stopped or pruned)
    agent: dict[str, float] = field(default_factory=dict)
    baseline: dict[str, float] = field(default_factory=dict)
    validation: dict[str, float] = field(default_factory=dict)
    verdict: RunVerdict | None = None
    model_uri: str | None = None
    data: dict[str, Any] = field(default_factory=dict)
    final_metrics: dict[str, float] = field(default_factory=dict)
    record_errors: list[str] = field(default_factory=list)
    test_record: TradingRecord | None = None
    baseline_record: TradingRecord | None = None
    validation_record: TradingRecord | None = None


@dataclass(frozen=True)
class TrainingSession:
    """What callbacks made for one training may need: its config, split, frozen features and
    the :class:`ExperimentCallback` that reports it."""

    config: TrainingConfig
    split: PriceSplit
    scaler: FeatureScaler
    experiment: ExperimentCallback

    def validation(self, model: Any) -> TradingRecord:
        """``model``'s deterministic policy on the validation bars, as it is now."""
        return run_policy(model, self.split.validation, self.config, self.scaler)


#: Extra callbacks for ``learn``: a list, or a function of the session that makes them.
CallbackFactory = Callable[[TrainingSession], Sequence[Any]]


@dataclass(frozen=True)
class Prepared:
    """A split, its frozen feature scaler and the training environment."""

    split: PriceSplit
    scaler: FeatureScaler
    env: TradingEnv
    #: The bars' file, pair, first and last bar and count: the run's environment records them.
    data: dict[str, Any]


def prepare(config: TrainingConfig) -> Prepared:
    """Load the bars, split them (``config.fold`` of ``config.folds``), fit the features on the
    training bars and build the training environment."""
    frame = load_prices(config.pair, config.data)
    split = walk_forward(
        frame,
        config.history,
        config.folds,
        config.validation_fraction,
        config.held_out_fraction,
    )[config.fold]
    scaler = config.feature_set.fit(split.training.frame, split.training.start)
    data = {
        "path": str(data_file(config.pair, config.data)),
        "pair": config.pair,
        "first_bar": str(frame.index[0]),
        "last_bar": str(frame.index[-1]),
        "bars": len(frame),
    }
    return Prepared(split, scaler, window_env(split.training, config, scaler), data)


def window_env(window: Window, config: TrainingConfig, scaler: FeatureScaler) -> TradingEnv:
    """The trading environment over ``window``'s bars, features scaled by ``scaler``."""
    features = config.feature_set
    return TradingEnv(
        window.close,
        config.window_size,
        scaler,
        start=window.start,
        cost_pips=config.cost_pips,
        pip_size=config.pip_size,
        reward=make_reward(config.reward, drawdown_penalty=config.drawdown_penalty),
        market=features.market(window.frame, scaler),
        held=features.held,
        continuous=config.continuous,
    )


def run_policy(
    model: Any, window: Window, config: TrainingConfig, scaler: FeatureScaler
) -> TradingRecord:
    """The trained policy (deterministic) trading ``window``'s bars, after costs.

    Stepping the environment with ``model.predict`` bar by bar. When an observation is only the
    bar's features and the position held (three positions), in one batch: the policy is asked
    once for every (bar, position) and the path is then followed.
    """
    env = window_env(window, config, scaler)
    if not env.path_independent:
        observation, _ = env.reset()
        done = False
        while not done:
            action, _ = model.predict(observation, deterministic=True)
            observation, _, done, _, _ = env.step(action)
        return trade_positions(
            env.prices[env.start :], env.positions, config.cost_pips, config.pip_size
        )
    batch = np.concatenate([env.observations(p) for p in ACTION_POSITIONS])
    actions, _ = model.predict(batch, deterministic=True)
    table = np.asarray(actions, dtype=int).reshape(len(ACTION_POSITIONS), env.decisions)
    held = ACTION_POSITIONS.index(0.0)  # flat before the first bar
    positions = np.empty(env.decisions)
    for i in range(env.decisions):
        held = int(table[held, i])
        positions[i] = ACTION_POSITIONS[held]
    return trade_positions(env.prices[env.start :], positions, config.cost_pips, config.pip_size)


def train(
    config: TrainingConfig,
    experiment_name: str | None = None,
    *,
    experiment_id: str | None = None,
    settings: Settings | None = None,
    progress_every: int = 100,
    log_every: int = 1000,
    extra_config: Mapping[str, Any] | None = None,
    callbacks: Sequence[Any] | CallbackFactory = (),
    on_start: Callable[[ExperimentCallback], None] | None = None,
) -> TrainingOutcome:
    """Train ``config``'s agent on the training bars, score it on validation and test bars.

    Live state goes to messaging and the record to tracking through an
    :class:`ExperimentCallback`; final metrics (test, buy-and-hold, validation, verdict), both
    test equity curves and the model (artifact ``model.zip``) are tracked, the verdict's words as
    the run's ``verdict`` attribute. ``callbacks`` run beside it: a list, or a function of the
    :class:`TrainingSession` that makes them (a study's pruner scores validation bars). A stop
    request or Ctrl-C records ``cancelled``, a pruner ``pruned``; an exception records
    ``failed`` and is raised again.
    """
    (settings or get_settings()).check_artifact_store()  # before hours of training, not after
    prepared = prepare(config)
    split, scaler = prepared.split, prepared.scaler
    model = make_agent(config, prepared.env)
    name = experiment_name or f"{config.agent_type}_{config.pair}"
    run_config = {
        **config.model_dump(),
        "test_fraction": config.held_out_fraction,
        **scaler.as_config(),
        **{f"data_{k}": v for k, v in split.describe().items()},
        **(extra_config or {}),
    }
    callback = ExperimentCallback(
        name,
        run_config,
        experiment_id,
        progress_every,
        log_every,
        finish_on_end=False,
        settings=settings,
        exit_on_signal=False,  # the caller decides (the CLI exits 143 after its results)
        environment={"data": prepared.data, "seeds": {"seed": config.seed}},
    )
    if on_start is not None:
        on_start(callback)
    outcome = TrainingOutcome(
        callback.experiment_id, None, name, ExperimentStatus.RUNNING, config.fold, config.seed
    )
    outcome.data = split.describe()
    extra = (
        callbacks(TrainingSession(config, split, scaler, callback))
        if callable(callbacks)
        else callbacks
    )
    with callback:
        started = time.perf_counter()
        model.learn(config.timesteps, callback=[callback, *extra])
        outcome.training_seconds = time.perf_counter() - started
        outcome.steps = int(model.num_timesteps)
        outcome.run_id = callback.run.run_id if callback.run else None
        if callback.status is not ExperimentStatus.RUNNING:
            outcome.status = callback.status  # cancelled, or pruned by a study
            return outcome
        _score(outcome, model, split, config, scaler)
        _record(outcome, model, callback)
        callback.complete(outcome.final_metrics)
    outcome.status = callback.status
    outcome.record_errors = list(callback.record_errors)
    return outcome


def _record(outcome: TrainingOutcome, model: Any, callback: ExperimentCallback) -> None:
    """Track the test equity curves, the model and the verdict's words. Tracking that fails (a
    full disk, a stuck writer) is noted on the callback; the results stand."""
    assert callback.tracker is not None and callback.run is not None
    assert outcome.test_record is not None and outcome.baseline_record is not None
    assert outcome.verdict is not None
    tracker, run = callback.tracker, callback.run
    for step, (ours, theirs) in enumerate(
        zip(outcome.test_record.equity, outcome.baseline_record.equity, strict=True)
    ):
        tracker.log_metrics(
            run, {"eval_equity": ours, "eval_buy_and_hold_equity": theirs}, step=step
        )
    try:
        with tempfile.TemporaryDirectory() as folder:
            path = Path(folder) / "model.zip"
            model.save(path)
            outcome.model_uri = tracker.log_artifact(run, path, "model.zip")
    except (TrackingError, OSError) as exc:
        callback.note_record_error(f"the model was not stored: {exc}")
    try:
        tracker.log_params(run, outcome.verdict.attributes())
    except TrackingError as exc:
        callback.note_record_error(f"the verdict was not stored: {exc}")


def _score(
    outcome: TrainingOutcome,
    model: Any,
    split: PriceSplit,
    config: TrainingConfig,
    scaler: FeatureScaler,
) -> None:
    validation = run_policy(model, split.validation, config, scaler)
    validation_baseline = buy_and_hold(
        split.validation.close[split.validation.start :], config.cost_pips, config.pip_size
    )
    test = run_policy(model, split.test, config, scaler)
    baseline = buy_and_hold(split.test.close[split.test.start :], config.cost_pips, config.pip_size)
    verdict = run_verdict(test, baseline)
    outcome.agent, outcome.baseline = test.metrics(), baseline.metrics()
    outcome.validation = validation.metrics()
    outcome.validation["excess_sharpe"] = (
        outcome.validation["sharpe_ratio"] - validation_baseline.metrics()["sharpe_ratio"]
    )
    outcome.verdict = verdict
    outcome.test_record, outcome.baseline_record = test, baseline
    outcome.validation_record = validation
    outcome.final_metrics = {
        **outcome.agent,
        **{f"buy_and_hold_{k}": v for k, v in outcome.baseline.items()},
        **{f"validation_{k}": v for k, v in outcome.validation.items()},
        **verdict.figures(),
    }
