"""The chaos soak: a study on two trainer hosts while a seeded chaos loop breaks things, then a
one-to-one reconciliation of everything that was recorded.

    python -m tests.chaos [--backend aim|mlflow] [--seed N] [--trials 30] [--minutes 5]
                          [--timesteps 4096] [--report PATH]

``make chaos`` runs it once with ``aim server`` and once with an ``mlflow server`` (root or
CAP_NET_ADMIN: it makes network namespaces). A services host runs PostgreSQL (the study's
storage, the run catalogue, MLflow's store), Redis and the tracking server; two trainer hosts
each run a ``study worker``; a watcher host creates the study and reads it back. Meanwhile the
chaos loop, from ``--seed``, injects each of these at least once, then more at random until the
study's budget is spent and ``--minutes`` have passed:

* ``kill_worker``: SIGKILL a random worker (a new one starts on its host);
* ``term_worker``: SIGTERM a worker (a new one starts on its host);
* ``restart_redis``, ``restart_postgres``: the server stops and starts again;
* ``stop_tracking_server``: the tracking server is away for 5 s;
* ``fill_disk``: one trainer's tracking disk (a tmpfs holding its artifacts) is full for 10 s
  (Aim only: an MLflow server keeps the artifacts on the services host).

Then, with every worker gone, it checks (``reconcile``, on the watcher host) that:

* Optuna's trials and the tracked runs agree one to one: a complete trial's run is
  ``completed``, a pruned one's ``pruned``, a failed one's ``crashed``, ``cancelled`` or
  ``failed``; no trial is RUNNING and no run reads ``running``;
* the catalogue equals a fresh reindex (nothing added, fixed or removed);
* every complete or pruned run holds every metric value its training logged
  (``values_logged`` against the stored series), and no step of a series twice;
* no live experiment of the study reads ``running``.

It writes a JSON report of the faults injected and what it found, and exits 1 if any check
failed.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
CLI = [sys.executable, "-m", "agentic_trading.cli.app"]
FAULTS = (
    "kill_worker",
    "term_worker",
    "restart_redis",
    "restart_postgres",
    "stop_tracking_server",
    "fill_disk",
)
SPACE = (
    "learning_rate: {low: 1.0e-4, high: 1.0e-3, log: true}\n"
    "n_steps: [128, 256]\nn_epochs: [1, 2]\nnet_arch: [tiny]\n"
)


class Soak:
    """The hosts, the services and the workers of one soak."""

    def __init__(self, args: argparse.Namespace, folder: Path) -> None:
        from tests.network import Network

        self.args = args
        self.folder = folder
        self.rng = random.Random(args.seed)
        self.network = Network()
        self.services = ""
        self.password = uuid.uuid4().hex
        self.study = f"chaos-{uuid.uuid4().hex[:6]}"
        self.workers: dict[str, subprocess.Popen[bytes]] = {}
        self.started = 0
        self.faults: list[dict[str, Any]] = []
        self.mounts: list[Path] = []
        self.redis: subprocess.Popen[bytes] | None = None
        self.not_injected: list[str] = []
        self.study_seconds = 0.0
        self.database: Any = None
        self.tracking: Any = None

    # --- set-up --------------------------------------------------------------------------------

    def start(self) -> None:
        from tests.postgres import BIN, PostgresServer

        self.network.create()
        self.services = self.network.address["services"]
        self._start_redis()
        self.database = PostgresServer(
            host=self.services,
            port=5432,
            prefix=self.network.prefix("services"),
            trusted=f"{self.services}/16",
        ).start()
        for name in ("studies", "catalogue", "mlflow"):
            subprocess.run(
                [*self.network.prefix("services"), str(BIN / "psql"), "-h", self.services,
                 "-U", "postgres", "-q", "-c", f"CREATE DATABASE {name}"],
                check=True, capture_output=True, timeout=30,
            )  # fmt: skip
        self._start_tracking()
        for host in ("trainer1", "trainer2"):
            disk = self.folder / f"{host}-disk"
            disk.mkdir()
            if self.args.backend == "aim":
                subprocess.run(
                    ["mount", "-t", "tmpfs", "-o", "size=64m", "tmpfs", str(disk)], check=True
                )
                self.mounts.append(disk)
        self._wait_for_services()

    def _start_redis(self) -> None:
        self.redis = subprocess.Popen(
            [*self.network.prefix("services"), "redis-server", "--bind", self.services,
             "--port", "6379", "--save", "", "--appendonly", "no", "--dir", str(self.folder),
             "--requirepass", self.password],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip

    def _start_tracking(self) -> None:
        if self.tracking is not None:
            self.tracking.start()
            return
        if self.args.backend == "aim":
            from tests.aim_server import AimServer

            self.tracking = AimServer(
                self.folder / "tracking",
                host=self.services,
                port=53800,
                prefix=self.network.prefix("services"),
            ).start()
        else:
            from tests.mlflow_server import MlflowServer

            artifacts = self.folder / "mlflow-artifacts"
            artifacts.mkdir()
            self.tracking = MlflowServer(
                f"postgresql://postgres@{self.services}:5432/mlflow",
                artifacts,
                5000,
                host=self.services,
                prefix=self.network.prefix("services"),
            )
            self.tracking.start()

    @property
    def tracking_port(self) -> int:
        return 53800 if self.args.backend == "aim" else 5000

    def _wait_for_services(self, timeout: float = 90) -> None:
        probe = (
            "import socket, sys, time\n"
            f"deadline = time.time() + {timeout}\n"
            "for port in map(int, sys.argv[2:]):\n"
            "    while socket.socket().connect_ex((sys.argv[1], port)) != 0:\n"
            "        assert time.time() < deadline, port\n"
            "        time.sleep(0.2)\n"
        )
        subprocess.run(
            [*self.network.prefix("watcher"), sys.executable, "-c", probe, self.services,
             "6379", "5432", str(self.tracking_port)],
            check=True, timeout=timeout + 10,
        )  # fmt: skip

    def env(self, host: str) -> dict[str, str]:
        """The settings every host uses, as environment variables."""
        services = self.services
        env = {
            **os.environ,
            "PYTHONPATH": os.pathsep.join(
                [*([str(self.args.code)] if self.args.code else []), str(ROOT)]
            ),
            "MESSAGE_BROKER_TYPE": "redis",
            "REDIS_URL": f"redis://{services}:6379/0",
            "REDIS_PASSWORD": self.password,
            "MESSAGE_NAMESPACE": self.study,
            "ML_TRACKING_BACKEND": self.args.backend,
            "ML_CATALOG_URL": f"postgresql://postgres@{services}:5432/catalogue",
            "ML_HEARTBEAT_INTERVAL": "1",
            "ML_HEARTBEAT_TIMEOUT": "15",
            "STUDY_STORAGE": f"postgresql://postgres@{services}:5432/studies",
            "STUDY_HEARTBEAT_INTERVAL": "1",
            "STUDY_GRACE_PERIOD": "5",
            "OMP_NUM_THREADS": "1",
        }
        if self.args.backend == "aim":
            env["ML_STORAGE_PATH"] = f"aim://{services}:53800"
            if host.startswith("trainer"):
                env["ML_ARTIFACTS_URI"] = (self.folder / f"{host}-disk").as_uri()
            else:
                env["ML_ARTIFACTS_URI"] = (self.folder / "trainer1-disk").as_uri()
        else:
            env["ML_STORAGE_PATH"] = str(self.folder / host)
            env["MLFLOW_TRACKING_URI"] = f"http://{services}:5000"
        return env

    def cli(self, host: str, *args: str, timeout: float = 120) -> Any:
        done = subprocess.run(
            [*self.network.prefix(host), *CLI, *args],
            env=self.env(host), capture_output=True, text=True, timeout=timeout, cwd=ROOT,
            check=False,
        )  # fmt: skip
        if done.returncode != 0:
            raise RuntimeError(f"{' '.join(args)} on {host}: {done.stderr.strip()[-2000:]}")
        return json.loads(done.stdout) if "--json" in args else done.stdout

    def start_worker(self, host: str) -> None:
        log = (self.folder / f"worker-{self.started}-{host}.log").open("wb")
        self.started += 1
        self.workers[host] = subprocess.Popen(
            [*self.network.prefix(host), *CLI, "study", "worker", self.study],
            env=self.env(host), stdout=log, stderr=subprocess.STDOUT, cwd=ROOT,
        )  # fmt: skip

    # --- the run -------------------------------------------------------------------------------

    def run(self) -> None:
        space = self.folder / "space.yaml"
        space.write_text(SPACE)
        self.cli(
            "watcher", "study", "create", self.study, "--trials", str(self.args.trials),
            "--timesteps", str(self.args.timesteps), "--eval-every",
            str(self.args.timesteps // 4), "--space", str(space), "--window-size", "5",
            "--pruner", self.args.pruner, "--json",
        )  # fmt: skip
        for host in ("trainer1", "trainer2"):
            self.start_worker(host)
        began = time.monotonic()
        planned = list(FAULTS)
        if self.args.backend != "aim":
            planned.remove("fill_disk")
        self.rng.shuffle(planned)
        next_fault = began + self.rng.uniform(10, 20)
        deadline = began + self.args.minutes * 60 * 6
        done = False
        while not done and time.monotonic() < deadline:
            time.sleep(1)
            done = self._keep_workers()
            if not done and time.monotonic() >= next_fault:
                fault = planned.pop(0) if planned else self.rng.choice(self.faults_allowed)
                self.inject(fault, time.monotonic() - began)
                next_fault = time.monotonic() + self.rng.uniform(15, 30)
        self.not_injected = planned
        self.study_seconds = round(time.monotonic() - began, 1)
        for proc in self.workers.values():  # bounded: a worker still running is stopped
            try:
                proc.wait(max(1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()

    @property
    def faults_allowed(self) -> tuple[str, ...]:
        return FAULTS if self.args.backend == "aim" else FAULTS[:-1]

    def _keep_workers(self) -> bool:
        """Start a new worker where chaos stopped one; ``True`` once the study's budget is
        spent and every worker has left (the study is asked only when a worker has left)."""
        exited = [host for host, proc in self.workers.items() if proc.poll() is not None]
        if not exited:
            return False
        shown = self.cli("watcher", "study", "show", self.study, "--json")
        if shown["finished"] < shown["budget"]:
            for host in exited:
                self.start_worker(host)
            return False
        return len(exited) == len(self.workers)

    def inject(self, fault: str, at: float) -> None:
        record: dict[str, Any] = {"fault": fault, "at_seconds": round(at, 1)}
        began = time.monotonic()
        if fault in ("kill_worker", "term_worker"):
            host = self.rng.choice(sorted(self.workers))
            proc = self.workers[host]
            record["host"] = host
            if proc.poll() is None:
                proc.send_signal(signal.SIGKILL if fault == "kill_worker" else signal.SIGTERM)
                try:
                    proc.wait(60)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
                    record["note"] = "SIGTERM did not end it within 60 s: killed"
            record["exit_code"] = proc.returncode
        elif fault == "restart_redis":
            assert self.redis is not None
            self.redis.kill()
            self.redis.wait(10)
            time.sleep(1)
            self._start_redis()
        elif fault == "restart_postgres":
            self.database.stop()
            time.sleep(1)
            self.database.start()
        elif fault == "stop_tracking_server":
            self.tracking.stop()
            time.sleep(5)
            self._start_tracking()
        elif fault == "fill_disk":
            host = self.rng.choice(("trainer1", "trainer2"))
            filler = self.folder / f"{host}-disk" / "filler"
            record["host"] = host
            with filler.open("wb") as out:
                try:
                    while True:
                        out.write(b"\0" * (1 << 20))
                except OSError:
                    pass
            time.sleep(10)
            filler.unlink()
        record["seconds"] = round(time.monotonic() - began, 1)
        self.faults.append(record)
        print(f"chaos: {record}", flush=True)

    def reconcile(self) -> dict[str, Any]:
        time.sleep(float(self.env("watcher")["ML_HEARTBEAT_TIMEOUT"]) + 2)
        done = subprocess.run(
            [*self.network.prefix("watcher"), sys.executable, "-m", "tests.chaos", "reconcile",
             self.study, *(["--allow-uncounted"] if self.args.allow_uncounted else [])],
            env=self.env("watcher"), capture_output=True, text=True, timeout=900, cwd=ROOT,
            check=False,
        )  # fmt: skip
        if done.returncode != 0:
            return {"ok": False, "error": done.stderr.strip()[-4000:]}
        result: dict[str, Any] = json.loads(done.stdout)
        return result

    def stop(self) -> None:
        for proc in self.workers.values():
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        if self.tracking is not None:
            self.tracking.stop()
        if self.database is not None:
            self.database.remove()
        if self.redis is not None:
            self.redis.kill()
            self.redis.wait(10)
        for disk in self.mounts:
            subprocess.run(["umount", "-l", str(disk)], check=False)
        self.network.delete()


def reconcile(study: str, allow_uncounted: bool = False) -> dict[str, Any]:
    """Every check, on the host it runs on (the settings come from the environment)."""
    from agentic_trading.config import load_settings
    from agentic_trading.messaging.channels.sync import SyncTrainingChannel
    from agentic_trading.studies import load_study, trial_rows
    from agentic_trading.tracking import get_sync_experiment_repository

    settings = load_settings()
    loaded, _spec = load_study(study, settings)
    trials = trial_rows(loaded.get_trials())
    repo = get_sync_experiment_repository(settings)
    runs = {run.run_id: run for run in repo.list_runs(study=study, limit=10_000)}
    problems: list[str] = []
    expected = {"complete": {"completed"}, "pruned": {"pruned"}}
    matched = set()
    for trial in trials:
        if trial.state == "running":
            problems.append(f"trial {trial.number} is still RUNNING")
        if trial.run_id is None:
            if trial.state in ("complete", "pruned"):
                problems.append(f"trial {trial.number} ({trial.state}) has no run")
            continue
        run = runs.get(trial.run_id)
        if run is None:
            problems.append(f"trial {trial.number} ({trial.state}): run {trial.run_id} not tracked")
            continue
        matched.add(run.run_id)
        allowed = expected.get(trial.state, {"crashed", "cancelled", "failed"})
        if run.status.value not in allowed:
            problems.append(
                f"trial {trial.number} ({trial.state}): run {run.run_id} reads {run.status.value}"
            )
    for run_id in runs.keys() - matched:
        problems.append(f"run {run_id} ({runs[run_id].status.value}) belongs to no trial")
    for run in runs.values():
        if run.status.value == "running":
            problems.append(f"run {run.run_id} still reads running")
    counted, uncounted = 0, 0
    for run in runs.values():
        if run.status.value not in ("completed", "pruned"):
            continue
        detail = repo.get_run(run.run_id)
        series = [repo.get_metric_series(run.run_id, name) for name in detail.metrics]
        for one in series:  # a training logs each metric once per step
            if one is not None and len(set(one.steps)) != len(one.steps):
                twice = len(one.steps) - len(set(one.steps))
                problems.append(f"run {run.run_id}: {twice} steps of {one.name} stored twice")
        logged = getattr(detail, "values_logged", None)  # code before the count: none
        if logged is None and allow_uncounted:
            uncounted += 1
            continue
        stored = sum(len(one.values) for one in series if one is not None)
        counted += 1
        if logged is None or stored != logged:
            problems.append(f"run {run.run_id}: {stored} values stored, {logged} logged")
    report = repo.reindex()
    if report.added or report.fixed or report.removed:
        problems.append(f"the catalogue differed from a reindex: {report}")
    channel = SyncTrainingChannel(settings=settings)
    try:
        live = {state.experiment_id: state for state in channel.list_experiments()}
    finally:
        channel.close()
    for trial in trials:
        state = live.get(trial.experiment_id or "")
        if state is not None and state.status.value == "running":
            problems.append(f"live experiment {state.experiment_id} is stuck in running")
    states: dict[str, int] = {}
    for trial in trials:
        states[trial.state] = states.get(trial.state, 0) + 1
    return {
        "ok": not problems,
        "trials": states,
        "runs": len(runs),
        "runs_point_counted": counted,
        "runs_without_a_count": uncounted,
        "reindex": str(report),
        "problems": problems,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tests.chaos", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--backend", choices=("aim", "mlflow"), default="aim")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--trials", type=int, default=30)
    parser.add_argument("--minutes", type=float, default=5.0)
    parser.add_argument("--timesteps", type=int, default=20480)
    parser.add_argument(
        "--pruner", default="none", help="the study's pruner (none: every trial runs its steps)"
    )
    parser.add_argument("--keep", action="store_true", help="keep the run's folder (logs)")
    parser.add_argument(
        "--code", type=Path, default=None, help="the src folder the hosts run (another checkout)"
    )
    parser.add_argument(
        "--allow-uncounted",
        action="store_true",
        help="runs without values_logged (code older than the count) are reported, not failed",
    )
    parser.add_argument("--report", type=Path, default=None)
    parser.add_argument("command", nargs="*", help="reconcile STUDY (inside the watcher host)")
    args = parser.parse_args(argv)
    if args.command:
        print(json.dumps(reconcile(args.command[1], args.allow_uncounted)))
        return 0
    import shutil
    import tempfile

    folder = Path(tempfile.mkdtemp(prefix="agentic-trading-chaos-"))
    soak = Soak(args, folder)
    started = time.time()
    found: dict[str, Any] = {"ok": False, "error": "the soak did not finish"}
    try:
        soak.start()
        soak.run()
        found = soak.reconcile()
    finally:
        soak.stop()
        if args.keep or not found.get("ok"):
            print(f"chaos: logs kept in {folder}", file=sys.stderr)
        else:
            shutil.rmtree(folder, ignore_errors=True)
    report = {
        "backend": args.backend,
        "seed": args.seed,
        "code": str(args.code or ROOT / "src"),
        "study": soak.study,
        "trials_budget": args.trials,
        "timesteps": args.timesteps,
        "started_at": started,
        "seconds": round(time.time() - started, 1),
        "study_seconds": soak.study_seconds,
        "workers_started": soak.started,
        "faults": soak.faults,
        "faults_not_injected": soak.not_injected,
        "found": found,
    }
    path = args.report or ROOT / "benchmarks" / "results" / f"chaos-{args.backend}.json"
    path.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps({"ok": found.get("ok"), "report": str(path)}))
    return 0 if found.get("ok") else 1


if __name__ == "__main__":
    sys.exit(main())
