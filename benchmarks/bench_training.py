"""Training: SB3 PPO steps/s with ExperimentCallback against plain SB3, same env and seed."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from agentic_trading.config import load_settings
from agentic_trading.training import ExperimentCallback
from benchmarks.bench_messaging import kept_fraction
from benchmarks.common import ppo_steps_per_second


def run(rounds: int = 5, timesteps: int = 8192) -> dict[str, Any]:
    """Interleaved rounds of plain, seed cadence (progress every 100 steps, metrics every 1000)
    and every step (both every step), on the embedded defaults (memory broker, local Aim)."""
    with tempfile.TemporaryDirectory() as tmp:
        settings = load_settings(ml_storage_path=str(Path(tmp) / "aim"))
        results: dict[str, list[float]] = {"plain": [], "seed_cadence": [], "every_step": []}
        ppo_steps_per_second(None, timesteps)  # warm-up
        for i in range(rounds):
            results["plain"].append(ppo_steps_per_second(None, timesteps))
            for name, (progress, log) in (("seed_cadence", (100, 1000)), ("every_step", (1, 1))):
                callback = ExperimentCallback(
                    "bench", {}, f"bench-{name}-{i}", progress, log, settings=settings
                )
                results[name].append(ppo_steps_per_second(callback, timesteps))
    return {
        "timesteps": timesteps,
        "steps_per_second": {k: [round(x) for x in v] for k, v in results.items()},
        "kept_fraction_seed_cadence": kept_fraction(results["seed_cadence"], results["plain"]),
        "kept_fraction_every_step": kept_fraction(results["every_step"], results["plain"]),
    }
