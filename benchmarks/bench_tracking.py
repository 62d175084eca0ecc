"""Tracking: what log_metrics costs the training loop against raw Aim, how fast points reach
disk, what SB3 PPO keeps when tracking every step, and how fast the repository answers with
1,000 runs."""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Any

from agentic_trading.config import Settings, load_settings
from agentic_trading.tracking import (
    TrainingMetrics,
    get_sync_experiment_repository,
    get_sync_tracker,
)
from benchmarks.bench_messaging import kept_fraction
from benchmarks.common import percentiles, ppo_steps_per_second

POINTS = 3000
VALUES = {"loss": 0.045, "reward": 1250.5, "episode_length": 100.0, "entropy": 0.69}


def _settings(path: Path, **extra: Any) -> Settings:
    return load_settings(ml_storage_path=str(path), **extra)


def caller_cost(path: Path) -> dict[str, Any]:
    """p50/p99 of one call: raw ``run.track`` of 4 metrics vs ``log_metrics`` of the same."""
    import aim

    raw_run = aim.Run(
        repo=str(path), experiment="bench-raw", system_tracking_interval=None,
        log_system_params=False, capture_terminal_logs=False,
    )  # fmt: skip
    raw: list[float] = []
    for step in range(POINTS):
        start = time.perf_counter()
        raw_run.track(VALUES, step=step)
        raw.append(time.perf_counter() - start)
    raw_run.close()

    tracker = get_sync_tracker(_settings(path, ml_queue_size=POINTS * 2))
    run = tracker.create_run("bench-ours", {})
    ours: list[float] = []
    written_from = time.perf_counter()
    for step in range(POINTS):
        start = time.perf_counter()
        tracker.log_metrics(run, TrainingMetrics(step=step, **VALUES))
        ours.append(time.perf_counter() - start)
    tracker.flush()
    drained = time.perf_counter() - written_from
    tracker.finish_run(run)
    tracker.close()
    raw_p = percentiles(raw)
    ours_p = percentiles(ours)
    return {
        "raw_run_track": raw_p,
        "log_metrics_caller": ours_p,
        "cheaper_at_p50": round(raw_p["p50_us"] / ours_p["p50_us"], 1),
        "raw_points_per_second": round(POINTS / sum(raw)),
        "points_per_second_to_disk": round(POINTS / drained),
        "values_per_second_to_disk": round(POINTS * len(VALUES) / drained),
    }


def training_overhead(path: Path, rounds: int = 3, timesteps: int = 4096) -> dict[str, Any]:
    """SB3 PPO on our TradingEnv: plain, tracking 4 metrics every step inline (raw Aim), and through
    the tracker's writer."""
    import aim
    from stable_baselines3.common.callbacks import BaseCallback

    class Track(BaseCallback):
        def __init__(self, log: Any) -> None:
            super().__init__()
            self.log = log

        def _on_step(self) -> bool:
            self.log(self.num_timesteps)
            return True

    def train(callback: BaseCallback | None) -> float:
        return ppo_steps_per_second(callback, timesteps)

    tracker = get_sync_tracker(_settings(path))
    results: dict[str, list[float]] = {"plain": [], "raw_aim_inline": [], "tracker": []}
    train(None)
    for _ in range(rounds):
        results["plain"].append(train(None))
        raw_run = aim.Run(repo=str(path), experiment="bench-sb3-raw", system_tracking_interval=None)
        results["raw_aim_inline"].append(
            train(Track(lambda step, r=raw_run: r.track(VALUES, step=step)))
        )
        raw_run.close()
        run = tracker.create_run("bench-sb3", {})
        results["tracker"].append(
            train(Track(lambda step, r=run: tracker.log_metrics(r, VALUES, step=step)))
        )
        tracker.finish_run(run)
    tracker.close()
    return {
        "steps_per_second": {k: [round(x) for x in v] for k, v in results.items()},
        "kept_fraction_raw_aim_inline": kept_fraction(results["raw_aim_inline"], results["plain"]),
        "kept_fraction_tracker": kept_fraction(results["tracker"], results["plain"]),
    }


def fill_repository(settings: Settings, runs: int) -> tuple[list[str], float]:
    """Write ``runs`` finished runs (10 experiments); their ids and the seconds it took."""
    tracker = get_sync_tracker(settings)
    started = time.perf_counter()
    ids = []
    for i in range(runs):
        run = tracker.create_run(f"bench-{i % 10}", {"learning_rate": 1e-4 * (1 + i % 7), "i": i})
        tracker.log_metrics(run, TrainingMetrics(step=0, reward=float(i)))
        tracker.finish_run(run, "completed", {"total_reward": float(i), "sharpe_ratio": i / runs})
        ids.append(run.run_id)
    fill = time.perf_counter() - started
    tracker.close()
    return ids, fill


def repository_queries(path: Path, runs: int = 1000) -> dict[str, Any]:
    """Fill a repository with ``runs`` finished runs, then time the repository's queries."""
    settings = _settings(path)
    ids, fill = fill_repository(settings, runs)

    def timed(call: Any) -> float:
        start = time.perf_counter()
        call()
        return round((time.perf_counter() - start) * 1000, 1)

    cold = get_sync_experiment_repository(settings)
    first_page = timed(lambda: cold.list_runs(limit=50))
    repo = get_sync_experiment_repository(settings)
    repo.list_runs(limit=1)
    return {
        "runs": runs,
        "fill_seconds": round(fill, 1),
        "list_runs_page_of_50_cold_ms": first_page,
        "list_runs_page_of_50_ms": timed(lambda: repo.list_runs(limit=50)),
        "list_runs_sorted_by_metric_ms": timed(
            lambda: repo.list_runs(order_by="-final_metrics.sharpe_ratio", limit=50)
        ),
        "list_runs_aimql_ms": timed(
            lambda: repo.list_runs(query="run.hparams.learning_rate > 0.0005", limit=50)
        ),
        "list_experiments_ms": timed(repo.list_experiments),
        "compare_5_runs_ms": timed(lambda: repo.compare_runs(ids[:5], ["total_reward", "reward"])),
        "get_run_ms": timed(lambda: repo.get_run(ids[-1])),
    }


def run() -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        return {
            "caller": caller_cost(root / "caller"),
            "training": training_overhead(root / "training"),
            "repository": repository_queries(root / "repository"),
        }
