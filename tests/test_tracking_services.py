"""Tracking through Aim's own servers: the remote tracking server and the UI behind tracking-ui."""

from __future__ import annotations

import json
import os
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
from tests.aim_server import AimServer, stop_process, wait_for_port
from tests.conftest import make_settings
from tests.dash_requests import Browserless, history_rows
from tests.redis_server import free_port
from tests.trainings import assert_complete, start_training, wait_until


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


@pytest.fixture
def aim_server(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """``aim server`` on 127.0.0.1 and a free port, over a repository in a temporary folder."""
    server = AimServer(tmp_path / "server-repo").start()
    try:
        yield server.url, server.repo
    finally:
        server.stop()


def test_tracking_through_aim_server_keeps_everything(aim_server: tuple[str, Path]) -> None:
    url, repo_path = aim_server
    tracker = get_sync_tracker(make_settings(ml_storage_path=url, ml_heartbeat_interval=0.2))
    run = tracker.create_run("remote", {"agent_type": "PPO", "gamma": 0.99}, tags=["scale-out"])
    for step in range(300):
        tracker.log_metrics(run, TrainingMetrics(step=step, reward=float(step), loss=0.1))
    tracker.finish_run(run, ExperimentStatus.COMPLETED, {"total_reward": 299.0})
    other = tracker.create_run("remote", {"agent_type": "A2C", "gamma": 0.9})
    tracker.log_metrics(other, TrainingMetrics(step=0, reward=1.0))
    tracker.flush()

    # The server's repository folder, as Aim's UI on the tracking host reads it.
    local = get_sync_experiment_repository(make_settings(ml_storage_path=str(repo_path)))
    detail = local.get_run(run.run_id)
    assert detail.status is ExperimentStatus.COMPLETED
    assert detail.config == {"agent_type": "PPO", "gamma": 0.99}
    assert local.get_metric_series(run.run_id, "reward").steps == list(range(300))

    # Any other host reads the same runs through the server, unindexed ones included.
    remote = get_sync_experiment_repository(make_settings(ml_storage_path=url))
    runs = {r.run_id: r for r in remote.list_runs()}
    assert set(runs) == {run.run_id, other.run_id}
    assert runs[run.run_id].status is ExperimentStatus.COMPLETED
    assert runs[run.run_id].final_metrics == {"total_reward": 299.0}
    assert runs[run.run_id].tags == ["scale-out"]
    assert runs[other.run_id].status is ExperimentStatus.RUNNING
    detail = remote.get_run(run.run_id)
    assert detail.metrics == ["loss", "reward"]
    assert detail.config == {"agent_type": "PPO", "gamma": 0.99}
    series = remote.get_metric_series(run.run_id, "reward")
    assert series.steps == list(range(300))
    assert series.values == [float(step) for step in range(300)]
    ppo = remote.list_runs(query="run.hparams.agent_type == 'PPO'")
    assert [r.run_id for r in ppo] == [run.run_id]
    assert remote.list_runs(query="run.final_metrics.total_reward > 100")[0].run_id == run.run_id
    with pytest.raises(ValueError, match="not allowed"):
        remote.list_runs(query="__import__('os')")

    # The dashboard reads the same server: history, the run page with its charts.
    from agentic_trading.dashboard.app import create_app

    dash = Browserless(create_app(make_settings(ml_storage_path=url)))
    rows = history_rows(dash)
    assert run.run_id in rows and other.run_id in rows
    page = dash.page(f"/runs/{run.run_id}")
    assert "total_reward" in page and "+299.0" in page and "PPO" in page

    # A trainer that dies leaves its run crashed for readers on every host.
    tracker.close()
    crashed = remote.get_run(other.run_id)
    assert crashed.status is ExperimentStatus.CRASHED
    assert "exited before finish_run" in (crashed.error or "")


def test_reading_an_unreachable_aim_server_is_one_clear_error() -> None:
    url = f"aim://127.0.0.1:{free_port()}"
    remote = get_sync_experiment_repository(make_settings(ml_storage_path=url))
    with pytest.raises(TrackingUnavailableError, match=f"through the Aim server at {url}"):
        remote.list_runs()


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
        stop_process(proc)


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


@pytest.mark.stress  # about 45 s: two 12,000-step trainings
@pytest.mark.timeout(300)
def test_aim_server_down_mid_training_loses_nothing(tmp_path: Path) -> None:
    server = AimServer(tmp_path / "server-repo").start()
    env = {
        **os.environ,
        "MESSAGE_BROKER_TYPE": "memory",
        "ML_STORAGE_PATH": server.url,
        "ML_HEARTBEAT_INTERVAL": "1",
        "ML_ARTIFACTS_URI": (tmp_path / "shared-artifacts").as_uri(),
    }
    remote = get_sync_experiment_repository(make_settings(ml_storage_path=server.url))

    def logged_points() -> int:
        runs = remote.list_runs(experiment="server-outage")
        series = remote.get_metrics(runs[0].run_id, ["loss"]) if runs else {}
        return len(series["loss"].steps) if "loss" in series else 0

    proc = start_training(env, "server-outage", 12_000)
    try:
        wait_until(lambda: logged_points() >= 2, 120, "the run's first points on the server")
        server.stop()  # the tracking server is gone for five seconds, mid-training
        time.sleep(5)
        assert proc.poll() is None, "the training died with the tracking server"
        server.start()
        out, err = proc.communicate(timeout=240)
        assert proc.returncode == 0, err
        assert "Traceback" not in err, err
    finally:
        if proc.poll() is None:
            proc.kill()
    # The same seeded training into a local folder, with no outage: what must have arrived.
    reference = start_training({**env, "ML_STORAGE_PATH": str(tmp_path / "local")}, "ref", 12_000)
    ref_out, ref_err = reference.communicate(timeout=240)
    assert reference.returncode == 0, ref_err
    try:
        run_id = json.loads(out)["run_id"]
        assert_complete(server.repo, run_id)
        expected_repo = make_settings(ml_storage_path=str(tmp_path / "local"))
        expected = get_sync_experiment_repository(expected_repo)
        expected_id = json.loads(ref_out)["run_id"]
        names = expected.get_run(expected_id).metrics
        detail = remote.get_run(run_id)
        assert detail.metrics == names
        assert detail.status is ExperimentStatus.COMPLETED
        assert detail.artifacts["model.zip"].startswith((tmp_path / "shared-artifacts").as_uri())
        # Every point the training logged, before, during and after the outage, on the server.
        got = remote.get_metrics(run_id, names)
        for name, series in expected.get_metrics(expected_id, names).items():
            assert (got[name].steps, got[name].values) == (series.steps, series.values), name
    finally:
        server.stop()


def test_training_through_aim_server_needs_a_shared_artifact_store() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "agentic_trading.cli.app", "train", "--timesteps", "100"],
        env={**os.environ, "ML_STORAGE_PATH": "aim://127.0.0.1:1", "ML_ARTIFACTS_URI": ""},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2, done.stderr
    assert "ML_ARTIFACTS_URI is not set" in done.stderr
    assert "Traceback" not in done.stderr
