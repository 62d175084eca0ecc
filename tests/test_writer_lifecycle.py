"""The writer's life: one writer process per process that tracks, reused by every run of that
process, gone with it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

import psutil

from agentic_trading.config import Settings
from agentic_trading.studies import create_study
from agentic_trading.tracking import get_sync_experiment_repository
from tests.conftest import make_settings
from tests.test_studies import env_of, tiny_spec

ROOT = Path(__file__).resolve().parents[1]
CLI = [sys.executable, "-m", "agentic_trading.cli.app"]
WRITER = "agentic_trading.tracking.writer_process"


def _marked(marker: str) -> list[psutil.Process]:
    """The processes alive with ``AT_TEST_MARKER=marker`` in their environment: whatever a
    command started, detached or not, inherits it."""
    alive = []
    for process in psutil.process_iter(["status"]):
        try:
            if process.info["status"] == psutil.STATUS_ZOMBIE:
                continue
            if process.environ().get("AT_TEST_MARKER") == marker:
                alive.append(process)
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            continue
    return alive


def _writers_of(root: psutil.Process) -> set[int]:
    """The writer processes among ``root``'s descendants."""
    found = set()
    try:
        children = root.children(recursive=True)
    except psutil.NoSuchProcess:
        return found
    for child in children:
        try:
            if WRITER in " ".join(child.cmdline()):
                found.add(child.pid)
        except psutil.NoSuchProcess:
            continue
    return found


def _run_watched(
    args: list[str], env: dict[str, str], cwd: Path, seconds: float
) -> tuple[subprocess.Popen[str], str, str, set[int]]:
    """Run the CLI with ``args`` to its end (at most ``seconds``); the process, its output and
    every writer process seen under it (looked at every 50 ms)."""
    proc = subprocess.Popen(
        [*CLI, *args], env=env, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        root = psutil.Process(proc.pid)
        seen: set[int] = set()
        deadline = time.monotonic() + seconds
        while proc.poll() is None and time.monotonic() < deadline:
            seen |= _writers_of(root)
            time.sleep(0.05)
        out, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    return proc, out, err, seen


def test_no_process_is_left_after_a_cli_training(tmp_path: Path) -> None:
    marker = uuid.uuid4().hex
    env = {
        "AT_TEST_MARKER": marker,
        **os.environ,
        "ML_STORAGE_PATH": str(tmp_path / "aim"),
        "MESSAGE_BROKER_TYPE": "memory",
        "PYTHONPATH": str(ROOT),
    }
    proc, out, err, writers = _run_watched(
        ["train", "--timesteps", "512", "--json"], env, tmp_path, 240
    )
    assert proc.returncode == 0, err
    assert len(writers) == 1  # the training's writer ran beside it
    outcome = json.loads(out)
    repo = get_sync_experiment_repository(make_settings(ml_storage_path=str(tmp_path / "aim")))
    assert repo.get_run(outcome["run_id"]).status.value == "completed"
    time.sleep(3)
    assert _marked(marker) == []  # nothing it started is left 3 s after the CLI exits


def test_a_study_workers_trials_share_one_writer_process(tmp_path: Path) -> None:
    settings: Settings = make_settings(
        ml_storage_path=str(tmp_path / "aim"),
        study_storage=f"sqlite:///{tmp_path / 'studies.db'}",
        study_heartbeat_interval=1,
        study_grace_period=4,
    )
    name = f"shared-{uuid.uuid4().hex[:6]}"
    create_study(tiny_spec(name, trials=10, timesteps=256, eval_every=128), settings)
    env = {**os.environ, **env_of(settings), "MESSAGE_BROKER_TYPE": "memory"}
    proc, out, err, writers = _run_watched(["study", "worker", name, "--json"], env, ROOT, 280)
    assert proc.returncode == 0, err
    report = json.loads(out)
    assert sum(report["trials"].values()) == 10, report
    runs = get_sync_experiment_repository(settings).list_runs(limit=50)
    assert len(runs) == 10 and all(run.status.value in ("completed", "pruned") for run in runs)
    assert len(writers) == 1  # ten trials, one writer process
