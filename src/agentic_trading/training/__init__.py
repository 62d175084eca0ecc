"""Training trading agents (Stable-Baselines3) on FX data, live and tracked.

``ExperimentCallback`` adds live monitoring and tracking to any ``model.learn``; ``train`` runs a
whole experiment: data, agent, learning, held-out evaluation against buy-and-hold.

The names are imported on first use (PEP 562), so ``agentic_trading.training.config`` stays
light: a command line that only parses a configuration does not import torch.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
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

_HOMES = {
    "ExperimentCallback": "callbacks",
    "TrainingConfig": "config",
    "DataError": "data",
    "load_prices": "data",
    "split_prices": "data",
    "TrainingOutcome": "runner",
    "train": "runner",
}


def __getattr__(name: str) -> Any:
    if name not in _HOMES:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{_HOMES[name]}"), name)
