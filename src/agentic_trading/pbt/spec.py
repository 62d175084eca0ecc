"""A population-based training: its agent, population, schedule of perturbations and what may
mutate, saved as ``PBT_PATH/NAME/spec.json`` by ``pbt create`` and read by ``pbt run``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from agentic_trading.common.ids import validate_name
from agentic_trading.config import Settings
from agentic_trading.studies.spec import OBJECTIVES

__all__ = ["MUTABLE", "PbtError", "PbtSpec", "load_spec", "pbt_folder", "save_spec"]

#: What PBT may change while a member trains, per agent (applied to the live SB3 model).
MUTABLE: dict[str, tuple[str, ...]] = {
    "PPO": ("learning_rate", "ent_coef", "clip_range"),
    "A2C": ("learning_rate", "ent_coef"),
}


class PbtError(ValueError):
    """A PBT that does not exist, exists already, or cannot be run as asked."""


class PbtSpec(BaseModel):
    """What ``pbt create`` fixes: ``population`` members of ``agent`` train ``total_steps``
    steps each, in chunks of ``perturb_every``; after each chunk the members in the bottom
    ``quantile`` by validation ``objective`` copy a top member's checkpoint (exploit) and
    perturb the ``mutate`` hyperparameters (explore)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    agent: Literal["PPO", "A2C"] = "PPO"
    population: int = Field(8, ge=2, le=1024)
    perturb_every: int = Field(10_000, ge=64)
    total_steps: int = Field(50_000, ge=128, le=100_000_000)
    mutate: tuple[str, ...] = ("learning_rate", "ent_coef", "clip_range")
    objective: str = "sharpe_ratio"
    quantile: float = Field(0.25, gt=0, le=0.5)
    #: Wait for every member at each perturbation (Ray's synchronous PBT) rather than deciding
    #: for each member as it reaches one.
    synch: bool = False
    seed: int = Field(1, ge=0)
    base: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="before")
    @classmethod
    def _upper(cls, data: Any) -> Any:
        if isinstance(data, dict) and isinstance(data.get("agent"), str):
            data = {**data, "agent": data["agent"].upper()}
        return data

    @model_validator(mode="after")
    def _consistent(self) -> PbtSpec:
        validate_name(self.name, "PBT name")
        allowed = MUTABLE[self.agent]
        unknown = [m for m in self.mutate if m not in allowed]
        if unknown or not self.mutate:
            raise ValueError(
                f"--mutate {','.join(self.mutate) or '(nothing)'}: {self.agent} may mutate "
                f"{', '.join(allowed)}"
            )
        if self.objective not in OBJECTIVES or self.objective == "excess_sharpe":
            raise ValueError(f"objective {self.objective!r} is not a validation metric")
        if self.perturb_every >= self.total_steps:
            raise ValueError(
                f"--perturb-every {self.perturb_every} must be below --total-steps "
                f"{self.total_steps}: no member would ever be perturbed"
            )
        from agentic_trading.training.config import TrainingConfig

        fixed = set(TrainingConfig.model_fields) - {
            "agent_type",
            "timesteps",
            "seed",
            "folds",
            "fold",
        }
        refused = set(self.base) - (fixed - set(self.mutate))
        if refused:
            raise ValueError(
                f"base settings {sorted(refused)} are not allowed: the base fixes training "
                "settings that are not mutated (not agent_type, timesteps, seed or folds)"
            )
        self.training_config({})  # the base a training would refuse is refused now
        return self

    @property
    def direction(self) -> Literal["max", "min"]:
        """Ray Tune's mode for the objective."""
        return "max" if OBJECTIVES[self.objective] == "maximize" else "min"

    def training_config(self, params: dict[str, Any], seed: int | None = None) -> Any:
        """The :class:`TrainingConfig` of a member training with ``params``."""
        from agentic_trading.training.config import TrainingConfig

        return TrainingConfig(
            agent_type=self.agent,
            timesteps=self.total_steps,
            seed=self.seed if seed is None else seed,
            **self.base,
            **params,
        )


def pbt_folder(name: str, settings: Settings) -> Path:
    """``PBT_PATH/NAME``: the spec, the members' record and Ray's checkpoints."""
    return Path(settings.pbt_path).expanduser().resolve() / validate_name(name, "PBT name")


def save_spec(spec: PbtSpec, settings: Settings) -> Path:
    """Create the PBT's folder with its spec; :class:`PbtError` if the name is taken."""
    folder = pbt_folder(spec.name, settings)
    if (folder / "spec.json").exists():
        raise PbtError(f"a PBT named {spec.name!r} already exists in {folder.parent}")
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "spec.json").write_text(spec.model_dump_json(indent=2) + "\n")
    return folder


def load_spec(name: str, settings: Settings) -> PbtSpec:
    """The spec ``pbt create`` saved; :class:`PbtError` naming where it looked."""
    path = pbt_folder(name, settings) / "spec.json"
    if not path.is_file():
        raise PbtError(f"no PBT {name!r} in {path.parent.parent} (PBT_PATH); pbt create makes one")
    return PbtSpec.model_validate(json.loads(path.read_text()))
