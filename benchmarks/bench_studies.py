"""Studies: what the study machinery (ask, tell, reports, heartbeats, our attributes) costs per
trial on SQLite and PostgreSQL, against a 2,000-step trial's training and against raw
SQLAlchemy round trips on the same database; trials per minute with 1 and 2 workers; and two
Ray workers (``--engine ray``) against two local ones."""

from __future__ import annotations

import importlib.util
import os
import resource
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from agentic_trading.config import Settings, load_settings
from agentic_trading.studies import StudySpec, create_study
from agentic_trading.studies import worker as worker_module
from agentic_trading.studies.attributes import VALIDATION_ATTRIBUTE, update_trial_info
from agentic_trading.studies.spec import DEFAULT_TIMESTEPS
from agentic_trading.studies.storage import sqlalchemy_url
from agentic_trading.training import TrainingConfig, train

SPACE = {"learning_rate": {"low": 1e-4, "high": 1e-3, "log": True}, "n_steps": [128]}
REPORTS = 4  # a trial scored every fifth of its steps reports four times


class StorageOnlyObjective:
    """What ``TrialObjective`` asks of the storage, without the training."""

    def __init__(self, spec: StudySpec, settings: Settings, worker: str = "") -> None:
        self.spec, self.worker = spec, worker or "bench"
        self.space = spec.search_space

    def __call__(self, trial: Any) -> float:
        self.space.suggest(trial)
        update_trial_info(trial, experiment_id=f"bench-{trial.number}", worker=self.worker)
        update_trial_info(trial, run_id=uuid.uuid4().hex[:24])
        for k in range(1, REPORTS + 1):
            trial.report(-1.0 / k, k * 400)
            trial.should_prune()
        trial.set_user_attr(
            VALIDATION_ATTRIBUTE, {"sharpe": 0.01, "bars": 996, "returns": [0.0001] * 996}
        )
        return 0.5


@contextmanager
def postgres_url() -> Iterator[str | None]:
    """A scratch database on the machine's PostgreSQL, or None if there is none."""
    try:
        import psycopg

        admin = psycopg.connect(
            host="127.0.0.1", user="postgres", dbname="postgres", autocommit=True, connect_timeout=3
        )
    except Exception:
        yield None
        return
    name = f"bench_{uuid.uuid4().hex[:10]}"
    admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"postgresql://postgres@127.0.0.1:5432/{name}"
    finally:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()


def machinery(settings: Settings, trials: int = 30) -> dict[str, Any]:
    """Seconds per trial of the worker loop with a storage-only objective."""
    name = f"machinery-{uuid.uuid4().hex[:6]}"
    create_study(StudySpec(name=name, space=SPACE, trials=trials, timesteps=2000), settings)
    original = worker_module.TrialObjective
    worker_module.TrialObjective = StorageOnlyObjective  # type: ignore[assignment, misc]
    try:
        start = time.perf_counter()
        worker_module.run_worker(name, settings, poll_interval=0.1)
        seconds = time.perf_counter() - start
    finally:
        worker_module.TrialObjective = original  # type: ignore[misc]
    return {"trials": trials, "ms_per_trial": round(seconds / trials * 1000, 2)}


def raw_round_trips(url: str, repeats: int = 200) -> dict[str, float]:
    """Raw SQLAlchemy on the same database: SELECT 1, and an INSERT committed."""
    from sqlalchemy import create_engine, text

    engine = create_engine(sqlalchemy_url(url))
    with engine.begin() as connection:
        connection.execute(text("CREATE TABLE IF NOT EXISTS bench_rt (id INTEGER, v TEXT)"))
    out = {}
    with engine.connect() as connection:
        start = time.perf_counter()
        for _ in range(repeats):
            connection.execute(text("SELECT 1")).scalar()
        out["select_us"] = round((time.perf_counter() - start) / repeats * 1e6, 1)
        start = time.perf_counter()
        for i in range(repeats):
            connection.execute(text("INSERT INTO bench_rt VALUES (:i, 'x')"), {"i": i})
            connection.commit()
        out["insert_commit_us"] = round((time.perf_counter() - start) / repeats * 1e6, 1)
    engine.dispose()
    return out


def trial_seconds(settings: Settings, timesteps: int = 2000, repeats: int = 3) -> float:
    """A 2,000-step trial's training on the bundled data (median), as a worker runs it."""
    config = TrainingConfig(timesteps=timesteps, n_steps=128, window_size=5)
    train(config.model_copy(update={"timesteps": 256}), "warm-up", settings=settings)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        train(config, "bench-trial", settings=settings)
        times.append(time.perf_counter() - start)
    return sorted(times)[len(times) // 2]


def throughput(
    storage: str,
    folder: Path,
    workers: int,
    trials: int = 12,
    timesteps: int = 3072,
    engine: str = "local",
) -> dict[str, float]:
    """``study run --workers`` on this machine (``--engine``: local processes, or a Ray started
    for the run), equal trials without pruning: wall seconds, trials per minute, and the CPU
    seconds of the whole process tree (workers, their writers, the parent) with the cores it
    kept busy on average."""
    name = f"throughput-{engine}-{workers}-{uuid.uuid4().hex[:6]}"
    env = {
        **os.environ,
        "STUDY_STORAGE": storage,
        "ML_STORAGE_PATH": str(folder / "aim"),
        "MESSAGE_BROKER_TYPE": "memory",
    }
    settings = load_settings(study_storage=storage, ml_storage_path=str(folder / "aim"))
    spec = StudySpec(
        name=name, space=SPACE, trials=trials, timesteps=timesteps, base={"window_size": 5},
        pruner="none",
    )  # fmt: skip
    create_study(spec, settings)
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "agentic_trading.cli.app", "study", "run", name, "--workers",
         str(workers), "--engine", engine],
        env=env, check=True, capture_output=True, timeout=900,
    )  # fmt: skip
    seconds = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = sum(getattr(after, f) - getattr(before, f) for f in ("ru_utime", "ru_stime"))
    return {
        "seconds": round(seconds, 2),
        "trials_per_minute": round(trials / (seconds / 60), 2),
        "cpu_seconds": round(cpu, 1),
        "cores_busy": round(cpu / seconds, 2),
    }


def scaling(storage: str, folder: Path, rounds: int = 3) -> dict[str, Any]:
    """One worker against two, interleaved ``rounds`` times: each round's runs and speed-up,
    and the speed-up's spread."""
    runs = []
    for _ in range(rounds):
        one, two = throughput(storage, folder, 1), throughput(storage, folder, 2)
        runs.append(
            {
                "1_worker": one,
                "2_workers": two,
                "speedup": round(one["seconds"] / two["seconds"], 2),
            }
        )
    speedups = sorted(r["speedup"] for r in runs)
    return {
        "trials": 12,
        "timesteps": 3072,
        "rounds": runs,
        "speedup_min_median_max": [speedups[0], speedups[len(speedups) // 2], speedups[-1]],
    }


#: The Ray engine's study sizes: short trials (the machinery shows most) and trials of the
#: study default (what a researcher runs).
RAY_SIZES = ((12, 3072), (8, DEFAULT_TIMESTEPS))


def ray_engine(storage: str, folder: Path, rounds: int = 3) -> dict[str, Any]:
    """The same study run by two local workers and by two Ray workers (a Ray started for the
    run, its start-up included), at each of :data:`RAY_SIZES`, interleaved ``rounds`` times:
    Ray's trials per minute as a share of the local workers'."""
    sizes: dict[str, Any] = {}
    for _ in range(rounds):
        for trials, timesteps in RAY_SIZES:
            local = throughput(storage, folder, 2, trials, timesteps)
            ray = throughput(storage, folder, 2, trials, timesteps, engine="ray")
            ratio = round(ray["trials_per_minute"] / local["trials_per_minute"], 3)
            size = sizes.setdefault(
                str(timesteps), {"trials": trials, "timesteps": timesteps, "rounds": []}
            )
            size["rounds"].append({"local": local, "ray": ray, "ratio": ratio})
    for size in sizes.values():
        ratios = sorted(r["ratio"] for r in size["rounds"])
        size["ratio_min_median_max"] = [ratios[0], ratios[len(ratios) // 2], ratios[-1]]
    return sizes


def run() -> dict[str, Any]:
    """Every figure; PostgreSQL ones only where the machine's server answers."""
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp, postgres_url() as pg:
        folder = Path(tmp)
        sqlite = f"sqlite:///{folder / 'studies.db'}"
        base = {"ml_storage_path": str(folder / "aim")}
        trial = trial_seconds(load_settings(**base))
        results["trial_2000_steps_seconds"] = round(trial, 3)
        for label, url in (("sqlite", sqlite), ("postgresql", pg)):
            if url is None:
                continue
            settings = load_settings(study_storage=url, **base)
            cost = machinery(settings)
            cost["fraction_of_2000_step_trial"] = round(cost["ms_per_trial"] / 1000 / trial, 4)
            cost["raw_sqlalchemy"] = raw_round_trips(url)
            results[label] = cost
        results["workers"] = scaling(sqlite, folder)
        if importlib.util.find_spec("ray") is not None:
            results["ray_engine"] = ray_engine(sqlite, folder)
    return results
