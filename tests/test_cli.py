"""The command line: monitor across processes, doctor, and clean errors for bad settings."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests.conftest import delete_namespace

CLI = [sys.executable, "-m", "agentic_trading.cli.app"]


def run_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    full_env = {**os.environ, **(env or {}), "COLUMNS": "120"}
    return subprocess.run(
        [*CLI, *args], capture_output=True, text=True, env=full_env, timeout=60, check=False
    )


@pytest.mark.redis
def test_monitor_once_json_sees_a_training_in_another_process(
    redis_url: str, namespace: str, tmp_path: Path
) -> None:
    env = {"MESSAGE_BROKER_TYPE": "redis", "REDIS_URL": redis_url, "MESSAGE_NAMESPACE": namespace}
    trainer = textwrap.dedent(
        """
        from agentic_trading.messaging import SyncTrainingChannel
        channel = SyncTrainingChannel()
        channel.create_experiment("other-process", {"agent_type": "PPO"})
        for step in range(1, 2501):
            channel.publish_progress("other-process", step, 10000)
        channel.publish_metrics("other-process", 2500, {"reward": 42.0})
        channel.flush()
        print("published", flush=True)
        import time
        time.sleep(120)  # still training while the monitor looks (a dead one reads crashed)
        """
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", trainer], env={**os.environ, **env}, stdout=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "published"
        result = run_cli("monitor", "--once", "--json", env=env)
        assert result.returncode == 0, result.stderr
        [state] = json.loads(result.stdout)
        assert state["experiment_id"] == "other-process"
        assert state["status"] == "running"
        assert state["progress"] == pytest.approx(25.0)
        assert state["latest_metrics"] == {"reward": 42.0}
        assert state["config"] == {"agent_type": "PPO"}

        table = run_cli("monitor", "--once", env=env)
        assert "other-process" in table.stdout
        assert "running" in table.stdout
        proc.kill()  # the training dies without a word: its process is gone on this host
        proc.wait(10)
        [state] = json.loads(run_cli("monitor", "--once", "--json", env=env).stdout)
        assert state["status"] == "crashed" and "is gone" in state["message"]
    finally:
        proc.kill()
        proc.wait(10)
        delete_namespace(redis_url, namespace)


def test_bad_setting_is_one_line_without_traceback() -> None:
    result = run_cli("monitor", "--once", env={"MESSAGE_BROKER_TYPE": "kafka"})
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert "MESSAGE_BROKER_TYPE='kafka'" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_unreachable_redis_is_one_clear_error(tmp_path: Path) -> None:
    from tests.redis_server import free_port

    port = str(free_port())
    env = {"MESSAGE_BROKER_TYPE": "redis", "REDIS_HOST": "127.0.0.1", "REDIS_PORT": port}
    result = run_cli("monitor", "--once", "--json", env=env)
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert f"Redis at redis://127.0.0.1:{port}/0 is unreachable" in result.stderr
    doctor = run_cli("doctor", "--json", env=env)
    assert doctor.returncode == 1
    report = json.loads(doctor.stdout)
    assert report["redis"]["ok"] is False
    assert report["healthy"] is False


def test_doctor_masks_secrets(redis_url: str) -> None:
    env = {"REDIS_PASSWORD": "hunter2-secret", "MESSAGE_BROKER_TYPE": "memory"}
    result = run_cli("doctor", "--json", env=env)
    assert "hunter2-secret" not in result.stdout + result.stderr
    report = json.loads(result.stdout)
    assert report["settings"]["REDIS_PASSWORD"] == "********"
    assert report["settings"]["MESSAGE_BROKER_TYPE"] == "memory"


def test_doctor_reports_the_aim_repository_and_its_runs(tmp_path: Path) -> None:
    from agentic_trading.tracking import get_sync_tracker
    from tests.conftest import make_settings

    storage = tmp_path / "aim_logs"
    tracker = get_sync_tracker(make_settings(ml_storage_path=str(storage)))
    for status in ("completed", "failed"):
        tracker.finish_run(tracker.create_run("doctor", {}), status)
    tracker.close()
    report = json.loads(run_cli("doctor", "--json", env={"ML_STORAGE_PATH": str(storage)}).stdout)
    assert report["tracking"]["location"] == str(storage)
    assert report["tracking"]["runs"] == 2
    assert report["tracking"]["status_counts"] == {"completed": 1, "failed": 1}

    blocked = tmp_path / "file"
    blocked.write_text("")
    result = run_cli("doctor", env={"ML_STORAGE_PATH": str(blocked / "aim")})
    assert result.returncode == 1
    assert "cannot be created" in result.stdout and "Traceback" not in result.stderr


def test_monitor_json_needs_once() -> None:
    result = run_cli("monitor", "--json")
    assert result.returncode == 2
    assert "--json goes with --once" in result.stderr


def test_simulated_demo_walks_through_a_live_training() -> None:
    result = run_cli("demo", "--simulate", "--timesteps", "300", "--seconds", "1")
    assert result.returncode == 0, result.stderr
    assert "completed at step 300" in result.stdout
