"""What the tracking system takes in and hands back: metrics, run handles and run records."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field

from agentic_trading.common.values import to_float
from agentic_trading.status import ExperimentStatus

__all__ = [
    "LOWER_IS_BETTER",
    "RECORD_ATTRIBUTES",
    "ExperimentSummary",
    "MetricSeries",
    "RunComparison",
    "RunDetail",
    "RunHandle",
    "RunSummary",
    "TrainingMetrics",
    "split_metric_values",
]

MAX_METRIC_NAME = 128

#: The attributes of a run's own record in every backend; ``log_params`` may not use them and
#: every other attribute reads back as the run's ``params``.
RECORD_ATTRIBUTES = frozenset(
    {"hparams", "status", "final_metrics", "error", "host", "pid", "heartbeat_at"}
    | {"skipped_non_finite", "values_logged", "environment"}
)

#: Metrics where a smaller value is the better one, for comparisons and ``best_run``'s default.
LOWER_IS_BETTER = frozenset({"loss", "value_loss", "policy_loss", "max_drawdown"})


def _number_or_none(value: object) -> float | None:
    return None if value is None else to_float(value, "metric value")


Metric = Annotated[float | None, BeforeValidator(_number_or_none)]


class TrainingMetrics(BaseModel):
    """One point of training metrics at ``step``.

    The common training signals have fields; any other metric is passed by name as an extra
    keyword (``TrainingMetrics(step=10, reward=1.5, sortino=0.7)``). A field left ``None`` is
    not logged. Values are real numbers (numpy scalars and one-element tensors work too); NaN and
    infinity are accepted here and skipped when logged (see :func:`split_metric_values`).
    """

    model_config = ConfigDict(extra="allow", frozen=True)

    step: int = Field(ge=0)
    loss: Metric = None
    reward: Metric = None
    episode_length: Metric = None
    value_loss: Metric = None
    policy_loss: Metric = None
    entropy: Metric = None
    learning_rate: Metric = None
    explained_variance: Metric = None
    portfolio_value: Metric = None

    def values(self) -> dict[str, object]:
        """The metrics of this point by name, without ``step`` and without unset fields."""
        out: dict[str, object] = {
            name: value
            for name, value in self.__dict__.items()
            if value is not None and name != "step"
        }
        if self.__pydantic_extra__:
            out.update(self.__pydantic_extra__)
        return out


def split_metric_values(values: dict[str, object]) -> tuple[dict[str, float], list[str]]:
    """Split ``values`` into finite floats to store and the names of non-finite ones to skip.

    The policy for every tracker: a value that is not a real number (a string, ``None``, a list,
    ``bool``) is a programming error and raises ``ValueError`` naming the metric; NaN and
    infinity are measurements (a diverged loss) that Aim's charts and comparisons cannot use, so
    they are skipped, counted on the run (``skipped_non_finite``) and reported once per metric in
    a warning.
    """
    finite: dict[str, float] = {}
    skipped: list[str] = []
    for name, value in values.items():
        if not isinstance(name, str) or not name or len(name) > MAX_METRIC_NAME:
            raise ValueError(
                f"metric name {name!r} is not allowed: use 1-{MAX_METRIC_NAME} characters"
            )
        number = value if type(value) is float else to_float(value, f"metric {name!r}")
        if math.isfinite(number):
            finite[name] = number
        else:
            skipped.append(name)
    return finite, skipped


@dataclass(frozen=True)
class RunHandle:
    """A tracking run being written. ``run_id`` is the Aim run hash."""

    run_id: str
    experiment: str
    created_at: datetime

    @property
    def id(self) -> str:
        """The run id (the Aim run hash); the same as ``run_id``."""
        return self.run_id

    def __str__(self) -> str:
        return f"{self.experiment}/{self.run_id}"


class RunSummary(BaseModel):
    """One run as a list shows it. ``params`` holds what ``log_params`` added (a verdict's
    words, a study's trial number)."""

    run_id: str
    experiment: str
    status: ExperimentStatus
    config: dict[str, Any] = {}
    final_metrics: dict[str, float] = {}
    error: str | None = None
    tags: list[str] = []
    artifacts: dict[str, str] = {}
    params: dict[str, Any] = {}
    created_at: datetime
    ended_at: datetime | None = None
    heartbeat_at: datetime | None = None
    host: str | None = None
    pid: int | None = None

    @property
    def duration_seconds(self) -> float | None:
        """Seconds from creation to the end, or to the last heartbeat while unfinished."""
        end = self.ended_at or self.heartbeat_at
        return None if end is None else max(0.0, (end - self.created_at).total_seconds())


class RunDetail(RunSummary):
    """One run in full: a summary plus the names of its metric series and skipped values."""

    metrics: list[str] = []
    skipped_non_finite: dict[str, int] = {}
    #: Metric values the tracker accepted for the run (non-finite ones not counted); the stored
    #: series of a run that closed hold exactly this many values between them.
    values_logged: int | None = None
    #: Where the run came from (``tracking.environment``): git commit, branch, dirty flag;
    #: package versions; Python, OS and CPU; command line; data file and its sha256; seeds;
    #: settings with secrets masked. Empty for runs tracked before it was captured.
    environment: dict[str, Any] = {}
    duration: float | None = None


class MetricSeries(BaseModel):
    """The values of one metric of one run, in step order."""

    run_id: str
    name: str
    steps: list[int]
    values: list[float]
    timestamps: list[float]

    def last(self) -> float | None:
        """The latest value, if any."""
        return self.values[-1] if self.values else None


class ExperimentSummary(BaseModel):
    """All runs of one experiment name, summed up."""

    name: str
    run_count: int
    status_counts: dict[str, int]
    last_activity: datetime | None
    metric: str
    best_value: float | None = None
    best_run_id: str | None = None


@dataclass
class RunComparison:
    """Runs side by side: ``table[run_id][metric]`` (``None`` where a run lacks the metric),
    the best run per metric (higher is better unless listed in ``lower_is_better``), and the
    config keys whose values differ between the runs (``config_diff[key][run_id]``)."""

    run_ids: list[str]
    metrics: list[str]
    table: dict[str, dict[str, float | None]]
    best: dict[str, str]
    config_diff: dict[str, dict[str, Any]]
    runs: dict[str, RunSummary] = field(default_factory=dict)
