"""Feature sets: each feature reads only the past, scaling is fitted on training bars and frozen,
bars held follow the path, continuous positions trade after costs, and bad names are refused."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from agentic_trading.evaluation.trading import trade_positions
from agentic_trading.evaluation.verdict import churning_policy
from agentic_trading.training import TrainingConfig
from agentic_trading.training.data import load_prices
from agentic_trading.training.features import (
    FEATURE_BLOCKS,
    FEATURE_SETS,
    HELD_CAP,
    FeatureScaler,
    FeatureSet,
)
from agentic_trading.training.runner import prepare, run_policy, window_env
from tests.conftest import make_settings
from tests.trainings import CLI

CHANGED_FROM = 700


def _frames() -> tuple[pd.DataFrame, pd.DataFrame]:
    """The bundled bars, and the same bars with every bar from CHANGED_FROM rewritten: other
    prices and other times."""
    frame = load_prices().iloc[:1200].copy()
    other = frame.copy()
    future = slice(CHANGED_FROM, None)
    other.iloc[future, other.columns.get_loc("Close")] *= np.linspace(1.02, 1.3, 500)
    index = other.index.to_series()
    index.iloc[future] = index.iloc[future] + pd.Timedelta(hours=7)
    other.index = pd.DatetimeIndex(index)
    return frame, other


@pytest.mark.parametrize("block", [b for b in FEATURE_BLOCKS if b != "held"])
def test_each_feature_of_a_bar_reads_only_bars_up_to_it(block: str) -> None:
    frame, other = _frames()
    features = FeatureSet.parse(block, window_size=10)
    scaler = features.fit(frame.iloc[:600], features.history)
    seen = [features.market(f, scaler) for f in (frame, other)]
    assert np.array_equal(seen[0][:CHANGED_FROM], seen[1][:CHANGED_FROM])
    # ... and it does read the bar itself (or this test could not fail).
    assert not np.allclose(seen[0][CHANGED_FROM:], seen[1][CHANGED_FROM:])


def test_standard_features_are_whole_after_their_history_and_scaled_on_training_bars() -> None:
    config = TrainingConfig(features="standard", timesteps=100)
    assert config.history == FeatureSet.parse("standard").history > config.window_size
    prepared = prepare(config)
    training = prepared.split.training
    assert training.start == config.history
    raw = config.feature_set.raw(training.frame)
    for column, values in raw.items():
        fitted = values[training.start : -1]
        assert np.isfinite(fitted).all(), column  # the history made every column whole
        assert prepared.scaler.columns[column] == pytest.approx((fitted.mean(), fitted.std()))
    # Validation and test bars are scaled with the training bars' statistics, not their own.
    test = prepared.split.test
    rows = config.feature_set.market(test.frame, prepared.scaler)
    column = config.feature_set.columns().index("volatility")
    mean, std = prepared.scaler.columns["volatility"]
    expected = (config.feature_set.raw(test.frame)["volatility"] - mean) / std
    assert rows[test.start :, column] == pytest.approx(expected[test.start :], rel=1e-5)
    assert prepared.env.observation_space.shape == (len(config.feature_set.columns()),)
    # The run records what a saved model needs to see the market the same way.
    restored = FeatureScaler.from_config(prepared.scaler.as_config())
    assert restored == prepared.scaler


def test_bars_held_count_up_and_reset_when_the_position_changes() -> None:
    config = TrainingConfig(features="returns,held", timesteps=100)
    prepared = prepare(config)
    env = prepared.env
    observation, _ = env.reset()
    held = []
    for action in (2, 2, 2, 0, 0, 1, 1, 1, 1):
        observation, *_ = env.step(action)
        held.append(round(float(observation[-2]) * HELD_CAP))
    assert held == [1, 2, 3, 1, 2, 1, 2, 3, 4]
    assert env.positions == [1.0, 1.0, 1.0, -1.0, -1.0, 0.0, 0.0, 0.0, 0.0]


class _Alternating:
    """A policy that flips between long and short each time it is asked."""

    def __init__(self) -> None:
        self.calls = 0

    def predict(self, observation: Any, deterministic: bool = True) -> tuple[Any, None]:
        self.calls += 1
        return np.array([1.0 if self.calls % 2 else -1.0], dtype=np.float32), None


def test_a_continuous_position_pays_costs_on_its_change_and_is_judged_as_it_trades() -> None:
    config = TrainingConfig(agent_type="SAC", timesteps=100, fee_pips=3.0)
    prepared = prepare(config)
    env = window_env(prepared.split.validation, config, prepared.scaler)
    assert env.action_space.shape == (1,) and not env.path_independent
    env.reset()
    _, _, _, _, info = env.step(np.array([0.25]))
    t = env.start
    expected = 0.25 * (env.prices[t + 1] / env.prices[t] - 1) - 0.25 * 3e-4 / env.prices[t]
    assert info["equity"] == pytest.approx(1 + expected)
    _, _, _, _, info = env.step(np.array([7.0]))  # clipped to a full long
    assert info["position"] == 1.0
    record = run_policy(_Alternating(), prepared.split.validation, config, prepared.scaler)
    window = prepared.split.validation
    positions = [1.0 if i % 2 == 0 else -1.0 for i in range(window.bars)]
    same = trade_positions(window.close[window.start :], positions, 3.0)
    assert record.returns == pytest.approx(same.returns)
    assert churning_policy(record) is not None  # trading every bar for nothing churns


def test_feature_names_are_checked_and_written_the_canonical_way() -> None:
    assert TrainingConfig(features="horizons,volatility,macd,rsi,time,held").features == "standard"
    assert TrainingConfig(features=" Returns , rsi ").features == "returns,rsi"
    assert FeatureSet.parse("standard,returns").names == (*FEATURE_SETS["standard"], "returns")
    with pytest.raises(ValueError, match=r"unknown feature 'momentum'.*standard.*horizons"):
        TrainingConfig(features="returns,momentum")
    with pytest.raises(ValueError, match="at least one block of market data"):
        TrainingConfig(features="held")


def test_cli_names_a_bad_feature_set_without_a_traceback() -> None:
    done = subprocess.run(
        [*CLI, "train", "--features", "standrad", "--timesteps", "100"],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 2, done.stderr
    assert "unknown feature 'standrad'" in done.stderr and "Traceback" not in done.stderr


def test_a_continuous_action_agent_trains_is_tracked_judged_and_loads_from_the_registry(
    tmp_path: Path,
) -> None:
    from agentic_trading.models import get_model_registry, load_model
    from agentic_trading.status import ExperimentStatus
    from agentic_trading.tracking import get_sync_experiment_repository
    from agentic_trading.training import train

    settings = make_settings(message_broker_type="memory", ml_storage_path=str(tmp_path / "aim"))
    config = TrainingConfig(agent_type="td3", features="standard", timesteps=300, batch_size=32)
    outcome = train(config, "continuous", settings=settings)
    assert outcome.status is ExperimentStatus.COMPLETED and outcome.verdict is not None
    assert outcome.test_record is not None
    assert ((outcome.test_record.positions >= -1) & (outcome.test_record.positions <= 1)).all()
    run = get_sync_experiment_repository(settings).get_run(str(outcome.run_id))
    assert run.config["agent_type"] == "TD3" and run.config["features"] == "standard"
    assert set(run.config["feature_scaling"]) >= {"rsi", "macd", "volatility"}
    assert run.params["verdict_label"] == outcome.verdict.label

    get_model_registry(settings).register(str(outcome.run_id), "EURUSD-TD3")
    loaded = load_model("EURUSD-TD3", settings)
    bars = load_prices()
    closes, times = bars["Close"].to_numpy(), bars.index
    position = loaded.act(closes, 0.5, times=times, bars_held=3)
    assert isinstance(position, float) and -1.0 <= position <= 1.0
    # The model sees what it saw in training: the last test decision's observation.
    env = window_env(prepare(config).split.test, config, FeatureScaler.from_config(run.config))
    env.reset()
    for _ in range(env.decisions - 1):
        env.step(np.array([0.5]))
    last = env._observation()
    assert loaded.observation(
        closes[:-1], 0.5, times=times[:-1], bars_held=last[-2] * HELD_CAP
    ) == (pytest.approx(last, abs=1e-5))
    with pytest.raises(ValueError, match="pass the bars' times"):
        loaded.act(closes)
