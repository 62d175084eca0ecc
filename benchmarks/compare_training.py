"""Two checkouts' ExperimentCallback, interleaved in one run against plain SB3.

    python -m benchmarks.compare_training --baseline /path/to/other/checkout/src \\
        --rounds 11 --timesteps 6144 before:seed_cadence after:seed_cadence after:early_every_step

Each variant is ``WHO:MODE``: ``before`` runs the baseline's code (``PYTHONPATH`` to it),
``after`` this checkout's; ``MODE`` is one of ``bench_training``'s (``seed_cadence`` on a new
repository each round, ``every_step`` on an existing one, ``early_`` for a script that calls
``start_writer()`` first). Every training is a fresh process; each round runs plain SB3 and then
every variant. Prints and writes (``--output``) the learn times, the start-up blocks and each
variant's kept fraction of plain (min / median / max over rounds).
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path
from typing import Any

from benchmarks.bench_training import _fresh, spread

SOURCE = Path(__file__).resolve().parents[1] / "src"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.compare_training")
    parser.add_argument("variants", nargs="+", help="WHO:MODE, e.g. before:seed_cadence")
    parser.add_argument("--baseline", type=Path, required=True, help="the other checkout's src")
    parser.add_argument("--rounds", type=int, default=11)
    parser.add_argument("--timesteps", type=int, default=6144)
    parser.add_argument("--output", type=Path, default=None)
    args = parser.parse_args(argv)
    code = {"before": {"PYTHONPATH": str(args.baseline)}, "after": {"PYTHONPATH": str(SOURCE)}}
    learn: dict[str, list[float]] = {v: [] for v in ["plain", *args.variants]}
    startup: dict[str, list[float]] = {v: [] for v in args.variants}
    with tempfile.TemporaryDirectory() as tmp:
        existing = {who: str(Path(tmp) / f"existing-{who}") for who in code}
        for who, env in code.items():
            _fresh("seed_cadence", 512, existing[who], env)  # an existing repository each
        for i in range(args.rounds):
            for key in learn:
                who, _, mode = key.partition(":")
                if key == "plain":
                    result = _fresh("plain", args.timesteps, existing["after"], code["after"])
                else:
                    new = mode.endswith("seed_cadence")
                    storage = str(Path(tmp) / f"new-{key}-{i}") if new else existing[who]
                    result = _fresh(mode, args.timesteps, storage, code[who])
                    startup[key].append(round(result["startup_ms"], 1))
                learn[key].append(result["learn_seconds"])
            print(i, {k: round(v[-1], 2) for k, v in learn.items()}, flush=True)
    out: dict[str, Any] = {
        "rounds": args.rounds,
        "timesteps": args.timesteps,
        "baseline": str(args.baseline),
        "learn": learn,
        "startup": startup,
        "kept": {k: spread(v, learn["plain"]) for k, v in learn.items() if k != "plain"},
    }
    print(json.dumps(out["kept"], indent=1))
    if args.output:
        args.output.write_text(json.dumps(out, indent=1) + "\n")


if __name__ == "__main__":
    main()
