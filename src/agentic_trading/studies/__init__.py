"""Studies: hyperparameter searches on Optuna, spread over any number of hosts.

A study is an Optuna study in ``STUDY_STORAGE`` (an SQLite file on one machine, PostgreSQL for
many) plus our :class:`StudySpec`: agent, data, search space, objective on validation bars,
budget, sampler and pruner. Workers are plain processes that run its trials
(:func:`run_worker`); every trial is an ordinary training, live and tracked, that the pruner may
stop early (``pruned``). ::

    from agentic_trading.studies import SearchSpace, StudySpec, create_study, run_worker

    spec = StudySpec(name="ppo-eurusd", space=SearchSpace.builtin("PPO").as_data(), trials=40)
    create_study(spec, settings)
    run_worker("ppo-eurusd", settings)
"""

from typing import TYPE_CHECKING, Any

from agentic_trading.studies.space import SearchSpace, SpaceError
from agentic_trading.studies.spec import OBJECTIVES, StudySpec
from agentic_trading.studies.storage import StudyStorageError, open_storage
from agentic_trading.studies.study import (
    StudyError,
    StudySummary,
    TrialRow,
    add_trials,
    create_study,
    delete_study,
    enqueue_trials,
    judge,
    list_studies,
    load_study,
    parameter_importances,
    summarise,
    trial_rows,
)

if TYPE_CHECKING:
    from agentic_trading.studies.worker import WorkerReport, run_worker

__all__ = [
    "OBJECTIVES",
    "SearchSpace",
    "SpaceError",
    "StudyError",
    "StudySpec",
    "StudyStorageError",
    "StudySummary",
    "TrialRow",
    "WorkerReport",
    "add_trials",
    "create_study",
    "delete_study",
    "enqueue_trials",
    "judge",
    "list_studies",
    "load_study",
    "open_storage",
    "parameter_importances",
    "run_worker",
    "summarise",
    "trial_rows",
]


def __getattr__(name: str) -> Any:
    # The worker trains (Stable-Baselines3, torch): import it when used, so that the CLI and
    # the dashboard, which only read studies, start in a fraction of a second.
    if name in ("run_worker", "WorkerReport"):
        from agentic_trading.studies import worker

        return getattr(worker, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
