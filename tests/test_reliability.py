"""Faults against the real parts, each asserting that nothing accepted is lost.

Real `agentic-trading train` processes (SB3 PPO on the bundled EUR/USD bars), a private
redis-server that the test stops and restarts, real Aim repositories, the dashboard as a process.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from agentic_trading.messaging import ExperimentStatus, TrainingChannel
from agentic_trading.tracking import get_sync_experiment_repository, get_sync_tracker
from tests.conftest import delete_namespace, make_settings
from tests.dash_requests import page_body, post
from tests.redis_server import RedisServer, free_port
from tests.trainings import (
    CLI,
    ROOT,
    assert_complete,
    cli_json,
    env_for,
    start_training,
    wait_until,
)

pytestmark = pytest.mark.redis


def live_states(env: dict[str, str]) -> list[dict[str, Any]]:
    states: list[dict[str, Any]] = cli_json(env, "monitor", "--once", "--json")
    return states


def test_redis_down_mid_training_loses_nothing(tmp_path: Path, namespace: str) -> None:
    redis = RedisServer(tmp_path / "redis").start()
    url = redis.url
    env = env_for(url, namespace, tmp_path / "aim", MESSAGE_HEARTBEAT_INTERVAL="1")
    settings = make_settings(
        message_broker_type="redis", redis_url=url, message_namespace=namespace,
        redis_connect_timeout=0.5, redis_socket_timeout=1,
    )  # fmt: skip
    seen: list[tuple[str, str]] = []

    async def follow() -> None:
        channel = TrainingChannel(settings=settings)
        async for event in channel.subscribe():
            if event.state is not None and event.type.value in ("status", "snapshot"):
                seen.append((event.state.experiment_id, event.state.status.value))
                if event.state.status.is_finished:
                    break
        await channel.close()

    loop = asyncio.new_event_loop()
    follower = threading.Thread(target=loop.run_until_complete, args=(follow(),), daemon=True)
    follower.start()
    # Long enough to outlive the outage on a quiet machine (about 2,700 steps/s here): the
    # training must still be running when Redis comes back.
    proc = start_training(env, "outage", 24_000)
    try:
        wait_until(lambda: any(s["current_step"] >= 2000 for s in live_states(env)), 90, "training")
        before = max(s["current_step"] for s in live_states(env))
        redis.stop()  # Redis gone for five seconds, mid-training
        time.sleep(5)
        assert proc.poll() is None, "the training died with Redis"
        redis.start()  # empty: it kept nothing
        # the live state is current again within seconds: running, past where it was
        wait_until(
            lambda: [s for s in live_states(env) if s["current_step"] > before],
            10,
            "live state after the outage",
        )
        out, err = proc.communicate(timeout=240)
        assert proc.returncode == 0, err
        outcome = json.loads(out)
        assert outcome["status"] == "completed"
        assert_complete(tmp_path / "aim", outcome["run_id"])
        # live state is current again: the final status reached the restarted Redis
        (state,) = live_states(env)
        assert state["status"] == "completed" and state["current_step"] == 24_000
        follower.join(30)
        statuses = [status for _, status in seen]
        assert statuses[-1] == "completed", seen
        assert statuses.index("running") < statuses.index("completed")
    finally:
        proc.kill()
        redis.stop()


def test_a_run_reaches_tracking_promptly_while_other_work_keeps_every_core_busy(
    tmp_path: Path,
) -> None:
    # Four busy processes at normal priority on this machine's cores (two trainings at once
    # would do the same). The writer process's start-up must not wait for them to finish:
    # at the lowest priority it took minutes, with the run invisible in tracking meanwhile.
    busy = [
        subprocess.Popen([sys.executable, "-c", "while True: pass"])
        for _ in range(2 * (os.cpu_count() or 1))
    ]
    settings = make_settings(ml_storage_path=str(tmp_path / "aim"))
    tracker = get_sync_tracker(settings)
    try:
        run = tracker.create_run("busy-machine", {})
        tracker.log_metrics(run, {"reward": 1.0}, step=1)
        repo = get_sync_experiment_repository(settings)
        wait_until(lambda: repo.list_runs(experiment="busy-machine"), 30, "the run in tracking")
    finally:
        for process in busy:
            process.kill()
            process.wait()
    tracker.finish_run(run)
    tracker.close()
    assert repo.get_metric_series(run.run_id, "reward").values == [1.0]


def test_killed_training_reads_crashed_in_both_systems(
    tmp_path: Path, redis_url: str, namespace: str
) -> None:
    fast = {
        "MESSAGE_HEARTBEAT_INTERVAL": "1",
        "MESSAGE_HEARTBEAT_TIMEOUT": "3",
        "ML_HEARTBEAT_INTERVAL": "1",
        "ML_HEARTBEAT_TIMEOUT": "3",
    }
    env = env_for(redis_url, namespace, tmp_path / "aim", **fast)
    proc = start_training(env, "killed", 500_000)
    try:
        wait_until(lambda: any(s["current_step"] >= 2000 for s in live_states(env)), 90, "training")
        time.sleep(1.5)  # a tracked point or two (log_every 1000) have been flushed
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        killed = time.monotonic()
        wait_until(
            lambda: [s["status"] for s in live_states(env)] == ["crashed"], 3 + 5, "crashed live"
        )
        runs = wait_until(
            lambda: [
                r
                for r in cli_json(env, "experiments", "list", "--json")
                if r["status"] == "crashed"
            ],
            3 + 5,
            "crashed in tracking",
        )
        assert time.monotonic() - killed < 3 + 5 + 5
        repository = get_sync_experiment_repository(
            make_settings(ml_storage_path=str(tmp_path / "aim"))
        )
        run_id = runs[0]["run_id"]
        # The writer process outlives its trainer long enough to close the run: what the
        # trainer logged (reward every 1,000 steps, log_every) lands, and nothing in between
        # is missing.
        reward = wait_until(
            lambda: repository.get_metrics(run_id, ["reward"]).get("reward"), 15, "the points"
        )
        assert reward.steps == list(range(1000, reward.steps[-1] + 1, 1000))
        assert reward.steps[-1] >= 2000
        assert repository.get_run(run_id).status is ExperimentStatus.CRASHED
    finally:
        proc.kill()
        delete_namespace(redis_url, namespace)


def test_dashboard_restart_shows_the_current_live_state(
    tmp_path: Path, redis_url: str, namespace: str
) -> None:
    env = env_for(redis_url, namespace, tmp_path / "aim")
    port = free_port()
    training = start_training(env, "watched", 500_000)

    def dashboard() -> subprocess.Popen[bytes]:
        return subprocess.Popen(
            [*CLI, "dashboard", "--port", str(port)],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            cwd=ROOT,
        )

    def live_page() -> str | None:
        try:
            return post(f"http://127.0.0.1:{port}", page_body("/"), timeout=10)
        except OSError:
            return None

    def running_step() -> int | None:
        """The step of the running training as the dashboard's live page shows it, if any."""
        raw = live_page()
        if raw is None:
            return None
        page = json.dumps(json.loads(raw))
        steps = re.findall(r'"([0-9,]+)/[0-9,]+"', page)
        if '"running"' not in page or not steps:
            return None
        return max(int(step.replace(",", "")) for step in steps) or None

    first = dashboard()
    try:
        wait_until(lambda: live_states(env), 90, "training")
        before = wait_until(running_step, 60, "the dashboard to show the training")
        first.send_signal(signal.SIGKILL)
        first.wait(10)
        time.sleep(2)  # the training goes on while no dashboard runs
        second = dashboard()
        try:
            after = wait_until(running_step, 60, "the restarted dashboard")
            assert after > before  # the new dashboard shows where the training is now
        finally:
            second.kill()
    finally:
        first.kill()
        training.kill()
        delete_namespace(redis_url, namespace)


@pytest.mark.stress  # make stress runs it with eight trainings (RELIABILITY_TRAININGS=8)
@pytest.mark.timeout(900)  # eight trainings on two cores take minutes
def test_concurrent_trainings_share_one_repository_and_one_redis(
    tmp_path: Path, redis_url: str, namespace: str
) -> None:
    count = int(os.environ.get("RELIABILITY_TRAININGS", "2"))
    env = env_for(redis_url, namespace, tmp_path / "aim")
    procs = [start_training(env, f"crowd-{i}", 1024, seed=i) for i in range(count)]
    try:
        outcomes = []
        for proc in procs:
            out, err = proc.communicate(timeout=600)
            assert proc.returncode == 0, err
            assert "Traceback" not in err, err
            outcomes.append(json.loads(out))
        for outcome in outcomes:
            assert_complete(tmp_path / "aim", outcome["run_id"])
        listed = cli_json(env, "experiments", "list", "--json")
        assert sorted(r["run_id"] for r in listed) == sorted(o["run_id"] for o in outcomes)
        states = live_states(env)
        assert sorted(s["status"] for s in states) == ["completed"] * count
    finally:
        for proc in procs:
            proc.kill()
        delete_namespace(redis_url, namespace)
