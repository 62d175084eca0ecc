"""What a study keeps on each Optuna trial, beyond Optuna's own record (its user attributes)."""

from __future__ import annotations

from typing import Any

__all__ = ["TRIAL_ATTRIBUTE", "VALIDATION_ATTRIBUTE", "trial_info", "update_trial_info"]

#: A trial's live experiment id, worker (``host:pid``), run id and, if stopped, its status.
TRIAL_ATTRIBUTE = "agentic_trading"
#: A complete trial's validation record: Sharpe, bars, moments, test verdict, per-bar returns.
VALIDATION_ATTRIBUTE = "validation"


def trial_info(trial: Any) -> dict[str, Any]:
    """What we keep of a trial (``experiment_id``, ``worker``, ``run_id``, ``status``)."""
    info = trial.user_attrs.get(TRIAL_ATTRIBUTE)
    return dict(info) if isinstance(info, dict) else {}


def update_trial_info(trial: Any, **values: Any) -> None:
    """Add ``values`` to a running trial's record: one storage write."""
    trial.set_user_attr(TRIAL_ATTRIBUTE, {**trial_info(trial), **values})
