"""Training: what ExperimentCallback costs a training, measured the way users meet it.

Each training runs in a fresh process with a fresh callback, so each starts its own writer
process (importing Aim, about 1.5 s of CPU, paid once per process): the whole ``model.learn``
call is timed (start-up and the final record included), against plain SB3 PPO in a fresh
process on the same environment and seed, interleaved round by round. Reported, with the
spread over rounds (min / median / max of each round's ratio): the whole-run kept fraction at
the seed's cadence (progress every 100 steps, metrics every 1,000) and with both every step,
at 6,144 steps and at 50,000 (the default training), the start-up block before the first step
(on a new repository and on an existing one), and ``_on_step``'s mean cost beside an empty
callback's, timed the same way (the floor on this machine: a cold call inside a training).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

#: One training in a fresh process; prints its figures as JSON.
_ONE = """
import json, sys, time
mode, timesteps, storage = sys.argv[1], int(sys.argv[2]), sys.argv[3]
if mode.startswith("early_"):  # as the README suggests: the writer started first thing
    from agentic_trading.config import load_settings
    from agentic_trading.tracking import start_writer

    start_writer(load_settings(ml_storage_path=storage))
    mode = mode[len("early_"):]
from stable_baselines3 import PPO
from agentic_trading.config import load_settings
from agentic_trading.training import ExperimentCallback, load_prices, split_prices
from agentic_trading.training.env import make_env

env = make_env(split_prices(load_prices(), 10).training)
model = PPO("MlpPolicy", env, n_steps=512, seed=1, verbose=0, device="cpu")
out = {}
callback = None
if mode == "empty":  # the floor: what timing a callback's _on_step costs inside a training
    from stable_baselines3.common.callbacks import BaseCallback

    class Empty(BaseCallback):
        def _on_step(self):
            return True

    callback = Empty()
elif mode != "plain":
    every = (1, 1) if mode == "every_step" else (100, 1000)
    settings = load_settings(ml_storage_path=storage)
    callback = ExperimentCallback("bench", {}, None, *every, settings=settings)
    start_hook = callback._on_training_start

    def timed_start():
        began = time.perf_counter()
        start_hook()
        out["startup_ms"] = (time.perf_counter() - began) * 1000

    callback._on_training_start = timed_start
if callback is not None:
    step_hook = callback._on_step
    spent = [0]

    def timed_step():
        began = time.perf_counter_ns()
        keep = step_hook()
        spent[0] += time.perf_counter_ns() - began
        return keep

    callback._on_step = timed_step
began = time.perf_counter()
model.learn(timesteps, callback=callback)
out["learn_seconds"] = time.perf_counter() - began
if callback is not None:
    out["on_step_us"] = spent[0] / 1000 / timesteps
print(json.dumps(out))
"""


def _fresh(
    mode: str, timesteps: int, storage: str, env: dict[str, str] | None = None
) -> dict[str, float]:
    """One training of ``mode`` in a fresh process (``env``: more environment variables)."""
    done = subprocess.run(
        [sys.executable, "-c", _ONE, mode, str(timesteps), storage],
        capture_output=True,
        text=True,
        check=True,
        timeout=1800,
        env={**os.environ, "MESSAGE_BROKER_TYPE": "memory", **(env or {})},
    )
    result: dict[str, float] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def spread(ours: list[float], plain: list[float]) -> dict[str, float]:
    """Min, median and max over rounds of plain's time / ours (the fraction of plain's speed
    kept): each round's pair ran back to back, under the same load."""
    ratios = sorted(p / o for o, p in zip(ours, plain, strict=True))
    return {
        "min": round(ratios[0], 3),
        "median": round(ratios[len(ratios) // 2], 3),
        "max": round(ratios[-1], 3),
    }


def run(rounds: int = 11, timesteps: int = 6144, long_rounds: int | None = None) -> dict[str, Any]:
    """Interleaved rounds of fresh processes: plain, seed cadence on a new repository, every
    step on an existing one, and in the first rounds an empty callback (the floor of the
    ``_on_step`` figure); then ``long_rounds`` (``BENCH_LONG_ROUNDS``, default 5) of the same
    at 50,000 steps."""
    long_rounds = (
        int(os.environ.get("BENCH_LONG_ROUNDS", "5")) if long_rounds is None else long_rounds
    )
    with tempfile.TemporaryDirectory() as tmp:
        existing = str(Path(tmp) / "existing")
        _fresh("seed_cadence", 512, existing)  # an existing repository
        learn: dict[str, list[float]] = {"plain": [], "seed_cadence": [], "every_step": []}
        startup: dict[str, list[float]] = {"new_repository": [], "existing_repository": []}
        on_step: dict[str, list[float]] = {"seed_cadence": [], "every_step": [], "empty": []}
        for i in range(rounds):
            learn["plain"].append(_fresh("plain", timesteps, existing)["learn_seconds"])
            new = _fresh("seed_cadence", timesteps, str(Path(tmp) / f"new-{i}"))
            old = _fresh("every_step", timesteps, existing)
            learn["seed_cadence"].append(new["learn_seconds"])
            learn["every_step"].append(old["learn_seconds"])
            startup["new_repository"].append(new["startup_ms"])
            startup["existing_repository"].append(old["startup_ms"])
            on_step["seed_cadence"].append(new["on_step_us"])
            on_step["every_step"].append(old["on_step_us"])
            if i < 3:  # the floor varies little
                on_step["empty"].append(_fresh("empty", timesteps, existing)["on_step_us"])
        long: dict[str, list[float]] = {"plain": [], "seed_cadence": [], "every_step": []}
        for _ in range(long_rounds):
            for mode in long:
                long[mode].append(_fresh(mode, 50_000, existing)["learn_seconds"])
    median = lambda values: round(sorted(values)[len(values) // 2], 2)  # noqa: E731
    return {
        "timesteps": timesteps,
        "rounds": rounds,
        "fresh_processes": {
            "learn_seconds": {k: [round(x, 3) for x in v] for k, v in learn.items()},
            "kept_fraction_seed_cadence": spread(learn["seed_cadence"], learn["plain"]),
            "kept_fraction_every_step": spread(learn["every_step"], learn["plain"]),
            "startup_ms_median": {k: median(v) for k, v in startup.items()},
            "on_step_us_mean_median": {k: median(v) for k, v in on_step.items()},
        },
        "long_trainings": {
            "timesteps": 50_000,
            "rounds": long_rounds,
            "learn_seconds": {k: [round(x, 3) for x in v] for k, v in long.items()},
            "kept_fraction_seed_cadence": (
                spread(long["seed_cadence"], long["plain"]) if long_rounds else None
            ),
            "kept_fraction_every_step": (
                spread(long["every_step"], long["plain"]) if long_rounds else None
            ),
        },
    }
