"""The web dashboard (Dash): live experiments from messaging beside history from tracking."""

from agentic_trading.dashboard.data import (
    analyze_performance,
    get_dashboard_data,
    get_experiment_history,
    get_live_experiments,
)

__all__ = [
    "analyze_performance",
    "get_dashboard_data",
    "get_experiment_history",
    "get_live_experiments",
]
