"""Ray as a study's engine: Ray places the study's workers on a cluster's nodes.

Each Ray task runs ``agentic-trading study worker`` itself, a child process of the task, on
whichever node has the CPUs (and GPUs) it asks for. Why tasks running our loop, rather than Ray Tune with ``OptunaSearch``: a study must
keep one Optuna storage, one pruner and one budget whichever engine ran a trial. With our loop
the sampler, the pruner (reported from inside the training), the budget, the retry of a dead
worker's trial (Optuna's heartbeat) and every trial's live state and tracked run are the same
code as the hand-started workers', so both kinds of worker can serve one study at once. Tune
would bring its own trial loop, stopping and retry, and ask/tell through a second copy of the
sampler.

Every task reads its settings from its node's environment and ``.env``, as a hand-started worker
does: secrets never travel through Ray. A lost node kills its task's trial like any dead worker:
its heartbeat stops, another worker fails it and it is run again; Ray starts the lost task again
on another node (``max_retries``).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from typing import Any

from agentic_trading.common.extras import require

__all__ = ["RayEngineError", "RayStudyRun", "ray_module"]

#: Times Ray starts a lost worker task again (on another node).
TASK_RETRIES = 3

#: Seconds a cancelled worker has to end its trial before it is killed.
CANCEL_SECONDS = 60.0


class RayEngineError(RuntimeError):
    """Ray is missing, or the cluster cannot be reached or cannot fit a trial."""


def ray_module() -> Any:
    """``import ray``, or :class:`ImportError` naming the extra that installs it."""
    return require("ray", "ray", "the Ray engine needs Ray")


def _worker_task(name: str, threads: int) -> dict[str, Any]:
    """One study worker, ``agentic-trading study worker NAME``, as a plain child process of the
    Ray task: the same training took 8 % more CPU time in a Ray worker's own process (its core
    worker loaded; docs/scaling.md). The child reads its node's settings as a hand-started
    worker does, uses ``threads`` threads, dies with the task's process (a lost node) and ends
    its trial cancelled when Ray cancels the task (Ctrl-C on ``study run``)."""
    command = [
        *(sys.executable, "-m", "agentic_trading.cli.app", "study", "worker", name),
        *("--json", "--exit-with-parent"),
    ]
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        child = subprocess.Popen(
            command, stdin=subprocess.PIPE, stdout=out, stderr=err, env=env, text=True
        )
        try:
            while child.poll() is None:
                time.sleep(0.2)  # Ray's cancel arrives as KeyboardInterrupt between sleeps
        except KeyboardInterrupt:
            child.send_signal(signal.SIGINT)  # as Ctrl-C on a hand-started worker
            try:
                child.wait(timeout=CANCEL_SECONDS)
            except subprocess.TimeoutExpired:
                child.kill()
            raise
        out.seek(0)
        err.seek(0)
        if child.returncode != 0:
            tail = " | ".join(err.read().strip().splitlines()[-3:])
            raise RuntimeError(f"study worker exited {child.returncode}: {tail}")
        report: dict[str, Any] = json.loads(out.read())
    return {**report, "node": os.uname().nodename}


@dataclass
class RayStudyRun:
    """A study's workers as Ray tasks: :meth:`start`, then :meth:`wait` with a bound, or
    :meth:`cancel` (each running trial ends cancelled, as on Ctrl-C)."""

    name: str
    address: str | None = None
    workers: int | None = None
    cpus_per_trial: float = 1.0
    gpus_per_trial: float = 0.0
    reports: list[dict[str, Any]] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    _refs: list[Any] = field(default_factory=list)

    def start(self) -> int:
        """Connect to (or start) Ray and launch the workers; how many were launched."""
        if self.cpus_per_trial <= 0 or self.gpus_per_trial < 0:
            raise ValueError(
                f"--cpus-per-trial must be above 0 and --gpus-per-trial at least 0, got "
                f"{self.cpus_per_trial} and {self.gpus_per_trial}"
            )
        ray = ray_module()
        try:
            ray.init(
                # "local": a new Ray, even where `ray start` left an address behind
                address=self.address or "local",
                include_dashboard=False,
                logging_level="ERROR",
                log_to_driver=False,
                configure_logging=False,
            )
        except (ConnectionError, RuntimeError, ValueError) as exc:
            raise RayEngineError(
                f"Ray at {self.address or 'a new local instance'}: {exc}"
            ) from None
        resources = ray.cluster_resources()
        cpus, gpus = float(resources.get("CPU", 0)), float(resources.get("GPU", 0))
        if self.cpus_per_trial > cpus or self.gpus_per_trial > gpus:
            raise RayEngineError(
                f"a trial asks for {self.cpus_per_trial:g} CPUs and {self.gpus_per_trial:g} GPUs; "
                f"the cluster has {cpus:g} CPUs and {gpus:g} GPUs"
            )
        workers = self.workers or max(1, int(cpus // self.cpus_per_trial))
        task = ray.remote(
            num_cpus=self.cpus_per_trial,
            num_gpus=self.gpus_per_trial,
            max_retries=TASK_RETRIES,
        )(_worker_task)
        threads = max(1, int(self.cpus_per_trial))
        self._refs = [task.remote(self.name, threads) for _ in range(workers)]
        return workers

    def wait(self, seconds: float) -> bool:
        """Collect the workers that finished within ``seconds``; whether all have."""
        if not self._refs:
            return True
        ray = ray_module()
        ready, self._refs = ray.wait(self._refs, num_returns=len(self._refs), timeout=seconds)
        for ref in ready:
            try:
                self.reports.append(ray.get(ref, timeout=10))
            except Exception as exc:  # a worker's error, as Ray hands it back
                self.errors.append(_first_line(exc))
        return not self._refs

    def cancel(self, seconds: float = 60.0) -> None:
        """Ask every running worker to stop (its trial ends cancelled), waiting up to
        ``seconds``; then force what is left."""
        ray = ray_module()
        for ref in self._refs:
            ray.cancel(ref)
        deadline = time.monotonic() + seconds
        while self._refs and time.monotonic() < deadline:
            self.wait(1.0)
        for ref in self._refs:
            ray.cancel(ref, force=True)

    def shutdown(self) -> None:
        """Disconnect from Ray (a local instance this process started stops)."""
        ray = sys.modules.get("ray")
        if ray is not None and getattr(ray, "is_initialized", lambda: False)():
            ray.shutdown()


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[-1] if text else ''}"
