"""A study worker: a plain process on any host that runs a study's trials until its budget is
spent. Start one per host or core; nothing schedules them but the study's storage.

The budget counts complete and pruned trials. A worker takes a waiting trial (enqueued, or the
retry of a trial whose worker died) before a new one, and starts a new one only while complete,
pruned, running and waiting trials together stay under the budget; when the rest of the budget is
running elsewhere it waits (a trial of a dead worker is failed after ``STUDY_GRACE_PERIOD`` and
retried, so someone must be there to run it) and leaves once the budget is reached.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import time
import zlib
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from agentic_trading.common import signals
from agentic_trading.config import Settings
from agentic_trading.studies.attributes import trial_info
from agentic_trading.studies.objective import TrialCancelled, TrialObjective
from agentic_trading.studies.spec import SPEC_ATTRIBUTE, StudySpec
from agentic_trading.studies.storage import import_optuna, quiet_optuna
from agentic_trading.studies.study import (
    StudyError,
    load_study,
    ordered_states,
    summarise,
    trial_state,
)

__all__ = ["WorkerReport", "run_worker"]

logger = logging.getLogger("agentic_trading.studies")


@dataclass
class WorkerReport:
    """What one worker did: trials by final state, and why it stopped."""

    worker: str
    trials: Counter[str] = field(default_factory=Counter)
    reason: str = ""

    def as_data(self) -> dict[str, Any]:
        """As JSON data."""
        return {"worker": self.worker, "trials": dict(self.trials), "stopped": self.reason}


def run_worker(
    name: str,
    settings: Settings,
    *,
    max_trials: int | None = None,
    on_trial: Callable[[Any], None] | None = None,
    poll_interval: float = 2.0,
) -> WorkerReport:
    """Run trials of study ``name`` until its budget is spent (or ``max_trials`` ran here).

    Ctrl-C stops the training of the current trial (``cancelled`` in messaging and tracking,
    failed in Optuna) and raises ``KeyboardInterrupt``; SIGTERM and SIGHUP do the same and
    return (``report.reason`` names the signal; :func:`signals.received` has it).
    """
    optuna = import_optuna()
    worker = f"{socket.gethostname()}:{os.getpid()}"
    study, spec = load_study(name, settings, seed=_sampler_seed(name, worker))
    objective = TrialObjective(spec, settings, worker)
    report = WorkerReport(worker)
    alerts = _StudyAlerts(settings, name)
    failures = 0
    while max_trials is None or sum(report.trials.values()) < max_trials:
        budget = _budget(study, spec)
        states = Counter(t.state.name for t in study.get_trials(deepcopy=False))
        done = states["COMPLETE"] + states["PRUNED"]
        if done >= budget:
            report.reason = f"the budget of {budget} trials is spent"
            alerts.finished(study, spec)
            return report
        if states["WAITING"] == 0 and done + states["RUNNING"] >= budget:
            # The rest runs elsewhere; stay to run the retry of a trial whose worker died.
            # (Before each trial Optuna itself fails stale trials; here no trial starts.)
            time.sleep(poll_interval)
            with quiet_optuna():
                optuna.storages.fail_stale_trials(study)
            continue
        if failures > max(3, budget // 2):
            raise StudyError(
                f"{failures} trials of study {name!r} failed on this worker; see the log above "
                "(agentic-trading experiments list --study NAME shows their errors)"
            )
        trial = _run_one(study, objective)
        report.trials[trial_state(trial) if trial else "lost"] += 1
        if trial is not None and trial.state.name == "FAIL":
            failures += 1
        if trial is not None and trial.state.name == "COMPLETE":
            alerts.new_best(study, spec, trial)
        if on_trial is not None and trial is not None:
            on_trial(trial)
        signum = signals.received()
        if signum is not None:  # SIGTERM or SIGHUP: the trial ended cancelled; so does the worker
            report.reason = f"terminated by {signal.Signals(signum).name}"
            return report
    report.reason = f"ran {max_trials} trial(s) as asked"
    return report


def _run_one(study: Any, objective: TrialObjective) -> Any:
    """One trial through ``study.optimize``; the finished trial, or ``None`` if another worker
    had already failed it (its heartbeat looked stale)."""
    optuna = import_optuna()
    finished: list[Any] = []
    try:
        with quiet_optuna():
            study.optimize(
                objective,
                n_trials=1,
                catch=(TrialCancelled, Exception),
                callbacks=[lambda _study, trial: finished.append(trial)],
            )
    except optuna.exceptions.UpdateFinishedTrialError as exc:
        logger.warning("a trial was already failed by another worker (stale heartbeat): %s", exc)
    return finished[-1] if finished else None


def _budget(study: Any, spec: StudySpec) -> int:
    """The study's budget as it is now (enqueueing trials raises it)."""
    data = study.user_attrs.get(SPEC_ATTRIBUTE)
    return int(data["trials"]) if isinstance(data, dict) and "trials" in data else spec.trials


def _sampler_seed(name: str, worker: str) -> int:
    # Workers must not propose the same parameters: seed each from the study and itself.
    return zlib.crc32(f"{name}/{worker}/{time.time_ns()}".encode())


class _StudyAlerts:
    """A study's alerts from its workers: a new best trial, the study finished (each sent
    once, by whichever worker claims it first)."""

    def __init__(self, settings: Settings, name: str) -> None:
        from agentic_trading.alerts import Alerter
        from agentic_trading.tracking.catalogue import catalogue_url

        self.name = name
        self.alerter = Alerter.for_settings(settings, catalogue_url(settings))

    def new_best(self, study: Any, spec: StudySpec, trial: Any) -> None:
        from agentic_trading.alerts import AlertEvent, study_alert

        if self.alerter is None or not self.alerter.wants(AlertEvent.NEW_BEST):
            return
        summary = summarise(study, spec)
        if summary.best_trial != trial.number:
            return
        params = ", ".join(f"{k}={v!r}" for k, v in sorted(trial.params.items()))
        self.alerter.notify(
            study_alert(
                AlertEvent.NEW_BEST, self.name, trial=trial.number,
                run_id=trial_info(trial).get("run_id"), dashboard_url=self.alerter.dashboard_url,
                summary=f"{spec.objective} {trial.value:.6g} ({params}); "
                f"{summary.finished} of {summary.budget} trials done",
            )
        )  # fmt: skip

    def finished(self, study: Any, spec: StudySpec) -> None:
        from agentic_trading.alerts import AlertEvent, study_alert

        if self.alerter is None or not self.alerter.wants(AlertEvent.STUDY_FINISHED):
            return
        summary = summarise(study, spec)
        states = ", ".join(f"{n} {state}" for state, n in ordered_states(summary.states))
        best = (
            f"best trial #{summary.best_trial}: {spec.objective} {summary.best_value:.6g}"
            if summary.best_value is not None
            else "no trial completed"
        )
        self.alerter.notify(
            study_alert(
                AlertEvent.STUDY_FINISHED, self.name, dashboard_url=self.alerter.dashboard_url,
                summary=f"{summary.finished} of {summary.budget} trials done ({states}); {best}",
            )
        )  # fmt: skip
