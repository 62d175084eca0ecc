"""``ExperimentCallback``: live monitoring and permanent tracking for any SB3 ``model.learn``.

::

    model = PPO("MlpPolicy", env)
    model.learn(50_000, callback=ExperimentCallback("PPO_EUR_USD", {"agent_type": "PPO"}))

It does what the user guide's Pattern 1 does, for both systems at once: a live experiment and a
tracking run, ``running``, progress every ``progress_every`` steps, metrics every ``log_every``
steps, heartbeats, stop requests honoured (``cancelled``), and the final status: ``completed``,
``cancelled`` (a stop request or Ctrl-C) or ``failed`` with the error.
"""

from __future__ import annotations

import logging
import sys
import time
import traceback
import uuid
from collections.abc import Callable, Mapping
from types import TracebackType
from typing import Any

from stable_baselines3.common.callbacks import BaseCallback

from agentic_trading.common import signals
from agentic_trading.common.exit_hooks import register_exit
from agentic_trading.common.ids import validate_name
from agentic_trading.config import Settings, get_settings
from agentic_trading.messaging.channels.sync import SyncTrainingChannel
from agentic_trading.status import ExperimentStatus
from agentic_trading.tracking import (
    SyncTracker,
    TrackingError,
    get_sync_tracker,
)
from agentic_trading.tracking.output import OutputCapture
from agentic_trading.tracking.records import RunHandle
from agentic_trading.training._episodes import running_return

__all__ = ["SB3_METRICS", "ExperimentCallback"]

logger = logging.getLogger("agentic_trading.training")

#: Stable-Baselines3 logger keys and the tracked metric each becomes (as Aim's SB3 adapter maps
#: them). ``train/entropy_loss`` is minus the entropy.
SB3_METRICS = {
    "train/loss": "loss",
    "train/value_loss": "value_loss",
    "train/policy_gradient_loss": "policy_loss",
    "train/policy_loss": "policy_loss",
    "train/entropy_loss": "entropy",
    "train/learning_rate": "learning_rate",
    "train/explained_variance": "explained_variance",
    "train/approx_kl": "approx_kl",
    "train/clip_fraction": "clip_fraction",
}


#: Metrics logged step after step are handed to the tracker together: at most this many
#: points, held at most this long (the writer gathers points for as long before writing).
_BATCH_POINTS = 256
_BATCH_SECONDS = 0.02


def _next_multiple(step: int, every: int) -> int:
    return (step // every + 1) * every


class ExperimentCallback(BaseCallback):
    """Publishes a training live (messaging) and records it permanently (tracking).

    :param experiment_name: the tracking experiment (runs of one name are compared together).
    :param config: the training's settings, stored with the run and the live experiment.
    :param experiment_id: the live experiment's id; default ``<experiment_name>-<8 hex>``.
    :param progress_every: publish progress every this many steps.
    :param log_every: track and publish metrics every this many steps.
    :param finish_on_end: record ``completed`` when ``learn`` returns; ``False`` leaves it to
        :meth:`complete` (to add final metrics from an evaluation first).
    :param settings: settings to use instead of the environment's.
    :param exit_on_signal: after SIGTERM or SIGHUP stopped the training and it was recorded
        ``cancelled``, leave with the conventional exit code (``SystemExit(143)`` for SIGTERM)
        instead of returning from ``learn``; a caller that handles it itself passes ``False``.
    :param environment: facts of the run's environment that only the caller knows, such as
        ``{"data": {"path": ...}, "seeds": {"seed": 1}}``; the tracker adds the code, the
        packages and the machine (see :meth:`~agentic_trading.tracking.Tracker.create_run`).

    While it trains, SIGTERM and SIGHUP stop it like a stop request (see
    :mod:`agentic_trading.common.signals`); handlers you installed before still run.
    """

    def __init__(
        self,
        experiment_name: str,
        config: Mapping[str, Any] | None = None,
        experiment_id: str | None = None,
        progress_every: int = 100,
        log_every: int = 1000,
        *,
        finish_on_end: bool = True,
        settings: Settings | None = None,
        channel: SyncTrainingChannel | None = None,
        tracker: SyncTracker | None = None,
        verbose: int = 0,
        exit_on_signal: bool = True,
        environment: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__(verbose)
        self.experiment_name = validate_name(experiment_name, "experiment name")
        self.config = dict(config or {})
        self.experiment_id = validate_name(
            experiment_id or f"{experiment_name}-{uuid.uuid4().hex[:8]}", "experiment_id"
        )
        for name, every in (("progress_every", progress_every), ("log_every", log_every)):
            if isinstance(every, bool) or not isinstance(every, int) or every < 1:
                raise ValueError(f"{name} must be a positive number of steps, got {every!r}")
        self.progress_every = progress_every
        self.log_every = log_every
        self.finish_on_end = finish_on_end
        self.exit_on_signal = exit_on_signal
        self.environment = dict(environment or {})
        self._signals: int | None = None
        self.settings = settings or get_settings()
        self._own_channel = channel is None
        self.channel = channel
        # The process's writer starts now, in the background: its imports (seconds of CPU, once
        # per process) overlap whatever the script does before learn().
        self.tracker = tracker if tracker is not None else get_sync_tracker(self.settings)
        self.run: RunHandle | None = None
        self.status: ExperimentStatus = ExperimentStatus.PENDING
        self.stop_reason: str | None = None
        self.stop_status = ExperimentStatus.CANCELLED
        self._stop_metrics: dict[str, float] = {}
        self.latest_metrics: dict[str, float] = {}
        self._total = 0
        self._next_report = 0  # the next step that reports progress, metrics or the stop flag
        self._started = 0.0
        # Episodes are read from SB3's monitor at each log; without one reachable (a
        # SubprocVecEnv) the callback counts the first environment's rewards itself.
        self._running_return: Callable[[], float] | None = None
        self._count_episodes = False
        self._episode_reward = 0.0
        self._episode_steps = 0
        self._last_episode: tuple[float, float] | None = None
        self._train_values: dict[str, float] = {}
        self._tracked: dict[str, float] = {}
        # The channel sends one experiment's progress (and metrics) at most once per
        # MESSAGE_PROGRESS_INTERVAL, the newest: publishing more often is work thrown away.
        self._publish_interval = 0.0
        self._progress_due = self._metrics_due = 0.0
        self._metrics_step: int | None = None  # the step of metrics not yet published
        # Points logged on consecutive steps go to the tracker together (_BATCH_SECONDS).
        self._points: list[tuple[int, dict[str, float]]] = []
        self._points_due = 0.0
        #: What could not be written to tracking (a full disk, a stuck writer): the training's
        #: results stand, its record is incomplete.
        self.record_errors: list[str] = []
        self._output: OutputCapture | None = None  # the console lines, for output.log

    # --- SB3 hooks -----------------------------------------------------------------------------

    def _on_training_start(self) -> None:
        self._total = int(self.model._total_timesteps)
        self._next_report = min(self.progress_every, self.log_every, self._total)
        self._started = time.monotonic()
        self._running_return = running_return(self.training_env)
        self._count_episodes = self._running_return is None
        if self.channel is None:
            self.channel = SyncTrainingChannel(settings=self.settings)
        self._publish_interval = self.channel.progress_interval
        agent = type(self.model).__name__
        config = {"agent_type": agent, **self.config}
        self.channel.create_experiment(self.experiment_id, config)
        seeds = {"seed": self.model.seed} if self.model.seed is not None else {}
        self.run = self.tracker.create_run(
            self.experiment_name,
            {**config, "experiment_id": self.experiment_id},
            environment={"seeds": seeds, **self.environment},
        )
        if self.settings.ml_capture_output_max_lines:
            self._output = OutputCapture()
            self._output.start()
        self.channel.publish_status(
            self.experiment_id, ExperimentStatus.RUNNING, f"{agent} training started"
        )
        self.status = ExperimentStatus.RUNNING
        register_exit(self._at_exit)
        self._signals = signals.watch(self._terminated)

    def _terminated(self, reason: str) -> None:
        # From the signal handler: stop at the next step, as a stop request would.
        if self.stop_reason is None:
            self.stop_reason, self.stop_status = reason, ExperimentStatus.CANCELLED

    def _on_rollout_start(self) -> None:
        self._train_values.update(self._logged())

    def _on_rollout_end(self) -> None:
        # Off-policy agents (DQN) train inside their rollouts: read their values here too.
        self._train_values.update(self._logged())
        self._track_points()  # the update that follows may take a while: don't hold them

    def _on_step(self) -> bool:
        # Runs every training step: the common case is a few attribute reads and one compare.
        step = self.num_timesteps
        if self._count_episodes:
            self._count_episode()
        if step >= self._next_report:
            self._report(step)
        return self.stop_reason is None

    def _count_episode(self) -> None:
        rewards = self.locals.get("rewards")
        if rewards is not None:
            self._episode_reward += float(rewards[0])
            self._episode_steps += 1
            dones = self.locals.get("dones")
            if dones is not None and dones[0]:
                self._last_episode = (self._episode_reward, float(self._episode_steps))
                self._episode_reward, self._episode_steps = 0.0, 0

    def _latest_episode(self) -> tuple[float, float] | None:
        """The newest finished episode's return and length."""
        if self._count_episodes:
            return self._last_episode
        # SB3 files this step's episode in ep_info_buffer only after the callbacks ran.
        infos = self.locals.get("infos")
        info = infos[0].get("episode") if infos else None
        if info is None and self.model.ep_info_buffer:
            info = self.model.ep_info_buffer[-1]
        return None if info is None else (float(info["r"]), float(info["l"]))

    def _report(self, step: int) -> None:
        """Progress, metrics and the stop flag, at their cadence (``_next_report``)."""
        assert self.channel is not None
        try:
            if (step % self.progress_every == 0 and time.monotonic() >= self._progress_due) or (
                step >= self._total
            ):
                # SB3 finishes its last rollout past total_timesteps: report at most 100 %.
                self.channel.publish_progress(
                    self.experiment_id, min(step, self._total), self._total
                )
                self._progress_due = time.monotonic() + self._publish_interval
            if step % self.log_every == 0:
                self._log(step)
        except (ValueError, RuntimeError) as exc:  # never let reporting break the training
            logger.warning(
                "experiment %s: could not report step %d: %s", self.experiment_id, step, exc
            )
        # The flag is refreshed by the channel's writes, so reading it at the progress cadence
        # sees a request as soon as it can be seen.
        if self.stop_reason is None and self.channel.stop_requested(self.experiment_id):
            self.stop_reason = "stop requested"
        self._next_report = min(
            _next_multiple(step, self.progress_every),
            _next_multiple(step, self.log_every),
            max(self._total, step + 1),
        )

    def _on_training_end(self) -> None:
        if self.stop_reason is not None:
            if self.stop_status is ExperimentStatus.PRUNED:
                self.prune(self.stop_reason, self._stop_metrics)
            else:
                self.cancel(self.stop_reason)
        elif self.finish_on_end:
            self.complete()
        signum = signals.received()
        if signum is not None and self.exit_on_signal and self.status.is_finished:
            raise SystemExit(signals.exit_code(signum))  # recorded and written: now leave

    def stop(
        self,
        reason: str,
        status: ExperimentStatus = ExperimentStatus.CANCELLED,
        final_metrics: Mapping[str, float] | None = None,
    ) -> None:
        """Stop at the next step and end as ``status`` (``cancelled`` or ``pruned``).

        For another callback of the same ``learn`` (a study's pruner): return ``False`` from it
        too, or the training stops one step later.
        """
        if status not in (ExperimentStatus.CANCELLED, ExperimentStatus.PRUNED):
            raise ValueError(f"a training stops as cancelled or pruned, not {status.value}")
        self.stop_reason, self.stop_status = reason, status
        self._stop_metrics = dict(final_metrics or {})

    # --- metrics ---------------------------------------------------------------------------------

    def _logged(self) -> dict[str, float]:
        values: dict[str, float] = {}
        for key, value in self.model.logger.name_to_value.items():
            name = SB3_METRICS.get(key)
            if name is None:
                continue
            number = float(value)
            values[name] = -number if key == "train/entropy_loss" else number
        return values

    def _log(self, step: int) -> None:
        # SB3's update values (loss, entropy...) change once per update: they were read at the
        # rollout's start. Per step only the episode and the portfolio are new.
        values = dict(self._train_values)
        episode = self._latest_episode()
        if episode is not None:
            values["reward"], values["episode_length"] = episode
        elif self._running_return is not None:  # the first episode so far: FX's are long
            values["reward"] = self._running_return()
        else:
            values["reward"] = self._episode_reward
        infos = self.locals.get("infos")
        if infos:
            profit = infos[0].get("total_profit")
            if profit is not None:
                values["portfolio_value"] = float(profit)
        # Track a value again only when it changed, so reporting every step does not write the
        # same loss 512 times.
        tracked = self._tracked
        changed = {k: v for k, v in values.items() if tracked.get(k) != v}
        if not changed:
            return
        tracked.update(changed)
        points = self._points
        points.append((step, changed))
        now = time.monotonic()
        if now >= self._points_due or len(points) >= _BATCH_POINTS:
            self._track_points()
            self._points_due = now + _BATCH_SECONDS
        latest = self.latest_metrics
        for name, value in changed.items():
            if value - value == 0.0:  # finite
                latest[name] = value
        self._metrics_step = step
        if now >= self._metrics_due:
            self._publish_metrics()

    def _track_points(self) -> None:
        """Hand the points logged since the last call to the tracker, in one operation (and
        the console lines written meanwhile)."""
        if self._output is not None:
            self._send_output(self._output.take())
        if self._points:
            assert self.tracker is not None and self.run is not None
            points, self._points = self._points, []
            try:
                self.tracker.log_metrics_batch(self.run, points)
            except (TrackingError, ValueError) as exc:  # the training goes on regardless
                self.note_record_error(f"metrics were not recorded: {exc}")

    def _send_output(self, lines: list[str]) -> None:
        if lines and self.run is not None and self.tracker is not None:
            try:
                if not self.tracker.log_output(self.run, lines):
                    logger.debug("%d console lines dropped: the writer's queue is full", len(lines))
            except TrackingError:
                pass  # the run is finished or its writer failed: noted where it matters

    def _publish_metrics(self) -> None:
        assert self.channel is not None
        if self._metrics_step is not None:
            self.channel.publish_metrics(
                self.experiment_id, self._metrics_step, self.latest_metrics
            )
            self._metrics_step = None
            self._metrics_due = time.monotonic() + self._publish_interval

    # --- endings ---------------------------------------------------------------------------------

    def complete(
        self, final_metrics: Mapping[str, float] | None = None, message: str | None = None
    ) -> None:
        """Record ``completed`` in both systems, with ``final_metrics``."""
        elapsed = time.monotonic() - self._started
        final = {
            "total_timesteps": float(self.num_timesteps),
            "training_seconds": round(elapsed, 3),
            **(final_metrics or {}),
        }
        self._finish(ExperimentStatus.COMPLETED, message or "Training finished successfully", final)

    def cancel(self, reason: str = "stopped") -> None:
        """Record ``cancelled`` in both systems; ``reason`` is the live message and the run's
        ``error`` (why it ended early)."""
        self._finish(ExperimentStatus.CANCELLED, f"Training cancelled: {reason}", {}, error=reason)

    def prune(self, reason: str, final_metrics: Mapping[str, float] | None = None) -> None:
        """Record ``pruned`` in both systems (a study stopped a hopeless trial early)."""
        final = {"total_timesteps": float(self.num_timesteps), **(final_metrics or {})}
        self._finish(ExperimentStatus.PRUNED, f"Training pruned: {reason}", final)

    def fail(self, error: BaseException | str) -> None:
        """Record ``failed`` with ``error`` in both systems."""
        if isinstance(error, BaseException):
            text = "".join(traceback.format_exception_only(type(error), error)).strip()
        else:
            text = str(error)
        self._finish(ExperimentStatus.FAILED, f"Training failed: {text}"[:1000], {}, error=text)

    def _finish(
        self,
        status: ExperimentStatus,
        message: str,
        final: Mapping[str, float],
        error: str | None = None,
    ) -> None:
        if self.status.is_finished or self.run is None:
            return
        self.status = status
        if self._signals is not None:
            signals.unwatch(self._signals)
            self._signals = None
        assert self.channel is not None and self.tracker is not None
        if self._output is not None:
            self._send_output(self._output.stop())
            self._output = None
        try:
            self._publish_metrics()
            self._track_points()
            self.channel.publish_status(self.experiment_id, status, message)
            self.tracker.finish_run(self.run, status, dict(final), error=error)
        except TrackingError as exc:  # the training's own outcome stands; its record is short
            self.note_record_error(f"the final record was not written: {exc}")
        finally:
            try:
                self.channel.flush()
            except TimeoutError:
                logger.warning(
                    "experiment %s: messaging did not take the final status in time; it is "
                    "retried in the background",
                    self.experiment_id,
                )
            if self._own_channel:
                self.channel.close()

    def note_record_error(self, problem: str) -> None:
        """Remember (and log once) that part of this run's tracking record is missing."""
        if problem not in self.record_errors:
            self.record_errors.append(problem)
            logger.error("experiment %s: %s", self.experiment_id, problem)

    def __enter__(self) -> ExperimentCallback:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if error is None:
            return
        if isinstance(error, KeyboardInterrupt):
            self.cancel("interrupted (Ctrl-C)")
        else:
            self.fail(error)

    def _at_exit(self) -> None:
        if self.status.is_finished or self.run is None:
            return
        error = getattr(sys, "last_value", None) or getattr(sys, "last_exc", None)
        try:
            if isinstance(error, KeyboardInterrupt):
                self.cancel("interrupted (Ctrl-C)")
            elif error is not None:
                self.fail(error)
            else:
                self.fail("the process exited before the training finished")
        except Exception as exc:  # never turn interpreter exit into a traceback
            logger.error("experiment %s: final status not recorded: %s", self.experiment_id, exc)
