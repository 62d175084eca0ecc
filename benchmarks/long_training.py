"""``python -m benchmarks.long_training [ROUNDS]``: 50,000-step trainings in fresh processes
with the order rotated by one place every round (so no variant always runs first): plain SB3,
an empty callback (the floor), tracked at the seed's cadence, and tracked with the writer
started first. Writes ``benchmarks/results/training-50000-rotated.json``."""

from __future__ import annotations

import json
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

from benchmarks.bench_training import _fresh
from benchmarks.common import RESULTS

MODES = ["plain", "empty", "seed_cadence", "early_seed_cadence"]


def run(rounds: int = 4, timesteps: int = 50_000) -> dict[str, Any]:
    """Every round's seconds per variant, and each variant's kept fraction of plain's speed
    (min / median / max over rounds)."""
    seconds: dict[str, list[float]] = {mode: [] for mode in MODES}
    with tempfile.TemporaryDirectory() as tmp:
        existing = str(Path(tmp) / "existing")
        _fresh("seed_cadence", 512, existing)  # an existing repository
        for index in range(rounds):
            shift = index % len(MODES)
            for mode in MODES[shift:] + MODES[:shift]:
                seconds[mode].append(_fresh(mode, timesteps, existing)["learn_seconds"])
            print(index, {m: round(v[-1], 1) for m, v in seconds.items()}, flush=True)
    kept = {}
    for mode in MODES[1:]:
        ratios = sorted(p / x for p, x in zip(seconds["plain"], seconds[mode], strict=True))
        kept[mode] = {
            "min": round(ratios[0], 3),
            "median": round(statistics.median(ratios), 3),
            "max": round(ratios[-1], 3),
        }
    return {
        "rounds": rounds,
        "timesteps": timesteps,
        "order": "rotated by one place each round",
        "learn_seconds": seconds,
        "kept": kept,
    }


if __name__ == "__main__":
    result = run(int(sys.argv[1]) if len(sys.argv) > 1 else 4)
    (RESULTS / "training-50000-rotated.json").write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result["kept"]))
