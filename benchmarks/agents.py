"""The agents benchmark: every agent, feature set and reward judged out of sample after costs.

    make benchmark-agents                      # the whole grid; cells already done are skipped
    python -m benchmarks.agents --jobs 2 --only PPO:standard:net --fresh

Each cell (agent x features x reward) is one walk-forward evaluation, exactly as
``agentic-trading train --folds 5 --seeds 3`` makes it: the agent is trained on each of 5
anchored folds with each of 3 seeds, after 3-pip costs, and judged against buy-and-hold on the
fold's test bars, never seen in training or validation (IQM excess Sharpe with a stratified
bootstrap 95 % CI, P(beats buy-and-hold), PSR, degenerate runs; the median break-even cost).
Every training is tracked (``BENCHMARK_AIM``, default ``.benchmark-aim``; ``aim up`` there shows
them) on the memory broker.

Cells run in their own processes, ``--jobs`` at a time, one torch thread each. Each finished
cell is written at once to benchmarks/results/agents.json; a cell found there with the same
steps, folds and seeds is skipped, so a cut run resumes. docs/benchmark.md is written from the
results file (and the trial-budget measurement, benchmarks/results/trial-budget.json) at the end.
"""

from __future__ import annotations

import argparse
import datetime as dt
import itertools
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results" / "agents.json"
BUDGET = ROOT / "benchmarks" / "results" / "trial-budget.json"
DOC = ROOT / "docs" / "benchmark.md"

AGENTS = ("PPO", "A2C", "DQN", "SAC")
FEATURES = ("returns", "standard")
REWARDS = ("net", "dsr")
#: Training steps per agent. SAC takes a gradient step per environment step (about 7x PPO's
#: compute a step here), so it gets fewer steps (about twice the wall time of PPO).
STEPS = {"PPO": 50_000, "A2C": 50_000, "DQN": 50_000, "SAC": 20_000}
FOLDS, SEEDS, FEE_PIPS = 5, 3, 3.0


def cell_key(agent: str, features: str, reward: str) -> str:
    return f"{agent}:{features}:{reward}"


def run_cell(key: str, steps: int, aim: str) -> dict[str, Any]:
    """One cell in this process: the walk-forward group and its figures."""
    import torch

    from agentic_trading.config import Settings
    from agentic_trading.evaluation.verdict import run_verdict
    from agentic_trading.training import TrainingConfig
    from agentic_trading.training.walk_forward import train_group

    torch.set_num_threads(1)
    agent, features, reward = key.split(":")
    config = TrainingConfig(
        agent_type=agent,
        features=features,
        reward=reward,
        timesteps=steps,
        folds=FOLDS,
        fee_pips=FEE_PIPS,
    )
    settings = Settings(message_broker_type="memory", ml_storage_path=aim)
    started = time.perf_counter()
    outcome = train_group(config, f"benchmark-{agent}-{features}-{reward}", seeds=SEEDS,
                          settings=settings)  # fmt: skip
    verdict = outcome.verdict
    if verdict is None:
        raise RuntimeError(f"{key}: the group ended {outcome.status.value} without a verdict")
    break_even = []
    for member in outcome.members:
        assert member.test_record is not None and member.baseline_record is not None
        value = run_verdict(member.test_record, member.baseline_record).break_even_cost_pips
        break_even.append(float("inf") if value is None else value)
    figures = verdict.figures()
    return {
        "agent": agent,
        "features": features,
        "reward": reward,
        "steps": steps,
        "folds": FOLDS,
        "seeds": SEEDS,
        "fee_pips": FEE_PIPS,
        "excess_sharpe_iqm": figures["excess_sharpe_iqm"],
        "excess_sharpe_ci": [figures["excess_sharpe_ci_low"], figures["excess_sharpe_ci_high"]],
        "p_beats_buy_and_hold": verdict.p_beats_buy_and_hold,
        "psr": verdict.psr,
        "degenerate_share": verdict.degenerate_runs / verdict.runs,
        "break_even_cost_pips_median": statistics.median(break_even),
        "label": verdict.label,
        "summary": verdict.summary(),
        "group_run_id": outcome.group_id,
        "wall_seconds": time.perf_counter() - started,
        "commit": _commit(),
        "finished_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
    }


def _commit() -> str:
    try:
        out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT,
                             capture_output=True, text=True, timeout=10, check=True)  # fmt: skip
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=ROOT,
                           capture_output=True, text=True, timeout=10, check=False).stdout  # fmt: skip
    return out.stdout.strip() + ("+changes" if dirty.strip() else "")


def _load(path: Path) -> dict[str, Any]:
    if not path.is_file():
        return {"cells": {}}
    data: dict[str, Any] = json.loads(path.read_text())
    data.setdefault("cells", {})
    return data


def _save(path: Path, data: dict[str, Any]) -> None:
    partial = path.with_suffix(".json.partial")
    partial.write_text(json.dumps(data, indent=2, default=str) + "\n")
    partial.replace(path)


def _done(cell: dict[str, Any] | None, steps: int) -> bool:
    return (
        bool(cell)
        and (cell or {}).get("steps") == steps
        and cell.get("folds") == FOLDS
        and (cell.get("seeds") == SEEDS)
    )


def _child(key: str, steps: int, aim: str) -> dict[str, Any]:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    result = subprocess.run(
        [sys.executable, "-m", "benchmarks.agents", "--cell", key, "--steps", str(steps),
         "--aim", aim],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=4 * 3600, check=False,
    )  # fmt: skip
    if result.returncode != 0:
        raise RuntimeError(
            f"cell {key} failed (exit {result.returncode}):\n{result.stderr[-3000:]}"
        )
    cell: dict[str, Any] = json.loads(result.stdout.strip().splitlines()[-1])
    return cell


def _machine() -> str:
    model = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{os.cpu_count()} cores ({model}), Python {platform.python_version()}, CPU only"


def _cells(only: str | None) -> list[str]:
    keys = [cell_key(*c) for c in itertools.product(AGENTS, FEATURES, REWARDS)]
    if only:
        wanted = [k.strip() for k in only.split(",")]
        unknown = [k for k in wanted if k not in keys]
        if unknown:
            raise SystemExit(f"unknown cell(s) {', '.join(unknown)}; cells are {', '.join(keys)}")
        keys = wanted
    return keys


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.agents", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    parser.add_argument("--jobs", type=int, default=2, help="cells at once (default 2)")
    parser.add_argument("--only", help="cells by AGENT:FEATURES:REWARD, comma-separated")
    parser.add_argument("--fresh", action="store_true", help="run the cells again even if done")
    parser.add_argument("--output", type=Path, default=RESULTS)
    parser.add_argument("--doc", type=Path, default=DOC)
    parser.add_argument(
        "--aim", default=os.environ.get("BENCHMARK_AIM", str(ROOT / ".benchmark-aim"))
    )
    parser.add_argument("--cell", help=argparse.SUPPRESS)
    parser.add_argument("--steps", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.cell:  # a child: one cell, its figures as the last line of output
        print(json.dumps(run_cell(args.cell, args.steps, args.aim), default=str), flush=True)
        return
    data = _load(args.output)
    todo = [
        key for key in _cells(args.only)
        if args.fresh or not _done(data["cells"].get(key), STEPS[key.split(":")[0]])
    ]  # fmt: skip
    print(
        f"{len(todo)} cell(s) to run, {args.jobs} at a time; results in {args.output}", flush=True
    )
    started = time.perf_counter()
    failures = []
    with ThreadPoolExecutor(max_workers=max(1, args.jobs)) as pool:
        futures = {pool.submit(_child, k, STEPS[k.split(":")[0]], args.aim): k for k in todo}
        for n, future in enumerate(futures, 1):
            key = futures[future]
            try:
                cell = future.result()
            except RuntimeError as exc:
                failures.append(str(exc))
                print(f"[{n}/{len(todo)}] {exc}", file=sys.stderr, flush=True)
                continue
            data = _load(args.output)  # the file is ours alone; re-read for a concurrent edit
            data["cells"][key] = cell
            _save(args.output, data)
            print(f"[{n}/{len(todo)}] {key}: {cell['summary']} ({cell['wall_seconds']:.0f} s)",
                  flush=True)  # fmt: skip
    data = _load(args.output)
    if todo:
        data["last_run"] = {
            "command": "make benchmark-agents",
            "cells_run": len(todo) - len(failures),
            "jobs": args.jobs,
            "wall_seconds": time.perf_counter() - started,
            "machine": _machine(),
            "commit": _commit(),
            "finished_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        }
        _save(args.output, data)
    args.doc.write_text(render(data, _budget()))
    print(f"wrote {args.doc}")
    if failures:
        raise SystemExit(f"{len(failures)} cell(s) failed; run again to retry them")


def _budget() -> dict[str, Any] | None:
    return json.loads(BUDGET.read_text()) if BUDGET.is_file() else None


def _fmt(value: float, sign: bool = True) -> str:
    if value == float("inf"):
        return "any"
    return f"{value:+.2f}" if sign else f"{value:.2f}"


def render(data: dict[str, Any], budget: dict[str, Any] | None) -> str:
    """docs/benchmark.md from the results (and the trial-budget measurement)."""
    cells = data.get("cells", {})
    run = data.get("last_run", {})
    lines = [
        "# The agents benchmark",
        "",
        "<!-- written by `make benchmark-agents` (benchmarks/agents.py); edit the script, not "
        "this file -->",
        "",
        f"Every agent with each feature set and reward, trained on the bundled EUR/USD hourly "
        f"bars over {FOLDS} anchored walk-forward folds x {SEEDS} seeds, after "
        f"{FEE_PIPS:g}-pip costs on every unit of position traded, and judged on each fold's "
        "test bars (never seen in training or validation) against buy-and-hold. Published as "
        "measured.",
        "",
        "- **excess Sharpe**: the interquartile mean over the 15 runs of the annualised Sharpe "
        "ratio minus buy-and-hold's on the same bars, with a stratified bootstrap 95 % "
        "interval (folds as strata), as rliable reports RL results.",
        "- **P(beats B&H)**: the probability that a run's Sharpe beats buy-and-hold's on its "
        "fold. **PSR**: the probabilistic Sharpe ratio of the out-of-sample track record "
        "(median over seeds; the probability that the true Sharpe is above 0).",
        "- **degenerate**: the share of runs that hold one position on 95 % of bars or more. "
        "**break-even**: the median cost in pips per unit traded at which a run's profit equals "
        "buy-and-hold's (0 when it trails even without costs).",
        "- **verdict**: skill (PSR against 0 and against buy-and-hold above 95 %, and the "
        "interval above 0), trails (PSR against buy-and-hold below 5 %, or the whole interval "
        "below 0 with that PSR at most 0.5) or luck (neither); docs/evaluation.md.",
        "",
        "| agent | features | reward | steps | excess Sharpe (95 % CI) | P(beats B&H) | PSR | "
        "degenerate | break-even (pips) | verdict |",
        "|---|---|---|---:|---|---:|---:|---:|---:|---|",
    ]
    for key in _cells(None):
        cell = cells.get(key)
        agent, features, reward = key.split(":")
        if not cell:
            lines.append(f"| {agent} | {features} | {reward} | | not run | | | | | |")
            continue
        low, high = cell["excess_sharpe_ci"]
        lines.append(
            f"| {agent} | {features} | {reward} | {cell['steps']:,} | "
            f"{_fmt(cell['excess_sharpe_iqm'])} ({_fmt(low)}..{_fmt(high)}) | "
            f"{cell['p_beats_buy_and_hold']:.2f} | {cell['psr']:.2f} | "
            f"{cell['degenerate_share']:.0%} | {_fmt(cell['break_even_cost_pips_median'], False)} "
            f"| {cell['label']} |"
        )
    total = sum(c.get("wall_seconds", 0.0) for c in cells.values())
    lines += [
        "",
        "## How it was run",
        "",
        "```",
        "make benchmark-agents        # python -m benchmarks.agents --jobs 2",
        "```",
        "",
        f"- Steps per training: {', '.join(f'{a} {s:,}' for a, s in STEPS.items())} (SAC takes "
        "a gradient step per environment step, about 7x PPO's compute per step here, so it "
        "gets fewer steps, for about twice the wall time of PPO). Every other setting is the training's "
        "default (`agentic-trading train --help`).",
        f"- Commit: {run.get('commit', 'n/a')}; each cell's own commit is in "
        "benchmarks/results/agents.json.",
        f"- Machine: {run.get('machine', 'n/a')}.",
        f"- Wall time of the last run: {run.get('wall_seconds', 0) / 60:.0f} min for "
        f"{run.get('cells_run', 0)} cell(s), {run.get('jobs', '?')} at a time; the cells' own "
        f"times add up to {total / 60:.0f} min.",
        f"- Finished: {run.get('finished_at', 'n/a')}.",
        "- Each cell's 15 trainings and its group are tracked runs (`BENCHMARK_AIM`, default "
        "`.benchmark-aim`): `aim up --repo .benchmark-aim`, or point `ML_STORAGE_PATH` at it "
        "and use `agentic-trading experiments show GROUP_RUN_ID`.",
        "",
        "To reproduce one cell: `agentic-trading train --agent ppo --features standard --reward "
        "net --timesteps 50000 --folds 5 --seeds 3`.",
    ]
    if budget:
        lines += ["", *_budget_section(budget)]
    return "\n".join(lines) + "\n"


def _budget_section(budget: dict[str, Any]) -> list[str]:
    lines = [
        "## How long a study's trial should train",
        "",
        f"`python -m benchmarks.trial_budget` sampled {len(budget['configs'])} hyperparameter "
        "sets from the built-in PPO space (random sampler, seed 0), trained each once per "
        "feature set and scored its policy on the validation bars at each budget. A policy "
        "*churns* when it trades at least 0.05 units a bar and pays more in costs than it "
        "gains before them; *degenerate* when it holds one position on 95 % of bars.",
        "",
        "| features | steps | churn | degenerate | validation Sharpe median (min..max) | "
        "turnover median |",
        "|---|---:|---:|---:|---|---:|",
    ]
    for features, result in budget["results"].items():
        for steps, line in result["summary"].items():
            sharpe = line["sharpe"]
            lines.append(
                f"| {features} | {int(steps):,} | {line['churn_share']:.0%} | "
                f"{line['degenerate_share']:.0%} | {sharpe['median']:+.2f} "
                f"({sharpe['min']:+.2f}..{sharpe['max']:+.2f}) | "
                f"{line['turnover']['median']:.3f} |"
            )
    return lines


if __name__ == "__main__":
    main()
