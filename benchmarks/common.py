"""Timing helpers and result output shared by the benchmarks."""

from __future__ import annotations

import json
import platform
import statistics
import time
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).parent / "results"


def percentiles(samples_s: list[float]) -> dict[str, float]:
    """p50/p99/mean of samples given in seconds, reported in microseconds."""
    ordered = sorted(samples_s)
    pick = lambda q: ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1e6  # noqa: E731
    return {
        "p50_us": round(pick(0.50), 2),
        "p99_us": round(pick(0.99), 2),
        "mean_us": round(statistics.fmean(ordered) * 1e6, 2),
        "n": len(ordered),
    }


def save(name: str, data: dict[str, Any]) -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}.json"
    data = {
        "measured_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "machine": {"cpus": __import__("os").cpu_count(), "python": platform.python_version()},
        **data,
    }
    path.write_text(json.dumps(data, indent=2) + "\n")
    return path


def ppo_steps_per_second(callback: Any, timesteps: int) -> float:
    """Steps/s of SB3 PPO learning ``timesteps`` on the training bars of the bundled EUR/USD
    data in our ``TradingEnv`` (what ``train`` trains on), with ``callback``."""
    from stable_baselines3 import PPO

    from agentic_trading.training import load_prices, split_prices
    from agentic_trading.training.env import make_env

    env = make_env(split_prices(load_prices(), 10).training)
    model = PPO("MlpPolicy", env, n_steps=512, seed=1, verbose=0, device="cpu")
    start = time.perf_counter()
    model.learn(timesteps, callback=callback)
    return timesteps / (time.perf_counter() - start)
