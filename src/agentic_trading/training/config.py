"""What a training run is: agent, data and hyperparameters, validated in one place."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

if TYPE_CHECKING:
    from agentic_trading.training.features import FeatureSet

__all__ = ["CONTINUOUS_AGENTS", "TrainingConfig"]

#: TD3's exploration: Gaussian noise of this standard deviation on the position.
TD3_NOISE = 0.1

#: Agents whose action is the position itself, a number in [-1, 1].
CONTINUOUS_AGENTS = ("SAC", "TD3")


class TrainingConfig(BaseModel):
    """Settings of one training; stored as the run's config (Aim hparams) and live config.

    The same config and ``seed`` reproduce the same run (on CPU).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    agent_type: Literal["PPO", "A2C", "DQN", "SAC", "TD3"] = Field(
        "PPO", description="PPO, A2C, DQN: short/flat/long; SAC, TD3: a position in [-1, 1]"
    )
    pair: str = "EUR_USD"
    data: str | None = Field(None, description="CSV path; None for the bundled data set")
    timesteps: int = Field(50_000, ge=100, le=100_000_000)
    learning_rate: float = Field(3e-4, gt=0, le=1)
    n_steps: int = Field(512, ge=8, description="PPO/A2C rollout length per update")
    batch_size: int = Field(64, ge=8, description="PPO/DQN/SAC/TD3 minibatch size")
    gamma: float = Field(0.99, gt=0, le=1)
    gae_lambda: float = Field(0.95, gt=0, le=1, description="PPO/A2C GAE lambda")
    ent_coef: float = Field(
        0.0, ge=0, le=1, description="PPO/A2C entropy bonus; SAC's, 0 meaning tuned on its own"
    )
    clip_range: float = Field(0.2, gt=0, le=1, description="PPO clipping")
    n_epochs: int = Field(10, ge=1, le=100, description="PPO epochs per update")
    net_arch: Literal["tiny", "small", "medium"] = Field(
        "small", description="policy and value networks: tiny 2x32, small 2x64, medium 2x256"
    )
    activation: Literal["tanh", "relu"] = "tanh"
    seed: int = Field(1, ge=0)
    window_size: int = Field(10, ge=2, le=500, description="past returns in `returns` features")
    features: str = Field(
        "returns",
        description="what the agent sees: returns, standard, or a comma-separated list of "
        "blocks (training.features)",
    )
    validation_fraction: float = Field(
        0.2, ge=0.05, le=0.5, description="share of the bars before a test block that validate"
    )
    test_fraction: float | None = Field(
        None, ge=0.05, le=0.9, description="share of bars held out for test; 0.2, 0.5 with folds"
    )
    folds: int = Field(1, ge=1, le=50, description="walk-forward folds (anchored, expanding)")
    fold: int = Field(0, ge=0, description="which walk-forward fold this training uses")
    fee_pips: float = Field(3.0, ge=0, le=1000, description="fee per unit of position traded")
    spread_pips: float = Field(0.0, ge=0, le=1000, description="spread paid per unit traded")
    pip_size: float = Field(0.0001, gt=0, le=1, description="price units in one pip")
    reward: Literal["net", "dsr", "drawdown"] = Field(
        "net",
        description="what the agent is paid each bar: net return, differential Sharpe, "
        "or net return minus the rise in drawdown (training.rewards)",
    )
    drawdown_penalty: float = Field(
        1.0, ge=0, le=100, description="with reward=drawdown: the weight of a drawdown's rise"
    )

    @field_validator("features")
    @classmethod
    def _known_features(cls, value: str) -> str:
        from agentic_trading.training.features import FeatureSet

        return FeatureSet.parse(value).label

    @property
    def feature_set(self) -> FeatureSet:
        """The parsed :attr:`features`."""
        from agentic_trading.training.features import FeatureSet

        return FeatureSet.parse(self.features, self.window_size)

    @property
    def history(self) -> int:
        """Bars of history before a window's first decision: what the features need."""
        return self.feature_set.history

    @property
    def continuous(self) -> bool:
        """Whether the agent's action is a position in [-1, 1] rather than short/flat/long."""
        return self.agent_type in CONTINUOUS_AGENTS

    @model_validator(mode="after")
    def _fold_exists(self) -> TrainingConfig:
        if self.fold >= self.folds:
            raise ValueError(f"fold {self.fold} does not exist: folds are 0..{self.folds - 1}")
        return self

    @property
    def cost_pips(self) -> float:
        """Cost per unit of position traded, in pips: fee plus spread."""
        return self.fee_pips + self.spread_pips

    @property
    def held_out_fraction(self) -> float:
        """``test_fraction``, or its default for this many folds."""
        from agentic_trading.training.data import default_test_fraction

        return (
            self.test_fraction
            if self.test_fraction is not None
            else default_test_fraction(self.folds)
        )

    @field_validator("agent_type", mode="before")
    @classmethod
    def _upper(cls, value: object) -> object:
        return value.upper() if isinstance(value, str) else value

    def agent_kwargs(self) -> dict[str, Any]:
        """Keyword arguments of the Stable-Baselines3 constructor for this agent."""
        import torch

        width = {"tiny": 32, "small": 64, "medium": 256}[self.net_arch]
        activation = {"tanh": torch.nn.Tanh, "relu": torch.nn.ReLU}[self.activation]
        common: dict[str, Any] = {
            "learning_rate": self.learning_rate,
            "gamma": self.gamma,
            "seed": self.seed,
            "device": "cpu",
            "verbose": 0,
        }
        if self.agent_type == "PPO":
            return {
                **common,
                "n_steps": self.n_steps,
                "batch_size": min(self.batch_size, self.n_steps),
                "gae_lambda": self.gae_lambda,
                "ent_coef": self.ent_coef,
                "clip_range": self.clip_range,
                "n_epochs": self.n_epochs,
                "policy_kwargs": {"net_arch": [width, width], "activation_fn": activation},
            }
        if self.agent_type == "A2C":
            return {
                **common,
                "n_steps": min(self.n_steps, 64),
                "gae_lambda": self.gae_lambda,
                "ent_coef": self.ent_coef,
                "policy_kwargs": {"net_arch": [width, width], "activation_fn": activation},
            }
        off_policy = {
            **common,
            "batch_size": self.batch_size,
            "buffer_size": min(self.timesteps, 100_000),
            "learning_starts": min(1_000, self.timesteps // 10),
            "policy_kwargs": {"net_arch": [width, width], "activation_fn": activation},
        }
        if self.agent_type == "SAC":
            return {**off_policy, "ent_coef": self.ent_coef or "auto"}
        if self.agent_type == "TD3":
            from stable_baselines3.common.noise import NormalActionNoise

            noise = NormalActionNoise(mean=np.zeros(1), sigma=np.full(1, TD3_NOISE))
            return {**off_policy, "action_noise": noise}
        return off_policy
