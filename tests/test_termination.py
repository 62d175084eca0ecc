"""A training always ends with a true record and never hangs: signals, a full disk, a stuck
writer, Redis refusing writes."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from agentic_trading.common import signals
from agentic_trading.messaging.channels.sync import SyncTrainingChannel
from agentic_trading.status import ExperimentStatus
from agentic_trading.tracking import TrackingError, get_sync_experiment_repository
from tests.conftest import delete_namespace, make_settings
from tests.redis_server import RedisServer
from tests.trainings import CLI, ROOT, wait_until

# --- signals ------------------------------------------------------------------------------------


def test_watching_chains_and_restores_the_handlers_found() -> None:
    seen: list[int] = []

    def mine(signum: int, frame: Any) -> None:
        seen.append(signum)

    before = signal.signal(signal.SIGHUP, mine)
    try:
        stops: list[str] = []
        token = signals.watch(stops.append)
        assert signal.getsignal(signal.SIGHUP) is not mine  # ours while a training runs
        os.kill(os.getpid(), signal.SIGHUP)
        wait_until(lambda: stops, 5, "the stop")
        assert stops == ["terminated by SIGHUP"] and seen == [signal.SIGHUP]  # both ran
        assert signals.received() == signal.SIGHUP
        signals.unwatch(token)  # a signal came: the process is leaving, ours stay for a 2nd
        assert signal.getsignal(signal.SIGHUP) is not mine
        signals.reset()
        assert signal.getsignal(signal.SIGHUP) is mine  # put back
        token = signals.watch(stops.append)
        signals.unwatch(token)  # no signal this time
        assert signal.getsignal(signal.SIGHUP) is mine
    finally:
        signals.reset()
        signal.signal(signal.SIGHUP, before)


@pytest.fixture
def live(redis_url: str, namespace: str, tmp_path: Path) -> Iterator[tuple[dict[str, str], Any]]:
    """Environment of a training on Redis, and a channel that watches its namespace."""
    env = {
        **os.environ,
        "MESSAGE_BROKER_TYPE": "redis",
        "REDIS_URL": redis_url,
        "MESSAGE_NAMESPACE": namespace,
        "ML_STORAGE_PATH": str(tmp_path / "aim"),
        "MESSAGE_PROGRESS_INTERVAL": "0.05",
    }
    watcher = SyncTrainingChannel(
        namespace, settings=make_settings(message_broker_type="redis", redis_url=redis_url)
    )
    yield env, watcher
    watcher.close()
    delete_namespace(redis_url, namespace)


def running_experiment(watcher: SyncTrainingChannel) -> Any:
    return wait_until(
        lambda: next(
            (s for s in watcher.list_experiments("running") if s.current_step > 200), None
        ),
        90,
        "the training to run",
    )


@pytest.mark.redis
def test_sigterm_cancels_a_cli_training_in_both_systems(
    live: tuple[dict[str, str], Any], tmp_path: Path
) -> None:
    env, watcher = live
    proc = subprocess.Popen(
        [*CLI, "train", "--timesteps", "500000", "--experiment", "terminated", "--json"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT,
    )  # fmt: skip
    repo = get_sync_experiment_repository(make_settings(ml_storage_path=env["ML_STORAGE_PATH"]))
    try:
        state = running_experiment(watcher)
        # The writer process creates the Aim run at its own pace: signal a training both
        # systems know, so that the time measured is the cancellation's alone.
        wait_until(lambda: repo.list_runs(experiment="terminated"), 30, "the run in tracking")
        sent, sent_at = time.monotonic(), time.time()
        proc.send_signal(signal.SIGTERM)

        def both_cancelled() -> bool:
            live_state = watcher.get_experiment(state.experiment_id)
            runs = repo.list_runs(experiment="terminated")
            return (
                live_state is not None
                and live_state.status is ExperimentStatus.CANCELLED
                and bool(runs)
                and runs[0].status is ExperimentStatus.CANCELLED
            )

        wait_until(both_cancelled, 10, "cancelled in messaging and tracking")
        took = time.monotonic() - sent
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 143, err  # 128 + SIGTERM
    assert json.loads(out)["status"] == "cancelled"
    final = watcher.get_experiment(state.experiment_id)
    assert final is not None and final.message == "Training cancelled: terminated by SIGTERM"
    (run,) = repo.list_runs(experiment="terminated")
    assert final.finished_at is not None and run.ended_at is not None
    # When each system had it, by the training's own clock (this test's polling is not counted).
    phases = (
        f"messaging after {final.finished_at - sent_at:.2f} s, "
        f"tracking after {run.ended_at.timestamp() - sent_at:.2f} s, seen after {took:.2f} s"
    )
    # About 0.5 s on an idle machine, 0.4-2.7 s beside four busy processes; what matters is
    # well inside the 10 s that docker stop waits before it kills.
    assert took < 10.0, f"cancelled: {phases}\n{err}"
    assert run.error == "terminated by SIGTERM"
    assert "Traceback" not in err


USER_SCRIPT = """
import signal, sys
from stable_baselines3 import PPO
from agentic_trading.training import ExperimentCallback, load_prices, split_prices
from agentic_trading.training.env import make_env

def mine(signum, frame):
    print("the user's handler ran", flush=True)

signal.signal(signal.SIGTERM, mine)
{more}
split = split_prices(load_prices(), 10)
model = PPO("MlpPolicy", make_env(split.training), n_steps=128, seed=1)
callback = ExperimentCallback("plain-script", {})
print(callback.experiment_id, flush=True)
model.learn(10_000_000, callback=callback)
print("learn returned", flush=True)
"""


def start_script(tmp_path: Path, env: dict[str, str], more: str = "") -> subprocess.Popen[str]:
    """A user's SB3 script with an ExperimentCallback; ``more`` runs before it trains."""
    script = tmp_path / "script.py"
    script.write_text(textwrap.dedent(USER_SCRIPT).replace("{more}", more))
    return subprocess.Popen(
        [sys.executable, str(script)],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT,
    )  # fmt: skip


@pytest.mark.redis
def test_a_plain_sb3_script_is_cancelled_and_the_users_handler_still_runs(
    live: tuple[dict[str, str], Any], tmp_path: Path
) -> None:
    env, watcher = live
    proc = start_script(tmp_path, env)
    try:
        state = running_experiment(watcher)
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 143, err
    assert "the user's handler ran" in out and "learn returned" not in out
    final = watcher.get_experiment(state.experiment_id)
    assert final is not None and final.status is ExperimentStatus.CANCELLED
    repo = get_sync_experiment_repository(make_settings(ml_storage_path=env["ML_STORAGE_PATH"]))
    (run,) = repo.list_runs(experiment="plain-script")
    assert run.status is ExperimentStatus.CANCELLED and run.error == "terminated by SIGTERM"


@pytest.mark.redis
def test_sighup_twice_exits_at_once(live: tuple[dict[str, str], Any], tmp_path: Path) -> None:
    env, watcher = live
    # The user's own SIGHUP handler (called after ours) hangs: the stop never ends by itself.
    hangs = "import time\nsignal.signal(signal.SIGHUP, lambda *_: time.sleep(120))"
    proc = start_script(tmp_path, env, hangs)
    try:
        running_experiment(watcher)
        lines: list[str] = []
        reader = threading.Thread(
            target=lambda: lines.extend(iter(proc.stderr.readline, "")),  # type: ignore[union-attr]
            daemon=True,
        )
        reader.start()
        proc.send_signal(signal.SIGHUP)
        # Two pending signals of one kind are delivered as one: wait until the first is handled.
        wait_until(lambda: any("SIGHUP received" in line for line in lines), 10, "the first")
        proc.send_signal(signal.SIGHUP)
        sent = time.monotonic()
        proc.wait(30)
        took = time.monotonic() - sent
        reader.join(5)
        err = "".join(lines)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 129, err  # 128 + SIGHUP
    assert took < 10 and "SIGHUP again: exiting at once" in err


# --- a full disk --------------------------------------------------------------------------------


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A tmpfs of 3 MB, mounted by the test (skipped where mounting is not allowed)."""
    folder = tmp_path / "small"
    folder.mkdir()
    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("mounting a tmpfs needs root")
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=3m", "tmpfs", str(folder)],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.strip()}")
    try:
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], check=False)


def test_a_full_disk_ends_with_results_and_an_incomplete_record(small_disk: Path) -> None:
    env = {**os.environ, "ML_STORAGE_PATH": str(small_disk / "aim"), "COLUMNS": "200"}
    started = time.monotonic()
    done = subprocess.run(
        [*CLI, "train", "--timesteps", "1000", "--n-steps", "256"],
        env=env, capture_output=True, text=True, timeout=300, check=False, cwd=ROOT,
    )  # fmt: skip
    took = time.monotonic() - started
    assert done.returncode == 3, done.stderr  # completed, record incomplete
    assert "buy & hold" in done.stdout and "verdict:" in done.stdout  # the results stand
    assert "the tracking record of run" in done.stderr and "is incomplete" in done.stderr
    assert "no space left on the device" in done.stderr
    assert "Traceback" not in done.stderr
    assert took < 120, f"took {took:.0f} s"  # no hang: a normal training's time
    # The repository still reads; when space returns, a new training works beside the old run.
    settings = make_settings(ml_storage_path=str(small_disk / "aim"))
    (old,) = get_sync_experiment_repository(settings).list_runs()
    assert old.status is not ExperimentStatus.COMPLETED
    subprocess.run(["mount", "-o", "remount,size=64m", str(small_disk)], check=True)
    again = subprocess.run(
        [*CLI, "train", "--timesteps", "512", "--n-steps", "128", "--json"],
        env=env, capture_output=True, text=True, timeout=300, check=False, cwd=ROOT,
    )  # fmt: skip
    assert again.returncode == 0, again.stderr
    runs = {r.run_id: r for r in get_sync_experiment_repository(settings).list_runs()}
    assert runs[json.loads(again.stdout)["run_id"]].status is ExperimentStatus.COMPLETED
    assert old.run_id in runs


def test_a_stuck_writer_is_found_and_nobody_waits_on_it(tmp_path: Path) -> None:
    """A store that hangs inside a write (as Aim's RocksDB does on some full disks)."""
    from agentic_trading.tracking.backends import create_run_store
    from agentic_trading.tracking.tracker import SyncTracker
    from agentic_trading.tracking.writer import BackgroundWriter

    settings = make_settings(
        ml_storage_path=str(tmp_path / "aim"), ml_writer="thread", ml_writer_timeout=1.0
    )
    from agentic_trading.tracking.backends.aim._storage import ensure_repository

    (tmp_path / "aim").mkdir()
    ensure_repository(str(tmp_path / "aim"))  # set up before: it takes longer than the timeout
    store = create_run_store(settings)
    hang = threading.Event()
    real_track = store.track

    def track(run_id: str, points: Any) -> None:
        if hang.is_set():
            threading.Event().wait()  # never returns
        real_track(run_id, points)

    store.track = track  # type: ignore[method-assign]
    writer = BackgroundWriter(store, settings)
    tracker = SyncTracker(writer, settings)
    run = tracker.create_run("stuck", {"a": 1})
    tracker.log_metrics(run, {"loss": 1.0}, step=0)
    tracker.flush()
    hang.set()
    tracker.log_metrics(run, {"loss": 0.5}, step=1)
    started = time.monotonic()
    with pytest.raises(TrackingError, match="it is stuck"):
        tracker.finish_run(run, "completed", {"x": 1.0})
    assert time.monotonic() - started < 5
    assert writer.failure is not None and "stuck" in writer.failure
    with pytest.raises(TrackingError, match="it is stuck"):  # told, not waited on
        tracker.create_run("next", {})
    writer.close(1.0)  # bounded too: it logs what it could not write and returns


# --- Redis refusing writes ----------------------------------------------------------------------


def fill(client: redis.Redis) -> list[str]:
    """Write until Redis (maxmemory, noeviction) refuses even a small write; the keys made."""
    keys: list[str] = []
    for size in (100_000, 2_000, 100):
        while True:
            key = f"filler-{uuid.uuid4().hex}"
            try:
                client.set(key, "x" * size)
            except redis.exceptions.OutOfMemoryError:
                break
            keys.append(key)
    return keys


def test_redis_out_of_memory_is_an_outage_and_nothing_is_lost(tmp_path: Path) -> None:
    server = RedisServer(
        tmp_path / "redis", "--maxmemory", "2mb", "--maxmemory-policy", "noeviction"
    ).start()
    settings = make_settings(
        message_broker_type="redis", redis_url=server.url, message_namespace="full"
    )
    env = {
        **os.environ,
        "MESSAGE_BROKER_TYPE": "redis",
        "REDIS_URL": server.url,
        "MESSAGE_NAMESPACE": "full",
        "ML_STORAGE_PATH": str(tmp_path / "aim"),
    }
    client = server.client()
    watcher = SyncTrainingChannel(settings=settings)
    proc = subprocess.Popen(
        [*CLI, "train", "--timesteps", "12000", "--n-steps", "256", "--json"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT,
    )  # fmt: skip
    err_lines: list[str] = []
    assert proc.stderr is not None
    reader = threading.Thread(target=lambda: err_lines.extend(proc.stderr), daemon=True)
    reader.start()
    refused = "refuses writes: it is out of memory"
    try:
        state = running_experiment(watcher)
        keys = fill(client)  # Redis refuses every write from now on...
        # ...even after a key expires or a stream is trimmed meanwhile (that freed room once).
        client.config_set("maxmemory", 1)
        channel = SyncTrainingChannel(settings=settings)
        channel.create_experiment("during-the-fill", {})
        channel.publish_status("during-the-fill", "running", "published while Redis was full")
        channel.flush()
        # Memory stays full until the training has met the refusal (it says so on stderr).
        wait_until(lambda: any(refused in line for line in err_lines), 30, "the refusal")
        assert client.exists("at:{full}:exp:during-the-fill") == 0  # refused, not lost:
        client.config_set("maxmemory", "2mb")
        client.delete(*keys)  # memory is freed...
        wait_until(
            lambda: (
                (s := watcher.get_experiment("during-the-fill")) is not None
                and s.status is ExperimentStatus.RUNNING
            ),
            20,
            "the status change published during the fill",
        )  # ...and the change arrives
        proc.wait(timeout=180)
        reader.join(10)
        err = "".join(err_lines)
        assert proc.returncode == 0, err  # the training completed
        assert "Traceback" not in err and refused in err
        final = watcher.get_experiment(state.experiment_id)
        assert final is not None and final.status is ExperimentStatus.COMPLETED
        channel.close()
    finally:
        if proc.poll() is None:
            proc.kill()
        watcher.close()
        server.stop()
