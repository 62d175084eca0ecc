"""Search spaces: which hyperparameters a study tries, over which ranges or choices.

A space maps a :class:`~agentic_trading.training.TrainingConfig` field to a range (``low``,
``high``, ``log``, ``step``, ``type``) or a list of choices; a plain value fixes the field. Every
agent has a built-in space (PPO's after rl-baselines3-zoo's); a user's own is a YAML file::

    learning_rate: {low: 1.0e-5, high: 2.0e-3, log: true}
    n_steps: [128, 256, 512, 1024]
    gamma: {low: 0.9, high: 0.9999}
    n_epochs: {low: 3, high: 20, type: int}
    net_arch: [tiny, small]
    ent_coef: 0.0                      # fixed, not searched

Everything is checked before a study exists: an unknown parameter, a bad range or type, a value
the training would refuse, or an empty space is one :class:`SpaceError` naming it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import ValidationError

__all__ = ["BUILTIN_SPACES", "TUNABLE", "Parameter", "SearchSpace", "SpaceError"]


class SpaceError(ValueError):
    """A search space that cannot be used; the message names the parameter and the problem."""


#: The TrainingConfig fields a study may search, per agent.
#: Fields every agent's search may include: what it sees and what it is paid.
_EVERY_AGENT = ("window_size", "features", "reward", "drawdown_penalty")
TUNABLE: dict[str, tuple[str, ...]] = {
    "PPO": (
        "learning_rate", "n_steps", "batch_size", "gamma", "gae_lambda", "ent_coef",
        "clip_range", "n_epochs", "net_arch", "activation", *_EVERY_AGENT,
    ),
    "A2C": (
        "learning_rate", "n_steps", "gamma", "gae_lambda", "ent_coef", "net_arch",
        "activation", *_EVERY_AGENT,
    ),
    "DQN": ("learning_rate", "batch_size", "gamma", "net_arch", "activation", *_EVERY_AGENT),
    "SAC": (
        "learning_rate", "batch_size", "gamma", "ent_coef", "net_arch", "activation",
        *_EVERY_AGENT,
    ),
    "TD3": ("learning_rate", "batch_size", "gamma", "net_arch", "activation", *_EVERY_AGENT),
}  # fmt: skip

Kind = Literal["float", "int", "categorical"]


@dataclass(frozen=True)
class Parameter:
    """One searched parameter: a float or int range (optionally log-scaled or stepped), or a
    list of choices."""

    name: str
    kind: Kind
    low: float | None = None
    high: float | None = None
    log: bool = False
    step: float | None = None
    choices: tuple[Any, ...] = ()

    def suggest(self, trial: Any) -> Any:
        """The value an Optuna ``trial`` suggests for this parameter."""
        if self.kind == "categorical":
            return trial.suggest_categorical(self.name, list(self.choices))
        assert self.low is not None and self.high is not None
        if self.kind == "int":
            step = int(self.step or 1)
            return trial.suggest_int(
                self.name, int(self.low), int(self.high), step=step, log=self.log
            )
        return trial.suggest_float(self.name, self.low, self.high, step=self.step, log=self.log)

    def as_data(self) -> Any:
        """The parameter as it is written in a space file."""
        if self.kind == "categorical":
            return list(self.choices)
        out: dict[str, Any] = {"low": self.low, "high": self.high}
        if self.log:
            out["log"] = True
        if self.step is not None:
            out["step"] = self.step
        if self.kind == "int":
            out["type"] = "int"
        return out

    def describe(self) -> str:
        """``learning_rate: 1e-05..0.002 (log)``, ``n_steps: one of 128, 256``."""
        if self.kind == "categorical":
            return f"{self.name}: one of {', '.join(map(str, self.choices))}"
        scale = " (log)" if self.log else ""
        step = f" step {self.step:g}" if self.step else ""
        return f"{self.name}: {self.low:g}..{self.high:g}{scale}{step}"


@dataclass(frozen=True)
class SearchSpace:
    """The searched parameters of one agent, and the fields it fixes."""

    agent: str
    parameters: dict[str, Parameter]
    fixed: dict[str, Any]

    def suggest(self, trial: Any) -> dict[str, Any]:
        """Every searched parameter's value for ``trial``, plus the fixed ones."""
        return {**self.fixed, **{name: p.suggest(trial) for name, p in self.parameters.items()}}

    def as_data(self) -> dict[str, Any]:
        """The space as a mapping that :meth:`from_mapping` reads back."""
        return {**self.fixed, **{name: p.as_data() for name, p in self.parameters.items()}}

    @classmethod
    def builtin(cls, agent: str) -> SearchSpace:
        """The built-in space of ``agent`` (PPO, A2C, DQN, SAC, TD3)."""
        agent = _agent(agent)
        return cls.from_mapping(BUILTIN_SPACES[agent], agent, source=f"built-in {agent} space")

    @classmethod
    def from_file(cls, path: str | Path, agent: str) -> SearchSpace:
        """A space from a YAML (or JSON) file, checked for ``agent``."""
        import yaml

        file = Path(path)
        if not file.is_file():
            raise SpaceError(f"search space {str(file)!r}: no such file")
        try:
            data = yaml.safe_load(file.read_text(encoding="utf-8"))
        except (yaml.YAMLError, UnicodeDecodeError) as exc:
            raise SpaceError(f"search space {file}: not readable YAML ({exc})") from None
        return cls.from_mapping(data, agent, source=str(file))

    @classmethod
    def from_mapping(cls, data: object, agent: str, source: str = "search space") -> SearchSpace:
        """A space from a mapping of field name to range, choices or fixed value."""
        agent = _agent(agent)
        if not isinstance(data, Mapping) or not data:
            raise SpaceError(
                f"{source}: empty; give at least one parameter to search, e.g. "
                "learning_rate: {low: 1.0e-5, high: 1.0e-3, log: true}"
            )
        allowed = TUNABLE[agent]
        parameters: dict[str, Parameter] = {}
        fixed: dict[str, Any] = {}
        for name, spec in data.items():
            if name not in allowed:
                raise SpaceError(
                    f"{source}: unknown parameter {name!r} for {agent}; "
                    f"searchable: {', '.join(allowed)}"
                )
            if isinstance(spec, Mapping):
                parameters[name] = _range(source, agent, str(name), spec)
            elif isinstance(spec, list | tuple):
                parameters[name] = _choices(source, agent, str(name), spec)
            else:
                _check_value(source, agent, str(name), spec)
                fixed[str(name)] = spec
        if not parameters:
            raise SpaceError(f"{source}: every parameter is fixed; nothing is searched")
        return cls(agent, parameters, fixed)


def _agent(agent: str) -> str:
    name = str(agent).upper()
    if name not in TUNABLE:
        known = ", ".join(a.lower() for a in TUNABLE)
        raise SpaceError(f"agent {agent!r} is not allowed: expected one of {known}")
    return name


def _check_value(source: str, agent: str, name: str, value: object) -> None:
    """Raise SpaceError unless the training accepts ``value`` for ``name``."""
    from agentic_trading.training.config import TrainingConfig

    try:
        TrainingConfig(agent_type=agent, **{name: value})
    except ValidationError as exc:
        reason = str(exc.errors()[0].get("msg", "not allowed")).removeprefix("Value error, ")
        raise SpaceError(f"{source}: {name}={value!r} is not allowed: {reason}") from None


_RANGE_KEYS = {"low", "high", "log", "step", "type"}


def _range(source: str, agent: str, name: str, spec: Mapping[str, Any]) -> Parameter:
    unknown = set(spec) - _RANGE_KEYS
    if unknown:
        raise SpaceError(
            f"{source}: {name} has unknown key(s) {', '.join(sorted(map(str, unknown)))}; "
            "a range takes low, high, log, step, type"
        )
    low, high = _number(spec.get("low")), _number(spec.get("high"))
    for bound, value in (("low", low), ("high", high)):
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise SpaceError(f"{source}: {name}.{bound} must be a number, got {value!r}")
        if not math.isfinite(value):
            raise SpaceError(f"{source}: {name}.{bound} must be finite, got {value!r}")
    assert isinstance(low, int | float) and isinstance(high, int | float)
    if low >= high:
        raise SpaceError(f"{source}: {name} has low {low!r} >= high {high!r}; an empty range")
    log = spec.get("log", False)
    if not isinstance(log, bool):
        raise SpaceError(f"{source}: {name}.log must be true or false, got {log!r}")
    if log and low <= 0:
        raise SpaceError(f"{source}: {name} is log-scaled, so low must be above 0, got {low!r}")
    given = spec.get("type") or (
        "int" if isinstance(low, int) and isinstance(high, int) else "float"
    )
    if given not in ("int", "float"):
        raise SpaceError(f"{source}: {name}.type must be int or float, got {given!r}")
    kind: Kind = "int" if given == "int" else "float"
    if kind == "int" and not (float(low).is_integer() and float(high).is_integer()):
        raise SpaceError(f"{source}: {name} is an int range, so low and high must be whole")
    step = _number(spec.get("step"))
    if step is not None:
        if isinstance(step, bool) or not isinstance(step, int | float) or step <= 0:
            raise SpaceError(f"{source}: {name}.step must be a positive number, got {step!r}")
        if log:
            raise SpaceError(f"{source}: {name} cannot be both log-scaled and stepped")
    for value in (low, high):
        _check_value(source, agent, name, int(value) if kind == "int" else float(value))
    return Parameter(name, kind, float(low), float(high), log, step)


def _number(value: object) -> object:
    """YAML 1.1 reads ``1e-5`` as text (it wants ``1.0e-5``); take it as the number it is."""
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return value
    return value


def _looks_numeric(value: object) -> bool:
    return isinstance(value, str) and isinstance(_number(value), float)


def _choices(source: str, agent: str, name: str, values: list[Any] | tuple[Any, ...]) -> Parameter:
    if not values:
        raise SpaceError(f"{source}: {name} has no choices")
    if len({repr(v) for v in values}) != len(values):
        raise SpaceError(f"{source}: {name} lists a choice twice: {list(values)!r}")
    values = [_number(v) if _looks_numeric(v) else v for v in values]
    for value in values:
        if not isinstance(value, str | int | float) or isinstance(value, bool):
            raise SpaceError(f"{source}: {name} choice {value!r} must be a number or a word")
        _check_value(source, agent, name, value)
    return Parameter(name, "categorical", choices=tuple(values))


#: Built-in spaces. PPO's follows rl-baselines3-zoo's ``sample_ppo_params``, with a learning
#: rate range suited to short trials and our network sizes.
BUILTIN_SPACES: dict[str, dict[str, Any]] = {
    "PPO": {
        "learning_rate": {"low": 1e-5, "high": 2e-3, "log": True},
        "n_steps": [64, 128, 256, 512, 1024, 2048],
        "batch_size": [32, 64, 128, 256],
        "gamma": [0.9, 0.95, 0.98, 0.99, 0.995, 0.999, 0.9999],
        "gae_lambda": [0.8, 0.9, 0.92, 0.95, 0.98, 0.99, 1.0],
        "ent_coef": {"low": 1e-8, "high": 0.1, "log": True},
        "clip_range": [0.1, 0.2, 0.3, 0.4],
        "n_epochs": [1, 5, 10, 20],
        "net_arch": ["tiny", "small", "medium"],
        "activation": ["tanh", "relu"],
    },
    "A2C": {
        "learning_rate": {"low": 1e-5, "high": 2e-3, "log": True},
        "n_steps": [8, 16, 32, 64],
        "gamma": [0.9, 0.95, 0.98, 0.99, 0.995, 0.999, 0.9999],
        "gae_lambda": [0.8, 0.9, 0.92, 0.95, 0.98, 0.99, 1.0],
        "ent_coef": {"low": 1e-8, "high": 0.1, "log": True},
        "net_arch": ["tiny", "small", "medium"],
        "activation": ["tanh", "relu"],
    },
    "DQN": {
        "learning_rate": {"low": 1e-5, "high": 2e-3, "log": True},
        "batch_size": [16, 32, 64, 128, 256],
        "gamma": [0.9, 0.95, 0.98, 0.99, 0.995, 0.999],
        "net_arch": ["tiny", "small", "medium"],
        "activation": ["tanh", "relu"],
    },
    "SAC": {
        "learning_rate": {"low": 1e-5, "high": 2e-3, "log": True},
        "batch_size": [32, 64, 128, 256],
        "gamma": [0.9, 0.95, 0.98, 0.99, 0.995, 0.999],
        "net_arch": ["tiny", "small", "medium"],
        "activation": ["tanh", "relu"],
    },
    "TD3": {
        "learning_rate": {"low": 1e-5, "high": 2e-3, "log": True},
        "batch_size": [32, 64, 128, 256],
        "gamma": [0.9, 0.95, 0.98, 0.99, 0.995, 0.999],
        "net_arch": ["tiny", "small", "medium"],
        "activation": ["tanh", "relu"],
    },
}
