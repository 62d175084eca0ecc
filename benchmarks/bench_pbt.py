"""PBT's overhead: a population trained by ``pbt run`` (Ray Tune's PBT: chunks, checkpoints,
exploits, restores, the driver's tracking) against plain SB3 trainings of the same members and
steps, one per core at a time, interleaved rounds; at two sizes with the same number of chunks,
which splits the overhead into a one-time cost per run (Ray's start, the members' processes)
and a share of the training time (checkpoints, exploits, restores, the driver's records)."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

POPULATION, CHUNKS = 4, 4
SIZES = (8_192, 32_768)  # steps per member


def _plain(job: tuple[int, int]) -> None:
    """One member's steps in plain SB3, scored on validation bars after every chunk as a PBT
    member is (the scoring is the work PBT needs, not its overhead)."""
    import torch

    from agentic_trading.training import TrainingConfig
    from agentic_trading.training.agents import make_agent
    from agentic_trading.training.runner import prepare, run_policy

    seed, steps = job
    torch.set_num_threads(1)
    config = TrainingConfig(timesteps=steps, seed=seed)
    prepared = prepare(config)
    model = make_agent(config, prepared.env)
    while model.num_timesteps < steps:
        model.learn(steps // CHUNKS, reset_num_timesteps=False)
        run_policy(model, prepared.split.validation, config, prepared.scaler)


def plain_seconds(steps: int) -> float:
    start = time.perf_counter()
    with ProcessPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
        list(pool.map(_plain, [(seed, steps) for seed in range(1, POPULATION + 1)]))
    return time.perf_counter() - start


def pbt_seconds(folder: Path, name: str, steps: int) -> float:
    env = {
        **os.environ,
        "PBT_PATH": str(folder / "pbt"),
        "ML_STORAGE_PATH": str(folder / "aim"),
        "MESSAGE_BROKER_TYPE": "memory",
    }
    cli = [sys.executable, "-m", "agentic_trading.cli.app", "pbt"]
    subprocess.run(
        [*cli, "create", name, "--population", str(POPULATION), "--perturb-every",
         str(steps // CHUNKS), "--total-steps", str(steps)],
        env=env, check=True, capture_output=True, timeout=120,
    )  # fmt: skip
    start = time.perf_counter()
    subprocess.run([*cli, "run", name], env=env, check=True, capture_output=True, timeout=1800)
    return time.perf_counter() - start


def run(rounds: int = 3) -> dict[str, Any]:
    """Interleaved rounds of plain trainings and a PBT run at both sizes: the overhead at each,
    and its split into seconds per run and a share of the training time."""
    out = []
    with tempfile.TemporaryDirectory() as tmp:
        for k in range(rounds):
            row: dict[str, Any] = {}
            for steps in SIZES:
                plain = plain_seconds(steps)
                pbt = pbt_seconds(Path(tmp), f"bench{k}-{steps}", steps)
                row[str(steps)] = {"plain_s": round(plain, 2), "pbt_s": round(pbt, 2),
                                   "overhead": round(pbt / plain - 1, 3)}  # fmt: skip
            small, large = (row[str(s)] for s in SIZES)
            # Same chunks at both sizes: what grows with the steps is the share of training
            # time; the rest is paid once per run.
            share = (large["pbt_s"] - small["pbt_s"]) / (large["plain_s"] - small["plain_s"]) - 1
            row["share_of_training"] = round(share, 3)
            row["seconds_per_run"] = round(small["pbt_s"] - small["plain_s"] * (1 + share), 2)
            out.append(row)

    def spread(values: list[float]) -> list[float]:
        ordered = sorted(values)
        return [ordered[0], ordered[len(ordered) // 2], ordered[-1]]

    return {
        "population": POPULATION,
        "chunks": CHUNKS,
        "steps_per_member": list(SIZES),
        "rounds": out,
        **{
            f"overhead_{s}_min_median_max": spread([r[str(s)]["overhead"] for r in out])
            for s in SIZES
        },
        "share_of_training_min_median_max": spread([r["share_of_training"] for r in out]),
        "seconds_per_run_min_median_max": spread([r["seconds_per_run"] for r in out]),
    }
