"""What a training run is: agent, data and hyperparameters, validated in one place."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

__all__ = ["TrainingConfig"]


class TrainingConfig(BaseModel):
    """Settings of one training; stored as the run's config (Aim hparams) and live config.

    The same config and ``seed`` reproduce the same run (on CPU).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    agent_type: Literal["PPO", "A2C", "DQN"] = "PPO"
    pair: str = "EUR_USD"
    data: str | None = Field(None, description="CSV path; None for the bundled data set")
    timesteps: int = Field(50_000, ge=100, le=100_000_000)
    learning_rate: float = Field(3e-4, gt=0, le=1)
    n_steps: int = Field(512, ge=8, description="PPO/A2C rollout length per update")
    batch_size: int = Field(64, ge=8, description="PPO/DQN minibatch size")
    gamma: float = Field(0.99, gt=0, le=1)
    ent_coef: float = Field(0.0, ge=0, le=1)
    seed: int = Field(1, ge=0)
    window_size: int = Field(10, ge=2, le=500)
    train_fraction: float = Field(0.8, ge=0.1, le=0.95)

    @field_validator("agent_type", mode="before")
    @classmethod
    def _upper(cls, value: object) -> object:
        return value.upper() if isinstance(value, str) else value

    def agent_kwargs(self) -> dict[str, Any]:
        """Keyword arguments of the Stable-Baselines3 constructor for this agent."""
        common: dict[str, Any] = {
            "learning_rate": self.learning_rate,
            "gamma": self.gamma,
            "seed": self.seed,
            "device": "cpu",
            "verbose": 0,
        }
        if self.agent_type == "PPO":
            batch = min(self.batch_size, self.n_steps)
            return {
                **common,
                "n_steps": self.n_steps,
                "batch_size": batch,
                "ent_coef": self.ent_coef,
            }
        if self.agent_type == "A2C":
            return {**common, "n_steps": min(self.n_steps, 64), "ent_coef": self.ent_coef}
        return {
            **common,
            "batch_size": self.batch_size,
            "buffer_size": min(self.timesteps, 100_000),
            "learning_starts": min(1_000, self.timesteps // 10),
        }
