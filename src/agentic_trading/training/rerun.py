"""Re-running a tracked training from its record alone, and saying what differs.

:func:`rerun` rebuilds the training from the run's config and environment (the data found by
its path and checked by its sha256, torch's thread count as it was), trains a new run with
``rerun_of`` in its config, and compares the two: on CPU with the same code, packages and data
the final metrics are equal bit for bit. Otherwise :class:`RerunReport` names what changed.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from agentic_trading.config import Settings, get_settings
from agentic_trading.tracking import RunDetail, get_sync_experiment_repository
from agentic_trading.tracking.environment import file_sha256
from agentic_trading.training.config import TrainingConfig
from agentic_trading.training.data import DataError

__all__ = ["RerunError", "RerunReport", "compare_environments", "rerun"]

#: Final metrics that differ between two identical trainings by nature (wall-clock time).
UNTIMED = frozenset({"training_seconds"})


class RerunError(ValueError):
    """A run that cannot be re-run as recorded; the message says why in one line."""


@dataclass
class RerunReport:
    """The original run, its re-run, and what differs between them."""

    run_id: str
    rerun_id: str | None
    status: str
    metrics: dict[str, tuple[float | None, float | None]] = field(default_factory=dict)
    environment: dict[str, tuple[Any, Any]] = field(default_factory=dict)

    @property
    def identical(self) -> bool:
        """Every final metric equal bit for bit (wall-clock time aside)."""
        return self.status == "completed" and not self.metrics

    def as_data(self) -> dict[str, Any]:
        """JSON data for ``--json``."""
        return {
            "run_id": self.run_id,
            "rerun_id": self.rerun_id,
            "status": self.status,
            "identical": self.identical,
            "metrics": {k: {"original": a, "rerun": b} for k, (a, b) in self.metrics.items()},
            "environment": {
                k: {"original": a, "rerun": b} for k, (a, b) in self.environment.items()
            },
        }


def training_config(detail: RunDetail) -> TrainingConfig:
    """The training configuration a run recorded; :class:`RerunError` for a run that is not
    one training (a walk-forward group, a run tracked by other code)."""
    config = detail.config
    if config.get("kind") is not None or "agent_type" not in config or "timesteps" not in config:
        raise RerunError(
            f"run {detail.run_id} is not one training of agentic-trading train (a walk-forward "
            "group's runs are re-run one by one)"
        )
    fields = {k: v for k, v in config.items() if k in TrainingConfig.model_fields}
    try:
        return TrainingConfig(**fields)
    except ValueError as exc:
        raise RerunError(f"run {detail.run_id}'s config is no longer valid: {exc}") from None


def check_data(detail: RunDetail) -> None:
    """The run's data file is where it was and holds the same bytes; :class:`RerunError`
    naming the hash otherwise."""
    data = detail.environment.get("data")
    if not isinstance(data, Mapping) or not data.get("sha256"):
        return  # recorded before data hashes: the config's path or pair is all there is
    path = Path(str(data["path"]))
    if not path.is_file():
        raise RerunError(f"the run's data {path} is gone (sha256 {data['sha256']} recorded)")
    now = file_sha256(path)
    if now != data["sha256"]:
        raise RerunError(
            f"the data at {path} changed: sha256 {data['sha256']} recorded, {now} now; "
            "refusing to re-run on other bars"
        )


def compare_environments(
    original: Mapping[str, Any], rerun: Mapping[str, Any]
) -> dict[str, tuple[Any, Any]]:
    """What changed between two captured environments: the commit, the uncommitted diff,
    package versions, Python, torch's threads, the data's hash, the OS and CPU."""
    changed: dict[str, tuple[Any, Any]] = {}

    def look(name: str, a: Any, b: Any) -> None:
        if a != b:
            changed[name] = (a, b)

    git_a, git_b = original.get("git") or {}, rerun.get("git") or {}
    look("git commit", git_a.get("commit"), git_b.get("commit"))
    look("uncommitted diff (sha256)", git_a.get("patch_sha256"), git_b.get("patch_sha256"))
    versions_a, versions_b = original.get("versions") or {}, rerun.get("versions") or {}
    for name in sorted(set(versions_a) | set(versions_b)):
        look(f"package {name}", versions_a.get(name), versions_b.get(name))
    look("python", original.get("python"), rerun.get("python"))
    torch_a, torch_b = original.get("torch") or {}, rerun.get("torch") or {}
    look("torch threads", torch_a.get("threads"), torch_b.get("threads"))
    data_a, data_b = original.get("data") or {}, rerun.get("data") or {}
    look("data sha256", data_a.get("sha256"), data_b.get("sha256"))
    platform_a, platform_b = original.get("platform") or {}, rerun.get("platform") or {}
    look("os", platform_a.get("os"), platform_b.get("os"))
    look("cpu", platform_a.get("cpu"), platform_b.get("cpu"))
    return changed


def compare_metrics(
    original: Mapping[str, float], rerun: Mapping[str, float]
) -> dict[str, tuple[float | None, float | None]]:
    """Final metrics that are not equal bit for bit (both NaN counts as equal)."""
    out: dict[str, tuple[float | None, float | None]] = {}
    for name in sorted((set(original) | set(rerun)) - UNTIMED):
        a, b = original.get(name), rerun.get(name)
        same = a == b or (a is not None and b is not None and math.isnan(a) and math.isnan(b))
        if not same:
            out[name] = (a, b)
    return out


def rerun(
    run_id: str,
    settings: Settings | None = None,
    train: Callable[[TrainingConfig, str, dict[str, Any]], Any] | None = None,
) -> RerunReport:
    """Re-run tracked training ``run_id`` from its record and compare the two runs.

    ``train(config, experiment, extra_config)`` trains and returns a ``TrainingOutcome``
    (default: :func:`agentic_trading.training.train`; the CLI's shows a live bar). Raises
    :class:`RerunError` (one line) when the record cannot be re-run: not a training, its data
    changed or is gone.
    """
    settings = settings or get_settings()
    repository = get_sync_experiment_repository(settings)
    original = repository.get_run(run_id)
    config = training_config(original)
    check_data(original)
    threads = (original.environment.get("torch") or {}).get("threads")
    import torch

    if isinstance(threads, int) and threads > 0:
        torch.set_num_threads(threads)  # the same arithmetic: reductions split alike
    if train is None:
        from agentic_trading.training.runner import train as plain

        def train(config: TrainingConfig, name: str, extra: dict[str, Any]) -> Any:
            return plain(config, name, settings=settings, extra_config=extra)

    try:
        outcome = train(config, original.experiment, {"rerun_of": run_id})
    except DataError as exc:
        raise RerunError(str(exc)) from None
    report = RerunReport(run_id, outcome.run_id, outcome.status.value)
    if outcome.run_id is not None:
        again = repository.get_run(outcome.run_id)
        report.metrics = compare_metrics(original.final_metrics, again.final_metrics)
        report.environment = compare_environments(original.environment, again.environment)
    return report
