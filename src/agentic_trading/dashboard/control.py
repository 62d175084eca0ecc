"""What the dashboard may change: stop a live training, start one, register a run's model, move a
model's alias. Guarded by ``DASHBOARD_TOKEN``.

Reading is open to whoever reaches the dashboard; control actions are not. On a loopback address
control is open unless ``DASHBOARD_TOKEN`` is set; on any other address a token is required, and
the dashboard refuses to start with control enabled and no token (``DASHBOARD_CONTROL=false``
serves it read-only instead).
"""

from __future__ import annotations

import hmac
import threading
import time
import uuid
from typing import Any

from agentic_trading.common.loop_thread import BackgroundLoop
from agentic_trading.config import Settings, SettingsError
from agentic_trading.messaging.channels.training import TrainingChannel

__all__ = ["ControlError", "DashboardControl", "is_loopback"]

LOOPBACK = frozenset({"127.0.0.1", "localhost", "::1"})

#: Trainings the dashboard runs at once in its own process (the machine's cores are shared).
MAX_DASHBOARD_TRAININGS = 2


class ControlError(ValueError):
    """A control action was refused: no permission, bad input or too many trainings."""


def is_loopback(host: str) -> bool:
    """Whether ``host`` is reachable from this machine only."""
    return host in LOOPBACK or host.startswith("127.")


class DashboardControl:
    """Stop and start trainings on behalf of the dashboard's users.

    :param settings: the dashboard's settings (``DASHBOARD_CONTROL``, ``DASHBOARD_TOKEN``).
    :param host: the address the dashboard binds; a non-loopback one requires a token.
    :param channel: the messaging channel to send stop requests through.
    """

    def __init__(self, settings: Settings, host: str, channel: TrainingChannel) -> None:
        token = settings.dashboard_token.get_secret_value() if settings.dashboard_token else ""
        self.settings = settings
        self.enabled = settings.dashboard_control
        self.requires_token = self.enabled and (bool(token) or not is_loopback(host))
        if self.requires_token and not token:
            raise SettingsError(
                f"the dashboard binds {host}, which is not loopback, with control enabled: "
                "set DASHBOARD_TOKEN to a secret that users type in to stop or start trainings, "
                "or set DASHBOARD_CONTROL=false to serve it read-only"
            )
        self._token = token.encode()
        self._channel = channel
        self._trainings: dict[str, threading.Thread] = {}
        self._lock = threading.Lock()

    def _authorize(self, token: str | None) -> None:
        if not self.enabled:
            raise ControlError("control is disabled on this dashboard (DASHBOARD_CONTROL=false)")
        if self.requires_token and not hmac.compare_digest((token or "").encode(), self._token):
            raise ControlError("a valid dashboard token is required (DASHBOARD_TOKEN)")

    def stop(self, experiment_id: str, token: str | None = None) -> bool:
        """Ask ``experiment_id`` to stop; False if it is not live. Raises :class:`ControlError`."""
        self._authorize(token)
        return BackgroundLoop.get().run(
            self._channel.request_stop(experiment_id, "stopped from the dashboard"), timeout=15
        )

    def wait_for_trainings(self, timeout: float) -> list[str]:
        """Wait up to ``timeout`` seconds for the trainings started here to end; the ids of
        those still running."""
        deadline = time.monotonic() + timeout
        with self._lock:
            threads = list(self._trainings.values())
        for thread in threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        return self.running_trainings()

    def running_trainings(self) -> list[str]:
        """Experiment ids of the trainings this dashboard started that are still running."""
        with self._lock:
            return [eid for eid, thread in self._trainings.items() if thread.is_alive()]

    @property
    def through_studies(self) -> bool:
        """Whether trainings started here go to study workers (``STUDY_STORAGE`` is set)."""
        return "study_storage" in self.settings.model_fields_set

    def start_training(
        self,
        agent_type: Any,
        timesteps: Any,
        learning_rate: Any,
        token: str | None = None,
    ) -> str:
        """Start a training; returns what happened, in words, at once.

        Without ``STUDY_STORAGE`` it runs in this process (a thread). With it, it is queued as a
        trial of the study ``dashboard-<agent>-<timesteps>`` (created when missing) and a study
        worker runs it, not the dashboard. Values come from a form and are validated as a
        :class:`TrainingConfig`; a bad one raises :class:`ControlError` naming it.
        """
        self._authorize(token)
        from pydantic import ValidationError

        from agentic_trading.training.config import TrainingConfig
        from agentic_trading.training.runner import train

        try:
            config = TrainingConfig(
                agent_type=agent_type, timesteps=timesteps, learning_rate=learning_rate
            )
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']} (got {e.get('input')!r})"
                for e in exc.errors()
            )
            raise ControlError(problems) from None
        if self.through_studies:
            return self._queue_trial(config)
        name = f"{config.agent_type}_{config.pair}"
        experiment_id = f"{name}-{uuid.uuid4().hex[:8]}"
        self._start(
            experiment_id,
            lambda: train(config, name, experiment_id=experiment_id, settings=self.settings),
        )
        return f"Started {experiment_id}."

    def rerun(self, run_id: str, token: str | None = None) -> str:
        """Re-run training ``run_id`` from its record in this process (``experiments rerun``
        without the comparison: the compare page shows it); what happened, in words. A run
        that cannot be re-run as recorded (not a training, changed data) raises
        :class:`ControlError` saying why."""
        self._authorize(token)
        from agentic_trading.tracking import get_sync_experiment_repository
        from agentic_trading.training.rerun import RerunError, check_data, training_config
        from agentic_trading.training.runner import train

        try:
            original = get_sync_experiment_repository(self.settings).get_run(run_id)
            config = training_config(original)
            check_data(original)
        except (RerunError, ValueError) as exc:
            raise ControlError(str(exc)) from None
        experiment_id = f"{original.experiment}-rerun-{uuid.uuid4().hex[:8]}"
        self._start(
            experiment_id,
            lambda: train(
                config,
                original.experiment,
                experiment_id=experiment_id,
                settings=self.settings,
                extra_config={"rerun_of": run_id},
            ),
        )
        return f"Started {experiment_id}, a re-run of {run_id}; compare them when it is done."

    def _start(self, experiment_id: str, work: Any) -> None:
        """Run ``work`` in a thread of this process, at most ``MAX_DASHBOARD_TRAININGS`` at once."""
        with self._lock:
            running = [eid for eid, t in self._trainings.items() if t.is_alive()]
            if len(running) >= MAX_DASHBOARD_TRAININGS:
                raise ControlError(
                    f"{len(running)} trainings started here are still running "
                    f"({', '.join(running)}); at most {MAX_DASHBOARD_TRAININGS} at once"
                )
            thread = threading.Thread(
                target=_train_quietly,
                args=(work, experiment_id),
                name=f"dashboard-training-{experiment_id}",
                daemon=True,
            )
            self._trainings[experiment_id] = thread
            thread.start()

    def _queue_trial(self, config: Any) -> str:
        from agentic_trading.studies import StudyError, StudySpec, create_study, enqueue_trials

        name = f"dashboard-{config.agent_type.lower()}-{config.timesteps}"
        spec = StudySpec(
            name=name,
            agent=config.agent_type,
            space={"learning_rate": {"low": 1e-6, "high": 1.0, "log": True}},
            trials=0,
            timesteps=config.timesteps,
        )
        try:
            create_study(spec, self.settings)
        except StudyError:
            pass  # it exists: add to it
        (number,) = enqueue_trials(name, {"learning_rate": config.learning_rate}, self.settings)
        return (
            f"Queued as trial {number} of study {name} ({self.settings.study_location()}); "
            f"a study worker runs it: agentic-trading study worker {name}"
        )

    def add_trials(self, study: str, count: Any, token: str | None = None) -> str:
        """Grow ``study``'s budget by ``count`` trials for its workers; what happened, in words."""
        self._authorize(token)
        from agentic_trading.studies import StudyError, add_trials

        try:
            budget = add_trials(study, int(count) if count is not None else 0, self.settings)
        except (StudyError, ValueError, TypeError) as exc:
            raise ControlError(str(exc)) from None
        return f"{study} now has a budget of {budget} trials; its workers run the new ones."

    def register_model(
        self, registry: Any, run_id: str, name: Any, token: str | None = None
    ) -> str:
        """Register run ``run_id``'s model as the next version of ``name``; what happened."""
        self._authorize(token)
        from agentic_trading.tracking import TrackingError

        try:
            version = registry.register(run_id, str(name or "").strip())
        except (TrackingError, ValueError) as exc:
            raise ControlError(str(exc)) from None
        warning = f" Warning: {version.warning}." if version.warning else ""
        return f"Registered {version.reference}; promote it on the Models page.{warning}"

    def promote_model(
        self, registry: Any, name: str, version: Any, alias: Any, token: str | None = None
    ) -> str:
        """Point ``name@alias`` at ``version``; what happened."""
        self._authorize(token)
        from agentic_trading.tracking import TrackingError

        try:
            number = int(version)
            before = registry.model(name).aliases.get(alias)
            registry.promote(name, number, alias)
        except (TrackingError, ValueError, TypeError) as exc:
            raise ControlError(str(exc)) from None
        was = f" (was version {before})" if before is not None and before != number else ""
        return f"{name}@{alias} is now version {number}{was}."


def _train_quietly(work: Any, experiment_id: str) -> None:
    import logging

    try:
        work()
    except Exception:  # recorded as failed in messaging and tracking by the callback
        logging.getLogger(__name__).exception("dashboard training %s failed", experiment_id)
