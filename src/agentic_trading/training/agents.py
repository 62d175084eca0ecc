"""Stable-Baselines3 agents by name."""

from __future__ import annotations

from typing import Any

from agentic_trading.common.extras import require
from agentic_trading.training.config import TrainingConfig

__all__ = ["make_agent"]


def make_agent(config: TrainingConfig, env: Any) -> Any:
    """A new SB3 model of ``config.agent_type`` with an MLP policy on ``env``."""
    stable_baselines3 = require("stable_baselines3", "training", "training needs Stable-Baselines3")
    cls = getattr(stable_baselines3, config.agent_type)
    return cls("MlpPolicy", env, **config.agent_kwargs())
