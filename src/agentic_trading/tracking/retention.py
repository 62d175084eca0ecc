"""Retention: ``agentic-trading experiments gc`` deletes old runs for good.

It picks runs by age, status and experiment, keeps the best few of each experiment by a final
metric and every run behind a registered model version (unless forced), and deletes each from
the catalogue, the backend (series, artifacts; MLflow: purged) and, through the caller,
messaging's finished state. A gc cut short is finished by the next one (see
:meth:`SyncExperimentRepository.delete_run`).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from agentic_trading.status import ExperimentStatus
from agentic_trading.tracking.errors import RunNotFoundError
from agentic_trading.tracking.records import LOWER_IS_BETTER, RunSummary

if TYPE_CHECKING:
    from agentic_trading.tracking.repository import SyncExperimentRepository

__all__ = ["DEFAULT_GC_STATUSES", "GcReport", "collect_garbage", "plan_gc"]

#: What gc deletes unless told otherwise: runs that did not complete.
DEFAULT_GC_STATUSES = frozenset(
    {ExperimentStatus.FAILED, ExperimentStatus.CRASHED, ExperimentStatus.CANCELLED}
)
_LIVE = {ExperimentStatus.RUNNING, ExperimentStatus.PENDING}


@dataclass
class GcReport:
    """What gc deleted (or, in a dry run, would delete), what it kept and why, and the
    bytes freed."""

    dry_run: bool
    runs: list[dict[str, Any]] = field(default_factory=list)
    kept: dict[str, str] = field(default_factory=dict)
    bytes: int = 0
    finished_earlier: int = 0  # bytes of deletions an earlier gc left unfinished

    def as_data(self) -> dict[str, Any]:
        """As JSON data (``gc --json``)."""
        return {
            "dry_run": self.dry_run,
            "runs": self.runs,
            "deleted": 0 if self.dry_run else len(self.runs),
            "kept": self.kept,
            "bytes": self.bytes,
            "finished_earlier_bytes": self.finished_earlier,
        }


def plan_gc(
    repo: SyncExperimentRepository,
    *,
    older_than: float | None = None,
    statuses: Collection[ExperimentStatus] | None = DEFAULT_GC_STATUSES,
    experiment: str | None = None,
    keep_best: int = 0,
    by: str | None = None,
    force: bool = False,
) -> tuple[list[RunSummary], dict[str, str]]:
    """The runs gc would delete, oldest first, and those it keeps (run id -> why).

    :param older_than: seconds; only runs that ended (or started, if they never ended) longer
        ago. ``None``: any age.
    :param statuses: which statuses; ``None`` every finished one. Running runs never.
    :param keep_best: keep this many best runs of each experiment by the final metric ``by``
        (lower is better for losses and ``max_drawdown``).
    :param force: also runs behind a registered model version.
    """
    if keep_best and not by:
        raise ValueError("--keep-best needs --by METRIC: which final metric makes a run best")
    wanted = None if statuses is None else list(statuses)
    runs = repo.list_runs(experiment=experiment, status=wanted)
    cutoff = None if older_than is None else time.time() - older_than
    chosen = [
        run
        for run in runs
        if run.status not in _LIVE
        and (cutoff is None or (run.ended_at or run.created_at).timestamp() < cutoff)
    ]
    kept: dict[str, str] = {}
    if keep_best and by:
        for run_id in _best(repo, {run.experiment for run in chosen}, keep_best, by):
            kept[run_id] = f"among the {keep_best} best by {by}"
    if not force:
        for run_id, versions in repo.registered_runs().items():
            kept.setdefault(run_id, "registered as " + ", ".join(versions))
    doomed = sorted((run for run in chosen if run.run_id not in kept), key=lambda r: r.created_at)
    picked = {run.run_id for run in chosen}
    return doomed, {run_id: why for run_id, why in kept.items() if run_id in picked}


def _best(
    repo: SyncExperimentRepository, experiments: set[str], count: int, metric: str
) -> set[str]:
    """The ``count`` best completed runs of each experiment by final ``metric``."""
    order = ("" if metric in LOWER_IS_BETTER else "-") + f"final_metrics.{metric}"
    best: set[str] = set()
    for name in experiments:
        runs = repo.list_runs(
            experiment=name, status=ExperimentStatus.COMPLETED, order_by=order, limit=count
        )
        best.update(run.run_id for run in runs if metric in run.final_metrics)
    return best


def collect_garbage(
    repo: SyncExperimentRepository,
    *,
    dry_run: bool = False,
    forget_live: Callable[[RunSummary], None] | None = None,
    progress: Callable[[RunSummary, int], None] | None = None,
    **selection: Any,
) -> GcReport:
    """Delete the runs :func:`plan_gc` picks (``selection`` are its arguments); in a dry run,
    only say which and how many bytes. ``forget_live(run)`` removes its messaging state;
    ``progress(run, bytes)`` is called after each run."""
    report = GcReport(dry_run=dry_run)
    if not dry_run:
        report.finished_earlier = repo.finish_deletions()
    doomed, report.kept = plan_gc(repo, **selection)
    for run in doomed:
        if dry_run:
            size = repo.stored_bytes(run.run_id)
        else:
            try:
                size = repo.delete_run(run.run_id)
            except RunNotFoundError:
                size = 0  # gone meanwhile (another gc)
            if forget_live is not None:
                forget_live(run)
        report.bytes += size
        report.runs.append(
            {
                "run_id": run.run_id,
                "experiment": run.experiment,
                "status": run.status.value,
                "created_at": run.created_at.isoformat(),
                "bytes": size,
            }
        )
        if progress is not None:
            progress(run, size)
    return report
