"""Real `agentic-trading train` processes for the fault and scale-out tests, and their checks."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from agentic_trading.messaging import ExperimentStatus
from agentic_trading.tracking import get_sync_experiment_repository
from tests.conftest import make_settings

CLI = [sys.executable, "-m", "agentic_trading.cli.app"]
ROOT = Path(__file__).resolve().parents[1]
#: Test bars of the bundled data (the last 20 %): a completed training tracks one equity point
#: before them and one after each.
EVALUATION_BARS = 1245 + 1


def env_for(redis_url: str, namespace: str, storage: Path, **extra: str) -> dict[str, str]:
    return {
        **os.environ,
        "MESSAGE_BROKER_TYPE": "redis",
        "REDIS_URL": redis_url,
        "MESSAGE_NAMESPACE": namespace,
        "ML_STORAGE_PATH": str(storage),
        "REDIS_CONNECT_TIMEOUT": "0.5",
        "REDIS_SOCKET_TIMEOUT": "1",
        **extra,
    }


def start_training(
    env: dict[str, str],
    experiment: str,
    timesteps: int,
    seed: int = 1,
    prefix: tuple[str, ...] = (),
) -> subprocess.Popen[str]:
    """``agentic-trading train --json``; ``prefix`` runs it elsewhere (``ip netns exec NAME``)."""
    return subprocess.Popen(
        [
            *prefix,
            *CLI,
            "train",
            "--timesteps",
            str(timesteps),
            "--experiment",
            experiment,
            "--seed",
            str(seed),
            "--json",
        ],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
    )


def cli_json(env: dict[str, str], *args: str) -> Any:
    result = subprocess.run(
        [*CLI, *args], env=env, capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def assert_complete(storage: Path | str, run_id: str) -> None:
    """The run is completed, with every held-out equity point and its final metrics."""
    repository = get_sync_experiment_repository(make_settings(ml_storage_path=str(storage)))
    run = repository.get_run(run_id)
    assert run.status is ExperimentStatus.COMPLETED, run.error
    series = repository.get_metrics(run_id, ["eval_equity", "eval_buy_and_hold_equity"])
    for values in series.values():
        assert values.steps == list(range(EVALUATION_BARS))
    assert {"total_profit", "buy_and_hold_total_profit", "sharpe_ratio"} <= set(run.final_metrics)


def wait_until(condition: Any, timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")
