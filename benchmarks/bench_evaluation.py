"""Evaluation: what a walk-forward evaluation adds beyond its trainings, and what the statistics
cost for a study of 1,000 trials."""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from agentic_trading.config import load_settings
from agentic_trading.evaluation import statistics as st
from agentic_trading.evaluation.verdict import study_verdict
from agentic_trading.training import TrainingConfig
from agentic_trading.training import runner as runner_module
from agentic_trading.training import walk_forward as walk_forward_module


def run(folds: int = 3, seeds: int = 2, timesteps: int = 4096) -> dict[str, Any]:
    """A ``folds`` x ``seeds`` evaluation on the embedded defaults: the group's wall time
    against the sum of its ``train`` calls (the anchor: the same trainings one by one), and
    inside each ``train`` the scoring (validation, test, verdict) against ``learn``."""
    with tempfile.TemporaryDirectory() as tmp:
        settings = load_settings(ml_storage_path=str(Path(tmp) / "aim"))
        timed: list[float] = []
        learned: list[float] = []
        original_train = walk_forward_module.train

        def timed_train(*args: Any, **kwargs: Any) -> Any:
            start = time.perf_counter()
            outcome = original_train(*args, **kwargs)
            timed.append(time.perf_counter() - start)
            learned.append(outcome.training_seconds)
            return outcome

        config = TrainingConfig(timesteps=timesteps, folds=folds)
        runner_module.train(  # warm-up: imports, the repository, the writer
            config.model_copy(update={"timesteps": 512}), "warm-up", settings=settings
        )
        walk_forward_module.train = timed_train  # type: ignore[assignment]
        try:
            start = time.perf_counter()
            outcome = walk_forward_module.train_group(
                config, "bench", seeds=seeds, settings=settings
            )
            total = time.perf_counter() - start
        finally:
            walk_forward_module.train = original_train  # type: ignore[assignment]
    trainings = sum(timed)
    learning = sum(learned)
    return {
        "folds": folds,
        "seeds": seeds,
        "timesteps": timesteps,
        "group_seconds": round(total, 2),
        "trainings_seconds": round(trainings, 2),
        "group_overhead_fraction": round((total - trainings) / trainings, 4),
        "learn_seconds": round(learning, 2),
        "scoring_and_records_fraction_of_learn": round((trainings - learning) / learning, 4),
        "verdict": outcome.verdict.summary() if outcome.verdict else None,
        "statistics_1000_trials": statistics_cost(),
    }


def statistics_cost(trials: int = 1000, bars: int = 996, repeats: int = 3) -> dict[str, Any]:
    """The study verdict (DSR over every trial, PBO by CSCV with 16 blocks = 12,870 splits) of
    ``trials`` trials of ``bars`` validation returns each; and the single-run statistics."""
    rng = np.random.default_rng(0)
    returns = {str(i): rng.normal(0, 0.001, bars) for i in range(trials)}
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        verdict = study_verdict(returns)
        times.append(time.perf_counter() - start)
    one = returns["0"]
    start = time.perf_counter()
    for _ in range(1000):
        sr = st.sharpe_ratio(one)
        st.probabilistic_sharpe_ratio(sr, 0.0, len(one), st.skewness(one), st.kurtosis(one))
    per_run_us = (time.perf_counter() - start) / 1000 * 1e6
    return {
        "trials": trials,
        "bars": bars,
        "study_verdict_seconds_median": round(sorted(times)[len(times) // 2], 3),
        "pbo": round(verdict.pbo or 0.0, 3),
        "psr_of_one_run_us": round(per_run_us, 1),
    }
