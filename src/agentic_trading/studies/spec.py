"""What a study is, beyond Optuna's own record: agent, data, space, objective, budget, pruning.

The spec travels with the study in its storage (Optuna user attribute ``agentic_trading``), so
every worker on every host runs the same trials from the study's name alone.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from agentic_trading.common.ids import validate_name
from agentic_trading.studies.space import SearchSpace

__all__ = ["DEFAULT_TIMESTEPS", "OBJECTIVES", "SPEC_ATTRIBUTE", "StudySpec"]

#: Where the spec is kept among the Optuna study's user attributes.
SPEC_ATTRIBUTE = "agentic_trading"
#: A trial's default training steps: the shortest budget at which PPO trials on the bundled
#: EUR/USD bars stopped churning (benchmarks/trial_budget.py, docs/benchmark.md).
DEFAULT_TIMESTEPS = 50_000

#: Metrics a study may optimise, measured on the validation bars, and their natural direction.
OBJECTIVES: dict[str, Literal["maximize", "minimize"]] = {
    "sharpe_ratio": "maximize",
    "sortino_ratio": "maximize",
    "calmar_ratio": "maximize",
    "excess_sharpe": "maximize",
    "total_profit": "maximize",
    "total_reward": "maximize",
    "max_drawdown": "minimize",
}

#: Training settings a study fixes for all its trials (not searched).
BASE_FIELDS = (
    "pair", "data", "window_size", "features", "reward", "drawdown_penalty",
    "validation_fraction", "test_fraction", "fee_pips", "spread_pips", "pip_size",
)  # fmt: skip


class StudySpec(BaseModel):
    """A study: which agent on which data, what is searched, what is optimised, how far.

    ``objective`` is a metric of the validation bars (the test bars are never used to choose or
    prune); each trial trains ``timesteps`` steps and is scored on validation every
    ``eval_every`` steps for the pruner. ``seed`` seeds every trial's training (a trial enqueued
    with its own ``seed`` overrides it) and the sampler.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    agent: Literal["PPO", "A2C", "DQN", "SAC", "TD3"] = "PPO"
    space: dict[str, Any]
    trials: int = Field(20, ge=0, le=100_000)
    timesteps: int = Field(DEFAULT_TIMESTEPS, ge=100, le=100_000_000)
    objective: str = "sharpe_ratio"
    direction: Literal["maximize", "minimize"] | None = None
    sampler: Literal["tpe", "random"] = "tpe"
    pruner: Literal["median", "successive_halving", "hyperband", "none"] = "median"
    eval_every: int | None = Field(None, ge=50)
    seed: int = Field(1, ge=0)
    base: dict[str, Any] = {}

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        return validate_name(value, "study name")

    @field_validator("agent", mode="before")
    @classmethod
    def _upper(cls, value: object) -> object:
        return value.upper() if isinstance(value, str) else value

    @field_validator("objective")
    @classmethod
    def _objective(cls, value: str) -> str:
        name = value.removeprefix("validation_")
        if name not in OBJECTIVES:
            raise ValueError(
                f"objective {value!r} is not a validation metric; use one of {', '.join(OBJECTIVES)}"
            )
        return name

    @model_validator(mode="after")
    def _consistent(self) -> StudySpec:
        SearchSpace.from_mapping(self.space, self.agent, source=f"study {self.name}'s space")
        unknown = set(self.base) - set(BASE_FIELDS)
        if unknown:
            raise ValueError(
                f"base settings {sorted(unknown)} are not allowed; a study fixes "
                f"{', '.join(BASE_FIELDS)}"
            )
        from pydantic import ValidationError

        try:
            self.training_config({})
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in e['loc'])}: {str(e['msg']).removeprefix('Value error, ')}"
                for e in exc.errors()
            )
            raise ValueError(f"base settings refused: {problems}") from None
        if self.eval_every is not None and self.eval_every > self.timesteps:
            raise ValueError(
                f"eval_every {self.eval_every} exceeds the trial's {self.timesteps} timesteps: "
                "no trial would ever be scored for pruning"
            )
        return self

    @property
    def search_space(self) -> SearchSpace:
        """The checked search space."""
        return SearchSpace.from_mapping(self.space, self.agent)

    @property
    def study_direction(self) -> Literal["maximize", "minimize"]:
        """``direction``, or the objective's natural one."""
        return self.direction or OBJECTIVES[self.objective]

    @property
    def evaluation_interval(self) -> int:
        """Steps between two validation scores of a trial: ``eval_every``, else a fifth of it."""
        return self.eval_every or max(50, self.timesteps // 5)

    def training_config(self, params: dict[str, Any], seed: int | None = None) -> Any:
        """The :class:`TrainingConfig` of one trial with ``params``."""
        from agentic_trading.training.config import TrainingConfig

        return TrainingConfig(
            agent_type=self.agent,
            timesteps=self.timesteps,
            seed=self.seed if seed is None else seed,
            **self.base,
            **params,
        )
