"""Trustworthy verdicts: statistics against known answers, costs, leakage, controls, groups."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from agentic_trading.config import Settings
from agentic_trading.evaluation import statistics as st
from agentic_trading.evaluation.trading import break_even_cost_pips, buy_and_hold, trade_positions
from agentic_trading.evaluation.verdict import (
    GroupMember,
    degenerate_policy,
    group_verdict,
    run_verdict,
    study_verdict,
)
from agentic_trading.status import ExperimentStatus
from agentic_trading.tracking import get_sync_experiment_repository
from agentic_trading.training import TrainingConfig, load_prices, train
from agentic_trading.training.data import walk_forward
from agentic_trading.training.features import FeatureScaler
from agentic_trading.training.runner import prepare
from agentic_trading.training.walk_forward import train_group
from tests.conftest import make_settings

CLI = [sys.executable, "-m", "agentic_trading.cli.app"]

# --- statistics: known answers ----------------------------------------------------------------


def test_deflated_sharpe_ratio_reproduces_the_papers_example() -> None:
    # Bailey & Lopez de Prado (2014), section 4: annual SR 2.5 over 1,250 daily returns, 100
    # trials whose annual Sharpes have variance 0.5, skew -3, kurtosis 10.
    per_day = 2.5 / math.sqrt(250)
    variance = 0.5 / 250
    assert st.expected_maximum_sharpe(100, variance) == pytest.approx(0.1132, abs=5e-5)
    dsr = st.deflated_sharpe_ratio(per_day, 1250, 100, variance, skew=-3, kurt=10)
    assert dsr == pytest.approx(0.9004, abs=5e-5)


def test_expected_maximum_of_normals_by_the_papers_approximation() -> None:
    assert st.expected_maximum_of_normals(10) == pytest.approx(1.5746, abs=5e-5)
    assert st.expected_maximum_of_normals(100) == pytest.approx(2.5306, abs=5e-5)
    assert st.expected_maximum_of_normals(1) == 0.0
    rng = np.random.default_rng(0)  # and the approximation is close to the truth
    simulated = rng.standard_normal((20_000, 100)).max(axis=1).mean()
    assert st.expected_maximum_of_normals(100) == pytest.approx(simulated, abs=0.03)


def test_probabilistic_sharpe_ratio_properties() -> None:
    rng = np.random.default_rng(1)
    returns = rng.normal(0.0005, 0.01, 2000)
    sr = st.sharpe_ratio(returns)
    skew, kurt = st.skewness(returns), st.kurtosis(returns)
    assert st.probabilistic_sharpe_ratio(sr, sr, len(returns), skew, kurt) == 0.5
    scaled = returns * 37.0
    assert st.probabilistic_sharpe_ratio(
        st.sharpe_ratio(scaled), 0.0, len(scaled), st.skewness(scaled), st.kurtosis(scaled)
    ) == pytest.approx(st.probabilistic_sharpe_ratio(sr, 0.0, len(returns), skew, kurt), rel=1e-12)
    # More evidence for the same Sharpe ratio: more confidence.
    assert st.probabilistic_sharpe_ratio(0.05, 0, 4000) > st.probabilistic_sharpe_ratio(
        0.05, 0, 400
    )
    # Negative skew and fat tails make the same Sharpe ratio less convincing.
    assert st.probabilistic_sharpe_ratio(0.05, 0, 1000, -2, 9) < st.probabilistic_sharpe_ratio(
        0.05, 0, 1000
    )


def test_minimum_track_record_length_of_annual_sharpe_one_on_hourly_bars() -> None:
    per_bar = 1 / math.sqrt(st.HOURS_PER_YEAR)
    assert round(st.minimum_track_record_length(per_bar)) == 16_885
    assert st.minimum_track_record_length(-0.01) == math.inf
    # At exactly MinTRL bars, PSR equals the confidence asked for.
    trl = st.minimum_track_record_length(0.05, 0.01, -1, 6, 0.9)
    assert st.probabilistic_sharpe_ratio(0.05, 0.01, round(trl), -1, 6) == pytest.approx(
        0.9, abs=1e-3
    )


def test_moments_ratios_and_drawdown_by_hand() -> None:
    normal = np.random.default_rng(2).standard_normal(200_000)
    assert st.kurtosis(normal) == pytest.approx(3.0, abs=0.05)  # non-excess
    assert st.skewness(normal) == pytest.approx(0.0, abs=0.02)
    r = np.array([0.01, -0.02, 0.03, 0.0])
    assert st.sharpe_ratio(r) == pytest.approx(r.mean() / r.std(ddof=1))
    assert st.sortino_ratio(r) == pytest.approx(r.mean() / math.sqrt(0.02**2 / 4))
    assert st.max_drawdown([1.0, 1.2, 0.9, 1.3, 1.04]) == pytest.approx(0.25)
    assert st.annualise(0.01) == pytest.approx(0.01 * math.sqrt(6240))


def test_interquartile_mean_and_stratified_bootstrap() -> None:
    assert st.interquartile_mean([1, 2, 3, 4, 5, 6, 7, 100]) == pytest.approx(4.5)
    assert st.interquartile_mean([3.0]) == 3.0
    strata = [np.random.default_rng(i).normal(i, 1, 5) for i in range(4)]
    first = st.stratified_bootstrap_ci(strata, seed=3)
    assert first == st.stratified_bootstrap_ci(strata, seed=3)  # reproducible bit for bit
    assert first.low <= first.estimate <= first.high
    assert first != st.stratified_bootstrap_ci(strata, seed=4)
    # Every resample keeps each stratum's size: one value per stratum leaves nothing to vary.
    fixed = st.stratified_bootstrap_ci([[1.0], [2.0], [6.0]], statistic=np.mean)
    assert fixed.low == fixed.high == pytest.approx(3.0)


def test_probability_of_backtest_overfitting() -> None:
    rng = np.random.default_rng(5)
    noise = rng.normal(0, 0.01, (960, 20))
    luck = st.probability_of_backtest_overfitting(noise, blocks=8)
    assert luck.splits == 70 and len(luck.logits) == 70
    # Skill-less trials: the in-sample winner is a coin flip out of sample. One study's PBO
    # varies widely (its splits share data); over many studies it averages one half.
    many = [
        st.probability_of_backtest_overfitting(rng.normal(0, 0.01, (320, 20)), blocks=8).pbo
        for _ in range(40)
    ]
    assert 0.4 <= float(np.mean(many)) <= 0.6
    planted = noise.copy()
    planted[:, 7] += 0.01  # one trial truly better on every block
    assert st.probability_of_backtest_overfitting(planted, blocks=8).pbo == 0.0
    with pytest.raises(ValueError, match="blocks must be an even number"):
        st.probability_of_backtest_overfitting(noise, blocks=7)


# --- costs and trading records ------------------------------------------------------------------


def test_costs_are_charged_per_unit_traded() -> None:
    close = np.array([1.0, 1.1, 1.0, 1.0, 1.2])
    record = trade_positions(close, [1.0, -1.0, 0.0, 1.0], cost_pips=10, pip_size=0.0001)
    # Buy 1 unit at 1.0, reverse (2 units) at 1.1, close (1 unit) at 1.0, buy (1 unit) at 1.0.
    assert record.costs == pytest.approx([0.001, 0.002 / 1.1, 0.001, 0.001])
    gross = np.array([0.1, -(1.0 / 1.1 - 1), 0.0, 0.2])
    assert record.returns == pytest.approx(gross - record.costs)
    metrics = record.metrics()
    assert metrics["total_reward"] == pytest.approx(1000 + 1000 + 2000 - 5 * 10)
    assert metrics["n_trades"] == 3 and metrics["win_rate"] == 1.0
    assert metrics["turnover"] == pytest.approx(5 / 4) and metrics["exposure"] == 0.75
    assert metrics["total_profit"] == pytest.approx(float(np.prod(1 + record.returns) - 1))
    hold = buy_and_hold(close, cost_pips=0)
    assert hold.metrics()["total_profit"] == pytest.approx(0.2) and hold.metrics()["n_trades"] == 1


def test_break_even_cost() -> None:
    rng = np.random.default_rng(3)
    close = 1.1 * np.exp(np.cumsum(rng.normal(0, 0.001, 500)))
    ahead = np.sign(np.diff(close))  # a perfect foresight trader that trades a lot
    agent, baseline = trade_positions(close, ahead, 0), buy_and_hold(close, 0)
    cost = break_even_cost_pips(agent, baseline)
    assert cost is not None and cost > 0
    at = trade_positions(close, ahead, cost)
    assert at.equity[-1] == pytest.approx(buy_and_hold(close, cost).equity[-1], rel=1e-9)
    assert break_even_cost_pips(baseline, agent) == 0.0  # trails even for free
    assert break_even_cost_pips(trade_positions(close, np.zeros(499), 0), baseline) in (0.0, None)


def test_degenerate_policies_are_named() -> None:
    close = np.linspace(1.0, 1.1, 101)
    hold = buy_and_hold(close)
    assert "same positions as buy-and-hold" in str(degenerate_policy(hold, hold))
    mostly_short = trade_positions(close, [-1.0] * 97 + [1.0] * 3)
    assert degenerate_policy(mostly_short) == "it holds short on 97% of bars"
    flat = trade_positions(close, np.zeros(100))
    assert degenerate_policy(flat) == "it stays out of the market on 100% of bars"
    assert flat.metrics()["n_trades"] == 0 and flat.metrics()["total_profit"] == 0.0
    mixed = trade_positions(close, [1.0, -1.0] * 50)
    assert degenerate_policy(mixed, hold) is None
    verdict = run_verdict(hold, hold)
    assert verdict.degenerate and "degenerate policy" in verdict.summary()
    assert verdict.figures()["degenerate"] == 1.0 and verdict.excess_sharpe == 0.0


def test_group_and_study_verdicts_read_as_researchers_expect() -> None:
    rng = np.random.default_rng(11)
    close = 1.1 * np.exp(np.cumsum(rng.normal(0, 0.001, 801)))
    hold = buy_and_hold(close)
    members = [
        GroupMember(fold, seed, trade_positions(close, rng.choice([-1.0, 1.0], 800)), hold)
        for fold in range(3)
        for seed in range(2)
    ]
    verdict = group_verdict(members)
    assert (verdict.folds, verdict.seeds, verdict.runs) == (3, 2, 6)
    assert verdict.label != "skill"
    text = verdict.summary()
    assert "over 3 folds x 2 seeds" in text and "CI" in text and "P(beats buy-and-hold)" in text
    assert set(verdict.figures()) >= {
        "excess_sharpe_iqm", "excess_sharpe_ci_low", "excess_sharpe_ci_high",
        "p_beats_buy_and_hold", "psr", "psr_vs_buy_and_hold", "runs",
    }  # fmt: skip

    trials = {f"t{i}": rng.normal(0, 0.001, 640) for i in range(30)}
    luck = study_verdict(trials)
    assert luck.label == "luck" and luck.pbo is not None
    assert "DSR" in luck.summary() and "PBO" in luck.summary()
    trials["t3"] = trials["t3"] + 0.0005
    found = study_verdict(trials)
    assert found.best == "t3" and found.label == "skill" and found.pbo == 0.0


# --- no look-ahead ----------------------------------------------------------------------------


def test_features_of_a_decision_read_only_the_past() -> None:
    frame = load_prices()
    split = walk_forward(frame, window_size=10)[0]
    scaler = FeatureScaler.fit(split.training.close)
    from agentic_trading.training.env import TradingEnv

    close = split.test.close
    changed = close.copy()
    changed[500:] *= np.linspace(1.0, 1.3, len(close) - 500)  # rewrite the future from bar 500
    seen = []
    for prices in (close, changed):
        env = TradingEnv(prices, 10, scaler, start=split.test.start)
        observation, _ = env.reset()
        rows = [observation]
        for _ in range(499 - split.test.start):  # decisions up to close[499]
            observation, *_ = env.step(2)
            rows.append(observation)
        seen.append(np.array(rows))
    assert np.array_equal(seen[0], seen[1])


def test_normalisation_is_fitted_on_training_bars_and_frozen() -> None:
    config = TrainingConfig(timesteps=100)
    prepared = prepare(config)
    training_close = prepared.split.training.close
    expected = np.diff(np.log(training_close))
    assert prepared.scaler.mean == pytest.approx(expected.mean())
    assert prepared.scaler.std == pytest.approx(expected.std())
    # The training environment holds the training bars and not one bar more.
    assert len(prepared.env.prices) == len(training_close)
    assert prepared.env.prices[-1] == training_close[-1]


def test_batched_policy_evaluation_equals_stepping_the_environment() -> None:
    from stable_baselines3 import PPO

    from agentic_trading.training.runner import run_policy, window_env

    config = TrainingConfig(timesteps=256, n_steps=64, seed=2)
    prepared = prepare(config)
    model = PPO("MlpPolicy", prepared.env, n_steps=64, batch_size=64, seed=2, device="cpu")
    model.learn(256)
    window = prepared.split.validation
    env = window_env(window, config, prepared.scaler)
    observation, _ = env.reset()
    done = False
    while not done:
        action, _ = model.predict(observation, deterministic=True)
        observation, _, done, _, _ = env.step(int(action))
    batched = run_policy(model, window, config, prepared.scaler)
    assert batched.positions.tolist() == env.positions
    assert len(set(env.positions)) > 1  # a policy that changes its mind, or this shows nothing


def write_bars(path: Path, close: np.ndarray) -> Path:
    start = np.datetime64("2024-01-01T00")
    lines = [f"{start + np.timedelta64(i, 'h')},{c},{c},{c},{c}" for i, c in enumerate(close)]
    path.write_text("datetime,open,high,low,close\n" + "\n".join(lines) + "\n")
    return path


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return make_settings(ml_storage_path=str(tmp_path / "aim"))


def test_test_bars_are_never_read_in_training_or_validation(
    tmp_path: Path, settings: Settings
) -> None:
    close = load_prices()["Close"].to_numpy()[:1500]
    other = close.copy()
    other[-300:] = other[-300:][::-1] * 1.05  # the test bars (last 20 %) rewritten
    outcomes = []
    for name, prices in (("same", close), ("other", other)):
        data = write_bars(tmp_path / f"{name}.csv", prices)
        config = TrainingConfig(data=str(data), timesteps=512, n_steps=128, seed=4)
        outcomes.append(train(config, "leak-check", settings=settings))
    same, changed = outcomes
    assert same.validation == changed.validation  # learned and validated the same, bit for bit
    assert same.agent != changed.agent  # while the test bars did differ


# --- controls: a random walk has no skill, a planted pattern does (standard features) -----------


def control_prices(kind: str, bars: int = 3000, seed: int = 7) -> np.ndarray:
    """A seeded geometric random walk, or returns with momentum (AR(1), phi 0.5) to learn."""
    rng = np.random.default_rng(seed)
    shocks = rng.normal(0, 0.001, bars)
    if kind == "planted":
        returns = np.zeros(bars)
        for i in range(1, bars):
            returns[i] = 0.5 * returns[i - 1] + shocks[i]
        shocks = returns
    return 1.1 * np.exp(np.cumsum(shocks))


@pytest.mark.parametrize("kind", ["random_walk", "planted"])
def test_controls(tmp_path: Path, settings: Settings, kind: str) -> None:
    data = write_bars(tmp_path / f"{kind}.csv", control_prices(kind))
    config = TrainingConfig(
        data=str(data), timesteps=2048, n_steps=256, n_epochs=5, features="standard",
        fee_pips=0.5, folds=2,
    )  # fmt: skip
    outcome = train_group(config, f"control-{kind}", seeds=2, settings=settings)
    assert outcome.status is ExperimentStatus.COMPLETED and outcome.verdict is not None
    verdict = outcome.verdict
    if kind == "planted":
        assert verdict.label == "skill", verdict.summary()
        assert verdict.excess_sharpe.low > 0 and verdict.psr > 0.99
        assert verdict.p_beats_buy_and_hold == 1.0
    else:  # no skill: luck, or worse than buy-and-hold once costs are paid
        assert verdict.label in ("luck", "trails"), verdict.summary()
        assert verdict.psr < 0.95 and "skill:" not in verdict.summary()
    # The group and its trainings are in tracking, the verdict among the group's final metrics.
    repo = get_sync_experiment_repository(settings)
    group = repo.get_run(str(outcome.group_id))
    assert group.config["kind"] == "evaluation_group" and group.tags == ["evaluation-group"]
    assert group.final_metrics["excess_sharpe_iqm"] == pytest.approx(verdict.excess_sharpe.estimate)
    assert group.params["verdict"] == verdict.summary()
    members = repo.list_runs(group=group.run_id)
    assert sorted((r.config["fold"], r.config["seed"]) for r in members) == [
        (0, 1), (0, 2), (1, 1), (1, 2),
    ]  # fmt: skip
    assert all(r.params["verdict_label"] in ("skill", "luck", "trails") for r in members)
    assert all("psr" in r.final_metrics for r in members)


def test_same_config_and_seeds_give_the_same_verdict(settings: Settings) -> None:
    config = TrainingConfig(timesteps=256, n_steps=64, folds=2, test_fraction=0.2)
    first = train_group(config, "repeat", seeds=1, settings=settings)
    second = train_group(config, "repeat", seeds=1, settings=settings)
    assert first.verdict is not None and second.verdict is not None
    assert first.verdict.figures() == second.verdict.figures()
    assert first.verdict.summary() == second.verdict.summary()
    assert first.group_id != second.group_id


# --- the CLI ------------------------------------------------------------------------------------


def cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*CLI, *args],
        capture_output=True,
        text=True,
        env={**os.environ, "COLUMNS": "200", **env},
        timeout=240,
        check=False,
    )


def test_cli_walk_forward_prints_and_stores_the_groups_verdict(settings: Settings) -> None:
    env = {"ML_STORAGE_PATH": settings.ml_storage_path}
    result = cli(
        "train", "--timesteps", "256", "--n-steps", "64", "--folds", "2", "--seeds", "2",
        "--test-fraction", "0.2", "--fee-pips", "1", "--experiment", "wf", "--json", env=env,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    outcome: dict[str, Any] = json.loads(result.stdout)
    assert outcome["status"] == "completed" and outcome["folds"] == 2 and outcome["seeds"] == [1, 2]
    assert len(outcome["runs"]) == 4
    assert {(r["fold"], r["seed"]) for r in outcome["runs"]} == {(0, 1), (0, 2), (1, 1), (1, 2)}
    verdict = outcome["verdict"]
    assert "over 2 folds x 2 seeds" in verdict["summary"]
    assert verdict["excess_sharpe_ci_low"] <= verdict["excess_sharpe_iqm"]

    shown = cli("experiments", "show", outcome["group_id"], env=env)
    assert shown.returncode == 0, shown.stderr
    assert "the group's 4 trainings" in shown.stdout and "verdict:" in shown.stdout
    member = outcome["runs"][0]["run_id"]
    detail = json.loads(cli("experiments", "show", member, "--json", env=env).stdout)
    assert detail["config"]["group_id"] == outcome["group_id"]
    assert detail["config"]["fee_pips"] == 1.0
    assert detail["params"]["verdict"] == outcome["runs"][0]["verdict"]["summary"]
    listed = json.loads(
        cli("experiments", "list", "--group", outcome["group_id"], "--json", env=env).stdout
    )
    assert sorted(r["run_id"] for r in listed) == sorted(r["run_id"] for r in outcome["runs"])

    bad = cli("train", "--folds", "0", env=env)
    assert bad.returncode == 2 and "folds=0" in bad.stderr and "Traceback" not in bad.stderr


def test_a_study_whose_best_trial_never_trades_says_so() -> None:
    rng = np.random.default_rng(5)
    trials = {f"flat{i}": np.zeros(640) for i in range(6)}  # six policies that never trade
    trials |= {f"costly{i}": rng.normal(-0.0004, 0.001, 640) for i in range(14)}
    verdict = study_verdict(trials, trials=21, tried="14 complete, 6 pruned, 1 cancelled")
    assert verdict.best.startswith("flat") and verdict.best_never_trades
    assert verdict.label == "luck" and verdict.flat == 6
    text = verdict.summary()
    assert "never trades" in text and "no policy worth trading" in text
    assert "best of 21 trials tried (14 complete, 6 pruned, 1 cancelled)" in text
    assert f"the spread of 20 complete trials' Sharpe ratios, {verdict.sharpe_low:+.2f}" in text
    # The six ties count once in PBO, and the figure is said to mean what it means.
    assert verdict.pbo is not None and "not trading beat the trials that lost" in text
    only_flat = study_verdict({"a": np.zeros(640), "b": np.zeros(640)})
    assert only_flat.pbo is None and "fewer than two trials with different returns" in (
        only_flat.summary()
    )
