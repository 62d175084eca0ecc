"""Training trading agents (Stable-Baselines3) on FX data, live and tracked.

``ExperimentCallback`` adds live monitoring and tracking to any ``model.learn``; ``train`` runs a
whole experiment: data, agent, learning, held-out evaluation against buy-and-hold.
"""

from agentic_trading.training.callbacks import ExperimentCallback
from agentic_trading.training.config import TrainingConfig
from agentic_trading.training.data import DataError, load_prices, split_prices
from agentic_trading.training.runner import TrainingOutcome, train

__all__ = [
    "DataError",
    "ExperimentCallback",
    "TrainingConfig",
    "TrainingOutcome",
    "load_prices",
    "split_prices",
    "train",
]
