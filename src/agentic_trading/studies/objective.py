"""One trial: an ordinary training (live and tracked), scored and pruned on validation bars.

The trial's run carries ``study``, ``trial`` and the parameters in its config; the Optuna trial
holds the run id, the live experiment id and the worker back (user attribute
``agentic_trading``) and, once complete, the validation record a study verdict needs
(``validation``: Sharpe, bars, moments, per-bar returns). Three storage writes a trial. Every ``eval_every`` steps the policy trades the validation bars, the
objective metric is reported with ``trial.report`` and tracked as the series
``validation_<objective>``; when the pruner says so the training stops and ends ``pruned`` in
messaging and tracking, and in Optuna.
"""

from __future__ import annotations

import logging
import socket
import uuid
from typing import Any

from stable_baselines3.common.callbacks import BaseCallback

from agentic_trading.config import Settings
from agentic_trading.evaluation import statistics as st
from agentic_trading.evaluation.verdict import churning_policy, degenerate_policy
from agentic_trading.status import ExperimentStatus
from agentic_trading.studies.attributes import (
    VALIDATION_ATTRIBUTE,
    trial_info,
    update_trial_info,
)
from agentic_trading.studies.spec import StudySpec
from agentic_trading.training.runner import TrainingSession, train

__all__ = ["PruningCallback", "TrialCancelled", "TrialObjective"]

logger = logging.getLogger("agentic_trading.studies")


class TrialCancelled(RuntimeError):
    """The trial's training was stopped (a stop request, Ctrl-C): not a result."""


class PruningCallback(BaseCallback):
    """Scores the policy on the validation bars every ``every`` steps, reports it to the trial
    and stops the training as ``pruned`` when the study's pruner says so."""

    def __init__(self, trial: Any, session: TrainingSession, objective: str, every: int) -> None:
        super().__init__()
        self.trial, self.session, self.objective, self.every = trial, session, objective, every
        self.reported: list[tuple[int, float]] = []

    def _on_training_start(self) -> None:
        run = self.session.experiment.run
        if run is not None:
            update_trial_info(self.trial, run_id=run.run_id)

    def _on_step(self) -> bool:
        step = self.num_timesteps
        if step % self.every or step >= self.session.config.timesteps:
            return True  # the last step is scored by the training's own validation
        value = _metric(self.session, self.model, self.objective)
        self.trial.report(value, step)
        self.reported.append((step, value))
        experiment = self.session.experiment
        name = f"validation_{self.objective}"
        if experiment.tracker is not None and experiment.run is not None:
            experiment.tracker.log_metrics(experiment.run, {name: value}, step=step)
        if self.trial.should_prune():
            experiment.stop(
                f"validation {self.objective} {value:.4g} at step {step:,} is below what "
                "other trials had reached by then",
                ExperimentStatus.PRUNED,
                {name: value, "pruned_at_step": float(step)},
            )
            return False
        return True


def _metric(session: TrainingSession, model: Any, objective: str) -> float:
    record = session.validation(model)
    metrics = record.metrics()
    if objective == "excess_sharpe":
        from agentic_trading.evaluation.trading import buy_and_hold

        window = session.split.validation
        baseline = buy_and_hold(
            window.close[window.start :], session.config.cost_pips, session.config.pip_size
        )
        return metrics["sharpe_ratio"] - baseline.metrics()["sharpe_ratio"]
    return float(metrics[objective])


class TrialObjective:
    """The function ``study.optimize`` calls: one trial's training, its validation value."""

    def __init__(self, spec: StudySpec, settings: Settings, worker: str = "") -> None:
        self.spec = spec
        self.settings = settings
        self.worker = worker or socket.gethostname()
        self.space = spec.search_space

    def __call__(self, trial: Any) -> float:
        optuna = __import__("optuna")
        params = self.space.suggest(trial)
        seed = trial.user_attrs.get("seed")
        config = self.spec.training_config(params, None if seed is None else int(seed))
        experiment_id = f"{self.spec.name}-t{trial.number}-{uuid.uuid4().hex[:6]}"
        update_trial_info(trial, experiment_id=experiment_id, worker=self.worker)
        every = self.spec.evaluation_interval
        try:
            outcome = train(
                config,
                self.spec.name,
                experiment_id=experiment_id,
                settings=self.settings,
                extra_config={"study": self.spec.name, "trial": trial.number, "params": params},
                callbacks=lambda session: [
                    PruningCallback(trial, session, self.spec.objective, every)
                ],
            )
        except KeyboardInterrupt:
            update_trial_info(trial, status="cancelled")
            raise
        update_trial_info(trial, steps=outcome.steps)
        if outcome.run_id and trial_info(trial).get("run_id") != outcome.run_id:
            update_trial_info(trial, run_id=outcome.run_id)
        if outcome.status is ExperimentStatus.PRUNED:
            raise optuna.TrialPruned()
        if outcome.status is not ExperimentStatus.COMPLETED:
            update_trial_info(trial, status=outcome.status.value)
            raise TrialCancelled(f"trial {trial.number} was {outcome.status.value}")
        validation = outcome.validation_record
        assert validation is not None
        warning = churning_policy(validation) or degenerate_policy(validation)
        if warning:
            logger.warning(
                "trial %d on validation bars: %s (%s steps may be too few to learn; "
                "see `study show`)",
                trial.number,
                warning,
                f"{outcome.steps:,}",
            )
        # What the study's verdict needs, without reading tracking: the moments for the
        # Deflated Sharpe Ratio and the per-bar returns for PBO's cross-validation.
        trial.set_user_attr(
            VALIDATION_ATTRIBUTE,
            {
                "sharpe": st.sharpe_ratio(validation.returns),
                "bars": validation.bars,
                "skewness": st.skewness(validation.returns),
                "kurtosis": st.kurtosis(validation.returns),
                "test_verdict": outcome.verdict.label if outcome.verdict else None,
                "warning": warning,
                "returns": [float(f"{r:.8g}") for r in validation.returns.tolist()],
            },
        )
        return float(outcome.validation[self.spec.objective])
