"""What the dashboard shows, as data: live experiments (messaging) and history (tracking).

These are the user guide's Pattern 2 functions; the Dash app only lays them out.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from agentic_trading.config import Settings, get_settings
from agentic_trading.messaging.brokers import BrokerError
from agentic_trading.messaging.channels.training import TrainingChannel
from agentic_trading.messaging.messages import ExperimentState
from agentic_trading.tracking import ExperimentSummary, RunSummary, get_sync_experiment_repository

__all__ = [
    "analyze_performance",
    "get_dashboard_data",
    "get_experiment_history",
    "get_live_experiments",
]

LIVE_STATUSES = ("pending", "running")


async def get_live_experiments(settings: Settings | None = None) -> list[ExperimentState]:
    """Experiments that are pending or running now, from messaging."""
    channel = TrainingChannel(settings=settings)
    try:
        states = await channel.list_experiments()
    finally:
        await channel.close()
    return [s for s in states if s.status.value in LIVE_STATUSES]


async def get_experiment_history(settings: Settings | None = None) -> list[ExperimentSummary]:
    """One summary per experiment name, from tracking."""
    from agentic_trading.tracking import get_experiment_repository

    repo = await get_experiment_repository(settings)
    return await repo.list_experiments()


def analyze_performance(
    history: Sequence[ExperimentSummary], runs: Sequence[RunSummary] = ()
) -> dict[str, Any]:
    """Which experiment and run do best: experiments ranked by their best main metric, and
    ``runs`` (when given) ranked by Sharpe ratio and by profit over buy-and-hold."""
    ranked = sorted(
        (e for e in history if e.best_value is not None and math.isfinite(e.best_value)),
        key=lambda e: e.best_value or 0.0,
        reverse=True,
    )
    out: dict[str, Any] = {
        "experiments_ranked": [
            {"experiment": e.name, e.metric: e.best_value, "run_id": e.best_run_id} for e in ranked
        ],
        "best_experiment": ranked[0].name if ranked else None,
    }
    completed = [r for r in runs if r.status.value == "completed" and r.final_metrics]
    for key, metric in (("best_sharpe", "sharpe_ratio"), ("best_excess_profit", "excess_profit")):
        scored = [r for r in completed if metric in r.final_metrics]
        best = max(scored, key=lambda r: r.final_metrics[metric], default=None)
        out[key] = (
            None
            if best is None
            else {
                "run_id": best.run_id,
                "experiment": best.experiment,
                metric: best.final_metrics[metric],
            }
        )
    return out


async def get_dashboard_data(settings: Settings | None = None) -> dict[str, Any]:
    """The combined view: live experiments, history, and the comparison of the history.

    If messaging is unreachable, ``live`` is empty and ``live_error`` says why; history still
    comes from tracking.
    """
    settings = settings or get_settings()
    live: list[ExperimentState] = []
    live_error = None
    try:
        live = await get_live_experiments(settings)
    except BrokerError as exc:
        live_error = str(exc)
    history = await get_experiment_history(settings)
    runs = get_sync_experiment_repository(settings).list_runs(limit=200)
    return {
        "live": live,
        "live_error": live_error,
        "history": history,
        "recent_runs": runs[:20],
        "comparison": analyze_performance(history, runs),
    }
