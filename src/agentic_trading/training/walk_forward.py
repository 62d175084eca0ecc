"""A walk-forward evaluation: one configuration trained on every fold with several seeds, judged
as a group.

Every training is an ordinary run (live and tracked) whose config carries the group's id; the
group itself is a run too (config ``kind: evaluation_group``, tag ``evaluation-group``) whose
final metrics and ``verdict`` attribute hold the group's verdict, and a live experiment whose
progress counts the steps of all its trainings.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from stable_baselines3.common.callbacks import BaseCallback

from agentic_trading.config import Settings, get_settings
from agentic_trading.evaluation.verdict import (
    GROUP_KIND,
    GROUP_TAG,
    GroupMember,
    GroupVerdict,
    group_verdict,
)
from agentic_trading.messaging.channels.sync import SyncTrainingChannel
from agentic_trading.status import ExperimentStatus
from agentic_trading.tracking import get_sync_tracker
from agentic_trading.training.callbacks import ExperimentCallback
from agentic_trading.training.config import TrainingConfig
from agentic_trading.training.data import load_prices, walk_forward
from agentic_trading.training.runner import TrainingOutcome, train

__all__ = ["GROUP_KIND", "GROUP_TAG", "GroupOutcome", "train_group"]


@dataclass
class GroupOutcome:
    """What a walk-forward evaluation produced: the group's ids, status, members and verdict."""

    group_id: str | None
    experiment_id: str
    experiment_name: str
    status: ExperimentStatus
    folds: int
    seeds: list[int]
    members: list[TrainingOutcome] = field(default_factory=list)
    verdict: GroupVerdict | None = None


class _GroupProgress(BaseCallback):
    """Publishes the group's progress (all trainings' steps) while one member trains."""

    def __init__(
        self, channel: SyncTrainingChannel, experiment_id: str, done: int, total: int
    ) -> None:
        super().__init__()
        self._channel, self._id, self._done, self._total = channel, experiment_id, done, total

    def _on_step(self) -> bool:
        if self.num_timesteps % 100 == 0:
            step = min(self._done + self.num_timesteps, self._total)
            self._channel.publish_progress(self._id, step, self._total)
        return True


def train_group(
    config: TrainingConfig,
    experiment_name: str | None = None,
    *,
    seeds: int | Sequence[int] = 1,
    settings: Settings | None = None,
    experiment_id: str | None = None,
    progress_every: int = 100,
    log_every: int = 1000,
    on_member_start: Callable[[ExperimentCallback], None] | None = None,
) -> GroupOutcome:
    """Train ``config`` on each of its ``config.folds`` walk-forward folds with each seed, then
    judge the group (:func:`~agentic_trading.evaluation.verdict.group_verdict`).

    ``seeds`` is a count (``config.seed``, ``config.seed + 1``, ...) or the seeds themselves. A
    member stopped or interrupted cancels the group; a member that fails fails it.
    """
    settings = settings or get_settings()
    settings.check_artifact_store()
    seed_list = _seeds(config.seed, seeds)
    # Every fold must fit the data before anything is created.
    walk_forward(
        load_prices(config.pair, config.data),
        config.history,
        config.folds,
        config.validation_fraction,
        config.held_out_fraction,
    )
    name = experiment_name or f"{config.agent_type}_{config.pair}"
    group_experiment = experiment_id or f"{name}-group-{uuid.uuid4().hex[:8]}"
    group_config = {
        **config.model_dump(exclude={"fold", "seed"}),
        "test_fraction": config.held_out_fraction,
        "kind": GROUP_KIND,
        "seeds": seed_list,
        "experiment_id": group_experiment,
    }
    total = config.timesteps * config.folds * len(seed_list)
    channel = SyncTrainingChannel(settings=settings)
    tracker = get_sync_tracker(None if settings is get_settings() else settings)
    channel.create_experiment(group_experiment, group_config)
    run = tracker.create_run(name, group_config, tags=[GROUP_TAG])
    outcome = GroupOutcome(
        run.run_id, group_experiment, name, ExperimentStatus.RUNNING, config.folds, seed_list
    )
    channel.publish_status(
        group_experiment,
        ExperimentStatus.RUNNING,
        f"walk-forward: {config.folds} fold(s) x {len(seed_list)} seed(s)",
    )
    records: list[GroupMember] = []
    try:
        for fold in range(config.folds):
            for seed in seed_list:
                if channel.stop_requested(group_experiment):
                    return _end(outcome, channel, tracker, run, ExperimentStatus.CANCELLED)
                done = len(outcome.members) * config.timesteps
                member = train(
                    config.model_copy(update={"fold": fold, "seed": seed}),
                    name,
                    settings=settings,
                    progress_every=progress_every,
                    log_every=log_every,
                    extra_config={"group_id": run.run_id, "group_experiment_id": group_experiment},
                    callbacks=[_GroupProgress(channel, group_experiment, done, total)],
                    on_start=on_member_start,
                )
                outcome.members.append(member)
                channel.publish_progress(group_experiment, done + config.timesteps, total)
                if member.test_record is None or member.baseline_record is None:
                    return _end(outcome, channel, tracker, run, ExperimentStatus.CANCELLED)
                records.append(GroupMember(fold, seed, member.test_record, member.baseline_record))
        outcome.verdict = group_verdict(records)
        return _end(outcome, channel, tracker, run, ExperimentStatus.COMPLETED)
    except KeyboardInterrupt:
        _end(outcome, channel, tracker, run, ExperimentStatus.CANCELLED, "interrupted (Ctrl-C)")
        raise
    except Exception as exc:
        _end(
            outcome, channel, tracker, run, ExperimentStatus.FAILED, f"{type(exc).__name__}: {exc}"
        )
        raise
    finally:
        channel.close()


def _seeds(first: int, seeds: int | Sequence[int]) -> list[int]:
    if isinstance(seeds, bool):
        raise ValueError(f"seeds must be a count or a list of seeds, got {seeds!r}")
    if isinstance(seeds, int):
        if not 1 <= seeds <= 100:
            raise ValueError(f"seeds must be from 1 to 100, got {seeds}")
        return [first + i for i in range(seeds)]
    seed_list = [int(s) for s in seeds]
    if not seed_list or len(set(seed_list)) != len(seed_list) or min(seed_list) < 0:
        raise ValueError(f"seeds must be distinct non-negative numbers, got {seed_list}")
    return seed_list


def _end(
    outcome: GroupOutcome,
    channel: SyncTrainingChannel,
    tracker: Any,
    run: Any,
    status: ExperimentStatus,
    reason: str | None = None,
) -> GroupOutcome:
    outcome.status = status
    members = [m.run_id for m in outcome.members if m.run_id]
    if outcome.verdict is not None:
        message = outcome.verdict.summary()
        tracker.log_params(run, {**outcome.verdict.attributes(), "members": members})
        tracker.finish_run(run, status, outcome.verdict.figures())
    else:
        message = f"walk-forward {status.value}" + (f": {reason}" if reason else "")
        tracker.log_params(run, {"members": members})
        tracker.finish_run(
            run, status, {}, error=reason if status is ExperimentStatus.FAILED else None
        )
    channel.publish_status(outcome.experiment_id, status, message[:1000])
    channel.flush()
    return outcome
