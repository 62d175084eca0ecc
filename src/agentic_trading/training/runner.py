"""One training from start to finish: data, agent, live + tracked learning, held-out evaluation."""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from agentic_trading.config import Settings, get_settings
from agentic_trading.status import ExperimentStatus
from agentic_trading.training.agents import make_agent
from agentic_trading.training.callbacks import ExperimentCallback
from agentic_trading.training.config import TrainingConfig
from agentic_trading.training.data import PriceSplit, load_prices, split_prices
from agentic_trading.training.env import make_env
from agentic_trading.training.evaluation import TradingResult, buy_and_hold, trading_result

__all__ = ["TrainingOutcome", "evaluate", "train"]

#: Final metrics of the agent on the held-out window; the baseline's get a ``buy_and_hold_`` prefix.
RESULT_METRICS = (
    "total_reward",
    "total_profit",
    "win_rate",
    "sharpe_ratio",
    "max_drawdown",
    "n_trades",
)


@dataclass
class TrainingOutcome:
    """What a training produced: ids, final status, held-out results against buy-and-hold."""

    experiment_id: str
    run_id: str | None
    experiment_name: str
    status: ExperimentStatus
    agent: TradingResult = field(default_factory=dict)
    baseline: TradingResult = field(default_factory=dict)
    model_uri: str | None = None
    data: dict[str, Any] = field(default_factory=dict)
    final_metrics: dict[str, float] = field(default_factory=dict)


def evaluate(
    model: Any, split: PriceSplit
) -> tuple[TradingResult, np.ndarray, TradingResult, np.ndarray]:
    """The trained policy (deterministic) and buy-and-hold on the held-out bars."""
    from gym_anytrading.envs import Positions

    env = make_env(split.evaluation, split.window_size)
    observation, _ = env.reset(seed=0)
    done = False
    while not done:
        action, _ = model.predict(observation, deterministic=True)
        observation, _, terminated, truncated, _ = env.step(int(action))
        done = terminated or truncated
    inner = env.unwrapped
    held = inner._position_history[inner._start_tick : inner._end_tick]
    positions = np.array([1.0 if p == Positions.Long else -1.0 for p in held])
    close = np.asarray(inner.prices[inner._start_tick :], dtype=float)
    agent, agent_equity = trading_result(close, positions)
    baseline, baseline_equity = buy_and_hold(close)
    return agent, agent_equity, baseline, baseline_equity


def train(
    config: TrainingConfig,
    experiment_name: str | None = None,
    *,
    experiment_id: str | None = None,
    settings: Settings | None = None,
    progress_every: int = 100,
    log_every: int = 1000,
    on_start: Callable[[ExperimentCallback], None] | None = None,
) -> TrainingOutcome:
    """Train ``config``'s agent on the training bars, evaluate it on the held-out bars.

    Live state goes to messaging and the record to tracking through an
    :class:`ExperimentCallback`; final metrics, both equity curves and the model (artifact
    ``model.zip``) are tracked. A stop request or Ctrl-C records ``cancelled``; an exception
    records ``failed`` and is raised again.
    """
    (settings or get_settings()).check_artifact_store()  # before hours of training, not after
    frame = load_prices(config.pair, config.data)
    split = split_prices(frame, config.window_size, config.train_fraction)
    env = make_env(split.training, config.window_size)
    model = make_agent(config, env)
    name = experiment_name or f"{config.agent_type}_{config.pair}"
    callback = ExperimentCallback(
        name,
        {**config.model_dump(), **{f"data_{k}": v for k, v in split.describe().items()}},
        experiment_id,
        progress_every,
        log_every,
        finish_on_end=False,
        settings=settings,
    )
    if on_start is not None:
        on_start(callback)
    outcome = TrainingOutcome(callback.experiment_id, None, name, ExperimentStatus.RUNNING)
    outcome.data = split.describe()
    with callback:
        model.learn(config.timesteps, callback=callback)
        outcome.run_id = callback.run.run_id if callback.run else None
        if callback.status is ExperimentStatus.CANCELLED:
            outcome.status = callback.status
            return outcome
        agent, agent_equity, baseline, baseline_equity = evaluate(model, split)
        assert callback.tracker is not None and callback.run is not None
        for step, (ours, theirs) in enumerate(zip(agent_equity, baseline_equity, strict=True)):
            callback.tracker.log_metrics(
                callback.run, {"eval_equity": ours, "eval_buy_and_hold_equity": theirs}, step=step
            )
        with tempfile.TemporaryDirectory() as folder:
            path = Path(folder) / "model.zip"
            model.save(path)
            outcome.model_uri = callback.tracker.log_artifact(callback.run, path, "model.zip")
        final = {**agent, **{f"buy_and_hold_{k}": v for k, v in baseline.items()}}
        final["excess_profit"] = agent["total_profit"] - baseline["total_profit"]
        callback.complete(final)
    outcome.status = callback.status
    outcome.agent, outcome.baseline, outcome.final_metrics = agent, baseline, final
    return outcome
