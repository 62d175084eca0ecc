"""How long must a study's PPO trial train on the bundled data before its policy stops churning?

    python -m benchmarks.trial_budget --configs 8 --budgets 2000,5000,10000,20000,30000,50000

Samples ``--configs`` hyperparameter sets from the built-in PPO space (Optuna's random sampler,
seeded), trains each once to the largest budget per feature set, and scores the policy on the
validation bars at every budget (a PPO trial of budget B is exactly the first B steps of a
longer one: constant learning rate and clipping). Reports, per budget: the share of trials that
churn (:func:`~agentic_trading.evaluation.verdict.churning_policy`), that are degenerate, and the
validation Sharpe and turnover (min / median / max). Writes benchmarks/results/trial-budget.json.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path
from typing import Any

from stable_baselines3.common.callbacks import BaseCallback

from agentic_trading.evaluation.trading import buy_and_hold
from agentic_trading.evaluation.verdict import churning_policy, degenerate_policy
from agentic_trading.studies.space import SearchSpace
from agentic_trading.training import TrainingConfig
from agentic_trading.training.agents import make_agent
from agentic_trading.training.runner import prepare, run_policy

RESULTS = Path(__file__).resolve().parent / "results" / "trial-budget.json"


class _Checkpoints(BaseCallback):
    def __init__(self, budgets: list[int], score: Any) -> None:
        super().__init__()
        self.budgets, self.score = budgets, score
        self.scores: dict[int, dict[str, Any]] = {}

    def _on_step(self) -> bool:
        if self.num_timesteps in self.budgets:
            self.scores[self.num_timesteps] = self.score(self.model)
        return True


def _trial(params: dict[str, Any], features: str, budgets: list[int]) -> dict[int, Any]:
    config = TrainingConfig(**params, features=features, timesteps=max(budgets), seed=1)
    prepared = prepare(config)
    window = prepared.split.validation
    baseline = buy_and_hold(window.close[window.start :], config.cost_pips).metrics()

    def score(model: Any) -> dict[str, Any]:
        record = run_policy(model, window, config, prepared.scaler)
        metrics = record.metrics()
        return {
            "sharpe": metrics["sharpe_ratio"],
            "excess_sharpe": metrics["sharpe_ratio"] - baseline["sharpe_ratio"],
            "turnover": metrics["turnover"],
            "churns": churning_policy(record) is not None,
            "degenerate": degenerate_policy(record) is not None,
        }

    checkpoints = _Checkpoints(budgets, score)
    make_agent(config, prepared.env).learn(config.timesteps, callback=checkpoints)
    return checkpoints.scores


def _spread(values: list[float]) -> dict[str, float]:
    return {"min": min(values), "median": statistics.median(values), "max": max(values)}


def main(argv: list[str] | None = None) -> None:
    import optuna

    parser = argparse.ArgumentParser(prog="python -m benchmarks.trial_budget")
    parser.add_argument("--configs", type=int, default=8)
    parser.add_argument("--budgets", default="2000,5000,10000,20000,30000,50000")
    parser.add_argument("--features", default="returns,standard", help="feature sets, by comma")
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    budgets = sorted(int(b) for b in args.budgets.split(","))
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    space = SearchSpace.builtin("PPO")
    sampled = [space.suggest(study.ask()) for _ in range(args.configs)]
    started = time.perf_counter()
    report: dict[str, Any] = {"configs": sampled, "budgets": budgets, "results": {}}
    for features in args.features.split(","):
        runs = []
        for i, params in enumerate(sampled):
            runs.append(_trial(params, features, budgets))
            print(f"{features}: config {i + 1}/{len(sampled)} done", flush=True)
        summary = {}
        for budget in budgets:
            at = [run[budget] for run in runs]
            summary[budget] = {
                "churn_share": sum(r["churns"] for r in at) / len(at),
                "degenerate_share": sum(r["degenerate"] for r in at) / len(at),
                "sharpe": _spread([r["sharpe"] for r in at]),
                "excess_sharpe": _spread([r["excess_sharpe"] for r in at]),
                "turnover": _spread([r["turnover"] for r in at]),
            }
            line = summary[budget]
            print(
                f"{features:>9} {budget:>7,} steps: churn {line['churn_share']:.0%}, degenerate "
                f"{line['degenerate_share']:.0%}, validation Sharpe median "
                f"{line['sharpe']['median']:+.2f} (min {line['sharpe']['min']:+.2f}, max "
                f"{line['sharpe']['max']:+.2f}), turnover median {line['turnover']['median']:.3f}",
                flush=True,
            )
        report["results"][features] = {"per_trial": runs, "summary": summary}
    report["wall_seconds"] = time.perf_counter() - started
    args.output.write_text(json.dumps(report, indent=2, default=str) + "\n")
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
