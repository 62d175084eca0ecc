"""PBT's overhead: a population trained by ``pbt run`` (Ray Tune's PBT: chunks, checkpoints,
exploits, restores, the driver's tracking) against plain SB3 trainings of the same members and
steps, one per core at a time, interleaved rounds; asynchronous PBT (the default: members share
the cores) and synchronous (``--synch``: a core each, members in turns).

Asynchronous PBT may train chunks twice: a member that copies a checkpoint older than its own
trains those steps again. Each run reports the overhead against plain trainings of the nominal
steps (population x steps: what the user waits for) and per step actually trained (the
machinery's own cost). Two sizes with the same number of chunks split the per-step overhead into
a one-time cost per run (Ray's start, the members' processes) and a share of the training
time."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

POPULATION, CHUNKS = 4, 4
SIZES = (8_192, 65_536)  # steps per member
MODES = ("async", "synch")


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


def pbt_seconds(folder: Path, name: str, steps: int, synch: bool) -> tuple[float, int]:
    """Seconds ``pbt run`` took, and the steps its members trained."""
    env = {
        **os.environ,
        "PBT_PATH": str(folder / "pbt"),
        "ML_STORAGE_PATH": str(folder / "aim"),
        "MESSAGE_BROKER_TYPE": "memory",
    }
    cli = [sys.executable, "-m", "agentic_trading.cli.app", "pbt"]
    subprocess.run(
        [*cli, "create", name, "--population", str(POPULATION), "--perturb-every",
         str(steps // CHUNKS), "--total-steps", str(steps), *(["--synch"] if synch else [])],
        env=env, check=True, capture_output=True, timeout=120,
    )  # fmt: skip
    start = time.perf_counter()
    subprocess.run([*cli, "run", name], env=env, check=True, capture_output=True, timeout=1800)
    seconds = time.perf_counter() - start
    shown = subprocess.run(
        [*cli, "show", name, "--json"], env=env, check=True, capture_output=True, timeout=120
    )
    return seconds, int(json.loads(shown.stdout)["trained_steps"])


def run(rounds: int = 3) -> dict[str, Any]:
    """Interleaved rounds of plain trainings and PBT runs (both modes) at both sizes: the
    overhead of each (nominal and per step trained), and its split into seconds per run and a
    share of the training time."""
    out = []
    with tempfile.TemporaryDirectory() as tmp:
        for k in range(rounds):
            row: dict[str, Any] = {mode: {} for mode in MODES}
            for steps in SIZES:
                plain = plain_seconds(steps)
                for mode in MODES:
                    name = f"bench{k}-{mode}-{steps}"
                    pbt, trained = pbt_seconds(Path(tmp), name, steps, mode == "synch")
                    extra = trained / (POPULATION * steps)  # plain SB3 is linear in steps
                    row[mode][str(steps)] = {
                        "plain_s": round(plain, 2), "pbt_s": round(pbt, 2),
                        "trained_x": round(extra, 3),
                        "overhead": round(pbt / plain - 1, 3),
                        "overhead_per_step": round(pbt / (plain * extra) - 1, 3),
                    }  # fmt: skip
            for mode in MODES:
                small, large = (row[mode][str(s)] for s in SIZES)
                # Same chunks at both sizes: what grows with the steps is the share of training
                # time; the rest is paid once per run.
                plain_small = small["plain_s"] * small["trained_x"]
                plain_large = large["plain_s"] * large["trained_x"]
                share = (large["pbt_s"] - small["pbt_s"]) / (plain_large - plain_small) - 1
                row[mode]["share_of_training"] = round(share, 3)
                row[mode]["seconds_per_run"] = round(small["pbt_s"] - plain_small * (1 + share), 2)
            out.append(row)

    def spread(values: list[float]) -> list[float]:
        ordered = sorted(values)
        return [ordered[0], ordered[len(ordered) // 2], ordered[-1]]

    summary: dict[str, Any] = {}
    for mode in MODES:
        summary[mode] = {
            **{
                f"{key}_{s}_min_median_max": spread([r[mode][str(s)][key] for r in out])
                for s in SIZES
                for key in ("overhead", "overhead_per_step", "trained_x")
            },
            **{
                f"{key}_min_median_max": spread([r[mode][key] for r in out])
                for key in ("share_of_training", "seconds_per_run")
            },
        }
    return {
        "population": POPULATION,
        "chunks": CHUNKS,
        "steps_per_member": list(SIZES),
        "rounds": out,
        **summary,
    }
