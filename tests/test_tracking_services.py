"""Tracking through Aim's own servers: the remote tracking server and the UI behind tracking-ui."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from agentic_trading import ExperimentStatus
from agentic_trading.tracking import (
    TrackingUnavailableError,
    TrainingMetrics,
    get_sync_experiment_repository,
    get_sync_tracker,
)
from tests.conftest import make_settings
from tests.redis_server import free_port

AIM = str(Path(sys.executable).with_name("aim"))


def wait_for_port(port: int, proc: subprocess.Popen[bytes], timeout: float = 60) -> None:
    import socket

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"server exited with {proc.returncode}")
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.2)
    raise AssertionError(f"nothing listens on port {port} after {timeout} s")


def get_json(url: str, timeout: float = 60) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                return json.loads(response.read())
        except (urllib.error.URLError, ConnectionError):
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


@pytest.fixture
def aim_server(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """``aim server`` on 127.0.0.1 and a free port, over a repository in a temporary folder."""
    import aim

    repo = tmp_path / "server-repo"
    repo.mkdir()
    aim.Repo.from_path(str(repo), init=True)
    port = free_port()
    proc = subprocess.Popen(
        [AIM, "server", "--repo", str(repo), "--host", "127.0.0.1", "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        wait_for_port(port, proc)
        yield f"aim://127.0.0.1:{port}", repo
    finally:
        stop(proc)


def test_tracking_through_aim_server_keeps_everything(aim_server: tuple[str, Path]) -> None:
    url, repo_path = aim_server
    tracker = get_sync_tracker(make_settings(ml_storage_path=url, ml_heartbeat_interval=0.2))
    run = tracker.create_run("remote", {"agent_type": "PPO", "gamma": 0.99})
    for step in range(300):
        tracker.log_metrics(run, TrainingMetrics(step=step, reward=float(step), loss=0.1))
    tracker.finish_run(run, ExperimentStatus.COMPLETED, {"total_reward": 299.0})
    tracker.close()

    repo = get_sync_experiment_repository(make_settings(ml_storage_path=str(repo_path)))
    detail = repo.get_run(run.run_id)
    assert detail.status is ExperimentStatus.COMPLETED
    assert detail.config == {"agent_type": "PPO", "gamma": 0.99}
    assert detail.final_metrics == {"total_reward": 299.0}
    assert repo.get_metric_series(run.run_id, "reward").steps == list(range(300))

    remote_reader = get_sync_experiment_repository(make_settings(ml_storage_path=url))
    with pytest.raises(TrackingUnavailableError, match="not supported yet"):
        remote_reader.list_runs()


def test_tracking_ui_shows_the_tracker_runs(tmp_path: Path) -> None:
    storage = tmp_path / "aim_logs"
    settings = make_settings(ml_storage_path=str(storage))
    tracker = get_sync_tracker(settings)
    run = tracker.create_run("ui-check", {"learning_rate": 0.0003})
    tracker.log_metrics(run, TrainingMetrics(step=1, reward=2.5))
    tracker.finish_run(run, "completed", {"sharpe_ratio": 1.25})
    tracker.close()

    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "agentic_trading.cli.app", "tracking-ui", "--port", str(port)],
        env={**os.environ, "ML_STORAGE_PATH": str(storage)},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    try:
        wait_for_port(port, proc, timeout=90)
        info = get_json(f"http://127.0.0.1:{port}/api/runs/{run.run_id}/info/")
        assert info["props"]["experiment"]["name"] == "ui-check"
        assert info["params"]["hparams"] == {"learning_rate": 0.0003}
        assert info["params"]["status"] == "completed"
        assert info["params"]["final_metrics"] == {"sharpe_ratio": 1.25}
    finally:
        stop(proc)


def test_tracking_ui_refuses_a_remote_repository() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "agentic_trading.cli.app", "tracking-ui"],
        env={**os.environ, "ML_STORAGE_PATH": "aim://127.0.0.1:1"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 1
    assert "is an Aim server; its UI runs where its repository is" in done.stderr
    assert "Traceback" not in done.stderr
