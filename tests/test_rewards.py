"""The rewards an agent can be paid (training.rewards), each on a hand-computed example, costs
included, and chosen by name from the config, the CLI and a study's search space."""

from __future__ import annotations

import numpy as np
import pytest

from agentic_trading.studies.space import SearchSpace
from agentic_trading.training.config import TrainingConfig
from agentic_trading.training.env import TradingEnv
from agentic_trading.training.features import FeatureScaler
from agentic_trading.training.rewards import (
    DifferentialSharpeReward,
    DrawdownPenalisedReward,
    NetReward,
    make_reward,
)


def test_the_net_reward_is_the_net_return_in_percent() -> None:
    assert NetReward()(0.0012, 1.0012) == pytest.approx(0.12)


def test_the_differential_sharpe_ratio_follows_moody_and_saffells_recursion() -> None:
    reward = DifferentialSharpeReward(eta=0.01)
    # Bar 1: no variance yet (A0 = B0 = 0): 0; then A1 = 0.0001, B1 = 0.000001.
    assert reward(0.01, 1.01) == 0.0
    assert (reward.a, reward.b) == pytest.approx((0.0001, 0.000001))
    # Bar 2: dA = -0.0201, dB = 0.000399, B1 - A1^2 = 9.9e-7:
    # D2 = (1e-6 * -0.0201 - 0.5 * 0.0001 * 0.000399) / (9.9e-7) ** 1.5 = -40.658...
    assert reward(-0.02, 0.99) == pytest.approx(-4.005e-8 / 9.9e-7**1.5)
    assert reward(-0.02, 0.99) != reward(0.03, 1.0)  # it moves with the returns
    reward.reset()
    assert (reward.a, reward.b) == (0.0, 0.0)


def test_the_drawdown_reward_charges_the_rise_of_the_drawdown() -> None:
    reward = DrawdownPenalisedReward(penalty=0.5)
    assert reward(0.10, 1.10) == pytest.approx(10.0)  # a new peak: no drawdown
    # Equity 0.99 against a peak of 1.10: drawdown 10 %, all of it new this bar.
    assert reward(-0.10, 0.99) == pytest.approx((-0.10 - 0.5 * 0.10) * 100)
    # Back up to 1.045: the drawdown shrinks (5 %), nothing is charged.
    assert reward(0.0556, 1.045) == pytest.approx(5.56)


def test_every_reward_pays_the_cost_of_a_trade() -> None:
    close = np.full(40, 1.1)  # a flat market: the only money moved is the cost
    for name in ("net", "drawdown"):
        env = TradingEnv(close, 5, FeatureScaler(0.0, 1.0), cost_pips=3, reward=make_reward(name))
        env.reset()
        _, paid, *_ = env.step(2)  # go long: pay 3 pips
        # drawdown (penalty 1): the cost, and the drawdown it opens below the starting equity
        assert paid == pytest.approx(-3 * 0.0001 / 1.1 * 100 * (2 if name == "drawdown" else 1))
    # The differential Sharpe ratio is fed net returns: the costs pull its moving mean down.
    for cost, below_zero in ((3, True), (0, False)):
        dsr = DifferentialSharpeReward()
        env = TradingEnv(close, 5, FeatureScaler(0.0, 1.0), cost_pips=cost, reward=dsr)
        env.reset()
        env.step(2)
        env.step(0)  # long, then short: two costs
        assert (dsr.a < 0) is below_zero


def test_the_reward_is_chosen_by_name_and_searched_like_any_field() -> None:
    assert TrainingConfig(reward="dsr").reward == "dsr"
    with pytest.raises(ValueError, match="reward"):
        TrainingConfig(reward="sharpe")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="reward 'sharpe' is not allowed"):
        make_reward("sharpe")
    space = SearchSpace.from_mapping({"reward": ["net", "dsr", "drawdown"]}, "PPO")
    assert space.parameters["reward"].choices == ("net", "dsr", "drawdown")
