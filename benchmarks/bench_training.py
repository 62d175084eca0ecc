"""Training: what ExperimentCallback costs a training, measured the way users meet it.

Each training runs in a fresh process with a fresh callback: the whole ``model.learn`` call is
timed (start-up and the final record included), against plain SB3 PPO in a fresh process on
the same environment and seed, interleaved round by round. The trainings use the host's writer
service (started before the rounds, as any earlier training on the host would have); a host's
first training, which starts its writer cold, is measured too (the service off). Reported: the
whole-run kept fraction at the seed's cadence (progress every 100 steps, metrics every 1,000)
and with both every step, the start-up block before the first step (on a new repository and on
an existing one), and ``_on_step``'s mean cost beside an empty callback's, timed the same way
(the floor on this machine: a cold call inside a training). The old figure (rounds in one warm
process sharing one writer) is measured too, beside them.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from agentic_trading.config import load_settings
from agentic_trading.training import ExperimentCallback
from benchmarks.bench_messaging import kept_fraction
from benchmarks.common import ppo_steps_per_second

#: One training in a fresh process; prints its figures as JSON.
_ONE = """
import json, sys, time
from stable_baselines3 import PPO
from agentic_trading.config import load_settings
from agentic_trading.training import ExperimentCallback, load_prices, split_prices
from agentic_trading.training.env import make_env

mode, timesteps, storage = sys.argv[1], int(sys.argv[2]), sys.argv[3]
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


def _fresh(mode: str, timesteps: int, storage: str, service: bool = True) -> dict[str, float]:
    env = {**os.environ, "MESSAGE_BROKER_TYPE": "memory"}
    if not service:  # each training imports its own writer, as a host's first training does
        env["ML_WRITER_SERVICE_IDLE"] = "0"
    done = subprocess.run(
        [sys.executable, "-c", _ONE, mode, str(timesteps), storage],
        capture_output=True,
        text=True,
        check=True,
        timeout=600,
        env=env,
    )
    result: dict[str, float] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def run(rounds: int = 11, timesteps: int = 6144) -> dict[str, Any]:
    """Interleaved rounds of fresh processes: plain, seed cadence on a new repository, every
    step on an existing one (both with the host's writer service, started before the rounds),
    seed cadence without the service (what a host's first training pays), and in the first
    rounds an empty callback (the floor of the ``_on_step`` figure); then the old warm
    in-process figure."""
    with tempfile.TemporaryDirectory() as tmp:
        existing = str(Path(tmp) / "existing")
        _fresh("seed_cadence", 512, existing)  # an existing repository, and the writer service
        learn: dict[str, list[float]] = {
            "plain": [],
            "seed_cadence": [],
            "every_step": [],
            "seed_cadence_no_service": [],
        }
        startup: dict[str, list[float]] = {"new_repository": [], "existing_repository": []}
        on_step: dict[str, list[float]] = {"seed_cadence": [], "every_step": [], "empty": []}
        for i in range(rounds):
            learn["plain"].append(_fresh("plain", timesteps, existing)["learn_seconds"])
            new = _fresh("seed_cadence", timesteps, str(Path(tmp) / f"new-{i}"))
            old = _fresh("every_step", timesteps, existing)
            learn["seed_cadence"].append(new["learn_seconds"])
            learn["every_step"].append(old["learn_seconds"])
            alone = _fresh("seed_cadence", timesteps, str(Path(tmp) / f"alone-{i}"), False)
            learn["seed_cadence_no_service"].append(alone["learn_seconds"])
            startup["new_repository"].append(new["startup_ms"])
            startup["existing_repository"].append(old["startup_ms"])
            on_step["seed_cadence"].append(new["on_step_us"])
            on_step["every_step"].append(old["on_step_us"])
            if i < 3:  # the floor varies little
                on_step["empty"].append(_fresh("empty", timesteps, existing)["on_step_us"])
        warm = _warm(Path(tmp) / "warm", timesteps)
    speeds = {k: [timesteps / s for s in v] for k, v in learn.items()}
    median = lambda values: round(sorted(values)[len(values) // 2], 2)  # noqa: E731
    return {
        "timesteps": timesteps,
        "fresh_processes": {
            "learn_seconds": {k: [round(x, 3) for x in v] for k, v in learn.items()},
            "kept_fraction_seed_cadence": kept_fraction(speeds["seed_cadence"], speeds["plain"]),
            "kept_fraction_every_step": kept_fraction(speeds["every_step"], speeds["plain"]),
            "kept_fraction_seed_cadence_no_service": kept_fraction(
                speeds["seed_cadence_no_service"], speeds["plain"]
            ),
            "startup_ms_median": {k: median(v) for k, v in startup.items()},
            "on_step_us_mean_median": {k: median(v) for k, v in on_step.items()},
        },
        "warm_in_process": warm,
    }


def _warm(storage: Path, timesteps: int, rounds: int = 3) -> dict[str, Any]:
    """The old figure: rounds in this process, one warm writer and repository for all."""
    settings = load_settings(ml_storage_path=str(storage))
    results: dict[str, list[float]] = {"plain": [], "seed_cadence": []}
    ppo_steps_per_second(None, 1024)  # warm-up
    for i in range(rounds):
        results["plain"].append(ppo_steps_per_second(None, timesteps))
        callback = ExperimentCallback("bench", {}, f"bench-warm-{i}", 100, 1000, settings=settings)
        results["seed_cadence"].append(ppo_steps_per_second(callback, timesteps))
    return {
        "steps_per_second": {k: [round(x) for x in v] for k, v in results.items()},
        "kept_fraction_seed_cadence": kept_fraction(results["seed_cadence"], results["plain"]),
    }
