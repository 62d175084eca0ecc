"""PBT's overhead: a population trained by ``pbt run`` (Ray Tune's PBT: chunks, checkpoints,
exploits, restores, the driver's tracking) against plain SB3 trainings of the same members and
steps, as many at a time as Ray runs (one per core), interleaved rounds."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

POPULATION, CHUNK, STEPS = 4, 2048, 8192


def _plain(seed: int) -> None:
    """One member's steps in plain SB3, scored on validation bars after every chunk as a PBT
    member is (the scoring is the work PBT needs, not its overhead)."""
    import torch

    from agentic_trading.training import TrainingConfig
    from agentic_trading.training.agents import make_agent
    from agentic_trading.training.runner import prepare, run_policy

    torch.set_num_threads(1)
    config = TrainingConfig(timesteps=STEPS, seed=seed)
    prepared = prepare(config)
    model = make_agent(config, prepared.env)
    while model.num_timesteps < STEPS:
        model.learn(CHUNK, reset_num_timesteps=False)
        run_policy(model, prepared.split.validation, config, prepared.scaler)


def plain_seconds() -> float:
    start = time.perf_counter()
    with ProcessPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
        list(pool.map(_plain, range(1, POPULATION + 1)))
    return time.perf_counter() - start


def pbt_seconds(folder: Path, round_: int) -> float:
    name = f"bench{round_}"
    env = {
        **os.environ,
        "PBT_PATH": str(folder / "pbt"),
        "ML_STORAGE_PATH": str(folder / "aim"),
        "MESSAGE_BROKER_TYPE": "memory",
    }
    cli = [sys.executable, "-m", "agentic_trading.cli.app", "pbt"]
    subprocess.run(
        [*cli, "create", name, "--population", str(POPULATION), "--perturb-every", str(CHUNK),
         "--total-steps", str(STEPS)],
        env=env, check=True, capture_output=True, timeout=120,
    )  # fmt: skip
    start = time.perf_counter()
    subprocess.run([*cli, "run", name], env=env, check=True, capture_output=True, timeout=1800)
    return time.perf_counter() - start


def run(rounds: int = 3) -> dict[str, Any]:
    """Interleaved rounds of plain trainings and a PBT run; PBT's wall time over plain's."""
    out = []
    with tempfile.TemporaryDirectory() as tmp:
        for k in range(rounds):
            plain = plain_seconds()
            pbt = pbt_seconds(Path(tmp), k)
            out.append({"plain_s": round(plain, 2), "pbt_s": round(pbt, 2),
                        "overhead": round(pbt / plain - 1, 3)})  # fmt: skip
    overheads = sorted(r["overhead"] for r in out)
    return {
        "population": POPULATION,
        "chunk_steps": CHUNK,
        "steps_per_member": STEPS,
        "rounds": out,
        "overhead_min_median_max": [overheads[0], overheads[len(overheads) // 2], overheads[-1]],
    }
