"""Hyperparameter schedules: which values trained which steps, and putting them on a live model."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from stable_baselines3.common.callbacks import BaseCallback

__all__ = ["ScheduleCallback", "Segment", "apply_params"]


@dataclass(frozen=True)
class Segment:
    """``params`` trained the steps from ``start`` to ``end``."""

    start: int
    end: int
    params: dict[str, Any]

    def as_data(self) -> list[Any]:
        """``[start, end, params]``, as records keep it."""
        return [self.start, self.end, dict(self.params)]

    @classmethod
    def from_data(cls, data: Sequence[Any]) -> Segment:
        """The segment :meth:`as_data` wrote."""
        return cls(int(data[0]), int(data[1]), dict(data[2]))


def apply_params(model: Any, params: Mapping[str, Any]) -> None:
    """Set ``learning_rate``, ``ent_coef`` and ``clip_range`` on an SB3 PPO or A2C model; they
    take effect at its next update (the optimizer's rate is set from the schedule there)."""
    from stable_baselines3.common.utils import ConstantSchedule

    if "learning_rate" in params:
        model.learning_rate = float(params["learning_rate"])
        model.lr_schedule = ConstantSchedule(float(params["learning_rate"]))
    if "ent_coef" in params:
        model.ent_coef = float(params["ent_coef"])
    if "clip_range" in params:
        model.clip_range = ConstantSchedule(float(params["clip_range"]))


class ScheduleCallback(BaseCallback):
    """Follows a schedule while a model learns: before the first rollout that starts at or after
    a segment's first step, its values are put on the model (a replay of a PBT member's schedule
    from scratch). So the update that ends a segment still uses that segment's values, as the
    member's own chunk did."""

    def __init__(self, schedule: Sequence[Segment]) -> None:
        super().__init__()
        self.schedule = sorted(schedule, key=lambda s: s.start)
        self.applied: list[tuple[int, dict[str, Any]]] = []
        self._next = 0

    def _on_rollout_start(self) -> None:
        self._apply_due()

    def _on_step(self) -> bool:
        return True

    def _apply_due(self) -> None:
        while (
            self._next < len(self.schedule)
            and self.schedule[self._next].start <= self.num_timesteps
        ):
            segment = self.schedule[self._next]
            apply_params(self.model, segment.params)
            self.applied.append((self.num_timesteps, dict(segment.params)))
            self._next += 1
