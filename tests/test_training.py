"""Training: real Stable-Baselines3 on the EUR/USD bars gym-anytrading ships, live and tracked."""

from __future__ import annotations

import hashlib
import itertools
import json
import os
import re
import signal
import subprocess
import sys
import textwrap
import time
import uuid
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from agentic_trading import ExperimentStatus
from agentic_trading.config import Settings
from agentic_trading.messaging.channels.sync import SyncTrainingChannel
from agentic_trading.tracking import get_sync_experiment_repository, get_sync_tracker
from agentic_trading.training import (
    DataError,
    ExperimentCallback,
    TrainingConfig,
    load_prices,
    split_prices,
    train,
)
from agentic_trading.training.data import data_file, walk_forward
from agentic_trading.training.env import make_env
from agentic_trading.training.rerun import compare_environments
from tests.conftest import delete_namespace, make_settings

ROOT = Path(__file__).resolve().parents[1]
CLI = [sys.executable, "-m", "agentic_trading.cli.app"]


@pytest.fixture(scope="module")
def aim_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("aim")


@pytest.fixture
def settings(aim_path: Path, namespace: str) -> Settings:
    return make_settings(ml_storage_path=str(aim_path), message_namespace=namespace)


def cli(*args: str, env: dict[str, str], timeout: float = 180) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*CLI, *args],
        capture_output=True,
        text=True,
        env={**os.environ, "COLUMNS": "120", **env},
        timeout=timeout,
        check=False,
    )


# --- data ----------------------------------------------------------------------------------------


def traded(window: Any) -> Any:
    """The bars whose returns a window trades (its history left out)."""
    return window.frame.index[window.start + 1 :]


def test_bundled_eurusd_is_split_in_time_order_without_look_ahead() -> None:
    frame = load_prices("EUR_USD")
    assert list(frame.columns) == ["Open", "High", "Low", "Close"]
    assert len(frame) > 6000 and frame.index.is_monotonic_increasing
    split = split_prices(frame, window_size=10)
    training, validation, test = (traded(w) for w in (split.training, split.validation, split.test))
    assert training[-1] < validation[0] and validation[-1] < test[0]
    assert len(test) == round(0.2 * len(frame)) and test[-1] == frame.index[-1]
    # Every bar's return is traded by one window at most; only the first bars are history.
    assert len(training) + len(validation) + len(test) == len(frame) - 11
    # The test window's history is the last validation bars: context, never traded twice.
    assert split.test.frame.index[10] == validation[-1]


def test_walk_forward_folds_are_anchored_expanding_windows() -> None:
    frame = load_prices("EUR_USD")
    folds = walk_forward(frame, window_size=10, folds=5)
    assert [s.fold for s in folds] == list(range(5))
    blocks = [traded(s.test) for s in folds]
    assert sum(len(b) for b in blocks) == round(0.5 * len(frame))  # the last half, tested once
    for before, after in itertools.pairwise(blocks):
        assert before[-1] < after[0] and len(after) - len(before) in (-1, 0, 1)
    for split, block in zip(folds, blocks, strict=True):
        assert split.training.frame.index[0] == frame.index[0]  # anchored at the first bar
        assert traded(split.validation)[-1] < block[0]  # everything before its test block
        assert traded(split.validation)[0] > traded(split.training)[-1]
    assert len(traded(folds[4].training)) > len(traded(folds[0].training))  # expanding
    assert walk_forward(frame, 10, 1)[0].test.frame.equals(split_prices(frame, 10).test.frame)
    with pytest.raises(DataError, match="folds must be a whole number from 1 to 50"):
        walk_forward(frame, 10, 0)
    with pytest.raises(DataError, match="too few for a window of 10 with 50 fold"):
        walk_forward(frame.iloc[:600], 10, 50)


CSV_HEADER = "datetime,open,high,low,close\n"


def bars(n: int, start: int = 0) -> str:
    """``n`` hourly CSV rows from hour ``start`` of 2024-01-01."""
    rows = []
    for h in range(start, start + n):
        rows.append(
            f"2024-01-{1 + h // 24:02d} {h % 24:02d}:00:00,1.1,1.2,1.0,{1.1 + 0.001 * h:.4f}\n"
        )
    return "".join(rows)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("datetime,open,high,low\n2024-01-01,1,1,1\n", "missing column(s) Close"),
        ("when,open,high,low,close\n2024-01-01,1,1,1,1\n", "no date/time column"),
        (CSV_HEADER + bars(30, 5) + bars(5), "not in increasing order"),
        (CSV_HEADER + bars(30) + bars(1, 29), "duplicate timestamp"),
        (CSV_HEADER + "yesterday,1,1,1,1\n", "not dates"),
        (CSV_HEADER + bars(20).replace(",1.1,", ",-1.1,", 1), "non-positive prices"),
        (CSV_HEADER + bars(15), "too few for a window of 10"),
    ],
)
def test_malformed_csv_is_one_clear_error(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "bars.csv"
    path.write_text(content)
    with pytest.raises(DataError, match=re.escape(message)):
        split_prices(load_prices(path=path), window_size=10)
    result = cli("train", "--data", str(path), "--timesteps", "100", env={})
    assert result.returncode == 2
    assert message.split("(")[0] in result.stderr and "Traceback" not in result.stderr


def test_own_csv_trains(tmp_path: Path, settings: Settings) -> None:
    rng = np.random.default_rng(0)
    close = 1.1 * np.exp(np.cumsum(rng.normal(0, 0.001, 400)))
    start = np.datetime64("2024-01-01T00")
    lines = [f"{start + np.timedelta64(i, 'h')},{c},{c},{c},{c}" for i, c in enumerate(close)]
    path = tmp_path / "mine.csv"
    path.write_text("timestamp,Open,High,Low,Close\n" + "\n".join(lines) + "\n")
    config = TrainingConfig(data=str(path), timesteps=256, n_steps=64, window_size=5)
    outcome = train(config, "own-csv", settings=settings)
    assert outcome.status is ExperimentStatus.COMPLETED
    assert outcome.data["test_bars"] == 80


# --- the callback in a plain SB3 script ----------------------------------------------------------


def small_ppo(window: int = 10) -> Any:
    from stable_baselines3 import PPO

    split = split_prices(load_prices(), window)
    return PPO("MlpPolicy", make_env(split.training, window), n_steps=128, batch_size=64, seed=3)


def test_callback_reports_live_and_tracks_a_plain_sb3_training(settings: Settings) -> None:
    model = small_ppo()
    callback = ExperimentCallback(
        "plain-sb3", {"note": "plain"}, progress_every=100, log_every=256, settings=settings
    )
    model.learn(1024, callback=callback)

    state = SyncTrainingChannel(settings=settings).get_experiment(callback.experiment_id)
    assert state is not None and state.status is ExperimentStatus.COMPLETED
    assert state.progress == 100.0 and state.current_step == 1024
    assert state.config["agent_type"] == "PPO" and state.config["note"] == "plain"
    assert "reward" in state.latest_metrics

    repo = get_sync_experiment_repository(settings)
    assert callback.run is not None
    run = repo.get_run(callback.run.run_id)
    assert run.status is ExperimentStatus.COMPLETED
    assert run.final_metrics["total_timesteps"] == 1024
    assert run.config["experiment_id"] == callback.experiment_id
    assert repo.get_metric_series(run.run_id, "reward").steps == [256, 512, 768, 1024]
    for name in ("loss", "value_loss", "policy_loss", "entropy", "learning_rate"):
        assert name in run.metrics, name
    assert repo.get_metric_series(run.run_id, "learning_rate").values[-1] == pytest.approx(3e-4)


def _steps() -> Any:
    """A callback that keeps what SB3 handed the callbacks, step by step: (reward, done)."""
    from stable_baselines3.common.callbacks import BaseCallback

    class Steps(BaseCallback):
        def __init__(self) -> None:
            super().__init__()
            self.seen: list[tuple[float, bool]] = []

        def _on_step(self) -> bool:
            self.seen.append((float(self.locals["rewards"][0]), bool(self.locals["dones"][0])))
            return True

    return Steps()


def test_logging_every_step_records_every_change_and_shows_the_last_live(
    settings: Settings,
) -> None:
    from stable_baselines3.common.callbacks import CallbackList

    callback = ExperimentCallback(
        "every-step", {}, progress_every=1, log_every=1, settings=settings
    )
    rewards = _steps()
    small_ppo().learn(640, callback=CallbackList([callback, rewards]))

    assert not any(done for _, done in rewards.seen)  # one episode: reward is its running sum
    expected_steps, expected_values, total = [], [], 0.0
    for step, (reward, _) in enumerate(rewards.seen, start=1):
        total += reward
        if not expected_values or total != expected_values[-1]:  # tracked when it changes
            expected_steps.append(step)
            expected_values.append(total)
    assert callback.run is not None
    series = get_sync_experiment_repository(settings).get_metric_series(
        callback.run.run_id, "reward"
    )
    assert len(expected_steps) > 20  # enough trades to show points are batched, none lost
    assert series.steps == expected_steps
    assert series.values == pytest.approx(expected_values)
    state = SyncTrainingChannel(settings=settings).get_experiment(callback.experiment_id)
    assert state is not None and state.status is ExperimentStatus.COMPLETED
    assert state.current_step == 640 and state.progress == 100.0
    assert state.latest_metrics["reward"] == pytest.approx(expected_values[-1])


@pytest.mark.parametrize("episodes_kept_by", ["Monitor", "VecMonitor", "nothing"])
def test_reward_is_the_newest_finished_episode_wherever_episodes_are_kept(
    settings: Settings, episodes_kept_by: str
) -> None:
    # The callback reads episodes from SB3's Monitor (which SB3 wraps a plain env in) or a
    # VecMonitor; with neither it counts the rewards SB3 hands the callbacks itself. Either
    # way a log shows the newest finished episode (return and length), or the first episode's
    # return so far.
    from stable_baselines3 import PPO
    from stable_baselines3.common.callbacks import CallbackList
    from stable_baselines3.common.vec_env import DummyVecEnv, VecMonitor

    bars = load_prices().iloc[:40]  # episodes of 30 steps
    env: Any = make_env(bars, 10)
    if episodes_kept_by == "VecMonitor":
        env = VecMonitor(DummyVecEnv([lambda: make_env(bars, 10)]))
    elif episodes_kept_by == "nothing":
        env = DummyVecEnv([lambda: make_env(bars, 10)])
    callback = ExperimentCallback("episodes", {}, log_every=8, settings=settings)
    steps = _steps()
    PPO("MlpPolicy", env, n_steps=64, batch_size=32, seed=3).learn(
        128, callback=CallbackList([callback, steps])
    )

    expected: dict[str, list[tuple[int, float]]] = {"reward": [], "episode_length": []}
    running, length, finished = 0.0, 0, None
    for step, (reward, done) in enumerate(steps.seen, start=1):
        running, length = running + reward, length + 1
        if done:
            finished, running, length = (running, float(length)), 0.0, 0
        if step % 8:
            continue
        now = (
            {"reward": running}
            if finished is None
            else dict(zip(("reward", "episode_length"), finished, strict=True))
        )
        for name, value in now.items():  # tracked when it changes
            if not expected[name] or expected[name][-1][1] != pytest.approx(value):
                expected[name].append((step, value))
    assert sum(done for _, done in steps.seen) >= 3
    assert callback.run is not None
    repo = get_sync_experiment_repository(settings)
    for name, points in expected.items():
        series = repo.get_metric_series(callback.run.run_id, name)
        assert series.steps == [step for step, _ in points], name
        assert series.values == pytest.approx([value for _, value in points], rel=1e-5), name


def test_a_repository_set_up_while_the_training_runs_has_every_point(tmp_path: Path) -> None:
    settings = make_settings(ml_storage_path=str(tmp_path / "new"))
    assert not (tmp_path / "new").exists()  # the writer sets it up; the training does not wait
    callback = ExperimentCallback("fresh", {}, log_every=128, settings=settings)
    small_ppo().learn(1024, callback=callback)
    assert callback.run is not None
    repo = get_sync_experiment_repository(settings)
    assert repo.get_run(callback.run.run_id).status is ExperimentStatus.COMPLETED
    steps = repo.get_metric_series(callback.run.run_id, "reward").steps
    assert steps == list(range(128, 1025, 128))  # not one point lost while it was set up


def test_a_store_that_cannot_record_is_told_once_and_the_training_goes_on(
    tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    broken = tmp_path / "broken" / ".aim"
    broken.mkdir(parents=True)
    (broken / "VERSION").write_text("9.9\n")  # a repository this Aim cannot open
    settings = make_settings(ml_storage_path=str(tmp_path / "broken"))  # the writer process
    callback = ExperimentCallback("unrecorded", {}, log_every=256, settings=settings)
    small_ppo().learn(1024, callback=callback)  # found in the background: it trains on
    state = SyncTrainingChannel(settings=settings).get_experiment(callback.experiment_id)
    assert state is not None and state.status is ExperimentStatus.COMPLETED
    (problem,) = callback.record_errors  # finish_run's report of what was not recorded
    assert "the final record was not written" in problem and "could not be created" in problem
    told = [line for line in capfd.readouterr().err.splitlines() if "could not be created" in line]
    assert len([line for line in told if line.startswith("run ")]) == 1  # the writer, once
    assert all(len(line) < 600 for line in told)  # one line each, not a SQL dump


def test_a_tracker_closed_under_a_training_loses_its_record_not_the_training(
    tmp_path: Path,
) -> None:
    from stable_baselines3.common.callbacks import BaseCallback, CallbackList

    settings = make_settings(ml_storage_path=str(tmp_path / "aim"))
    tracker = get_sync_tracker(settings)

    class CloseTracker(BaseCallback):  # another part of the program closes the tracker
        def _on_step(self) -> bool:
            if self.num_timesteps == 300:
                tracker.close()
            return True

    callback = ExperimentCallback(
        "closed", {}, progress_every=1, log_every=1, settings=settings, tracker=tracker
    )
    small_ppo().learn(512, callback=CallbackList([callback, CloseTracker()]))
    assert callback.num_timesteps == 512  # it trained to the end
    state = SyncTrainingChannel(settings=settings).get_experiment(callback.experiment_id)
    assert state is not None and state.status is ExperimentStatus.COMPLETED
    assert callback.record_errors[0].startswith("metrics were not recorded: the tracker is closed")
    assert any("final record was not written" in error for error in callback.record_errors)


class FailingFeed:
    """A wrapper whose data feed breaks at a given step."""

    def __new__(cls, env: Any, at: int) -> Any:
        import gymnasium as gym

        class Wrapper(gym.Wrapper):  # type: ignore[misc]
            count = 0

            def step(self, action: Any) -> Any:
                self.count += 1
                if self.count == at:
                    raise RuntimeError("market data feed lost")
                return self.env.step(action)

        return Wrapper(env)


def test_exception_inside_training_records_failed_in_both_systems(settings: Settings) -> None:
    from stable_baselines3 import PPO

    split = split_prices(load_prices(), 10)
    model = PPO("MlpPolicy", FailingFeed(make_env(split.training, 10), 300), n_steps=128, seed=1)
    callback = ExperimentCallback("failing", {}, settings=settings)
    with pytest.raises(RuntimeError, match="market data feed lost"), callback:
        model.learn(2000, callback=callback)
    state = SyncTrainingChannel(settings=settings).get_experiment(callback.experiment_id)
    assert state is not None and state.status is ExperimentStatus.FAILED
    assert state.message is not None and "market data feed lost" in state.message
    assert callback.run is not None
    run = get_sync_experiment_repository(settings).get_run(callback.run.run_id)
    assert run.status is ExperimentStatus.FAILED
    assert run.error == "RuntimeError: market data feed lost"


def test_uncaught_exception_in_a_script_records_failed(settings: Settings, tmp_path: Path) -> None:
    script = tmp_path / "script.py"
    script.write_text(
        textwrap.dedent(
            """
            from stable_baselines3 import PPO
            from agentic_trading.training import ExperimentCallback, load_prices, split_prices
            from agentic_trading.training.env import make_env

            class Boom(ExperimentCallback):
                def _on_step(self):
                    if self.num_timesteps == 200:
                        raise ValueError("bad tick at 200")
                    return super()._on_step()

            split = split_prices(load_prices(), 10)
            model = PPO("MlpPolicy", make_env(split.training, 10), n_steps=128)
            callback = Boom("script-crash", {})
            print(callback.experiment_id, flush=True)
            model.learn(2000, callback=callback)
            """
        )
    )
    done = subprocess.run(
        [sys.executable, str(script)],
        capture_output=True,
        text=True,
        env={**os.environ, "ML_STORAGE_PATH": settings.ml_storage_path},
        timeout=120,
        check=False,
    )
    assert done.returncode == 1 and "bad tick at 200" in done.stderr
    runs = get_sync_experiment_repository(settings).list_runs(experiment="script-crash")
    assert len(runs) == 1
    assert runs[0].status is ExperimentStatus.FAILED
    assert runs[0].error == "ValueError: bad tick at 200"


def test_same_seed_repeats_the_run(settings: Settings) -> None:
    config = TrainingConfig(timesteps=512, n_steps=128, seed=7)
    first = train(config, "seeded", settings=settings)
    second = train(config, "seeded", settings=settings)
    assert first.agent == second.agent
    assert first.run_id != second.run_id


# --- the CLI -------------------------------------------------------------------------------------


def test_cli_train_then_experiments_commands(settings: Settings, tmp_path: Path) -> None:
    env = {"ML_STORAGE_PATH": settings.ml_storage_path}
    name = f"cli-{uuid.uuid4().hex[:6]}"
    ids = []
    for lr in ("0.0003", "0.001"):
        result = cli(
            "train", "--timesteps", "1024", "--n-steps", "128", "--learning-rate", lr,
            "--experiment", name, "--json", env=env,
        )  # fmt: skip
        assert result.returncode == 0, result.stderr
        outcome = json.loads(result.stdout)
        assert outcome["status"] == "completed"
        assert set(outcome["agent"]) == set(outcome["buy_and_hold"]) >= {
            "total_reward", "total_profit", "win_rate", "sharpe_ratio", "sortino_ratio",
            "calmar_ratio", "max_drawdown", "n_trades", "turnover", "exposure",
        }  # fmt: skip
        assert outcome["verdict"]["label"] in ("skill", "luck", "trails")
        assert "buy-and-hold" in outcome["verdict"]["summary"]
        ids.append(outcome["run_id"])

    listing = cli("experiments", "list", "--experiment", name, "--json", env=env)
    assert listing.returncode == 0, listing.stderr
    listed = json.loads(listing.stdout)
    assert [run["run_id"] for run in listed] == ids[::-1]
    for key in ("run_id", "experiment", "status", "config", "final_metrics", "created_at"):
        assert key in listed[0]
    assert "ended_at" in listed[0] and "artifacts" in listed[0]
    assert listed[0]["final_metrics"]["buy_and_hold_total_profit"] == pytest.approx(
        listed[1]["final_metrics"]["buy_and_hold_total_profit"]
    )

    shown = json.loads(cli("experiments", "show", ids[0], "--json", env=env).stdout)
    model_uri = shown["artifacts"]["model.zip"]
    from stable_baselines3 import PPO

    model = PPO.load(model_uri.removeprefix("file://"), device="cpu")
    action, _ = model.predict(np.zeros(11, dtype=np.float32), deterministic=True)
    assert int(action) in (0, 1, 2)  # short, flat, long
    assert "eval_equity" in shown["metrics"] and "eval_buy_and_hold_equity" in shown["metrics"]
    # Where it came from: the bundled bars by hash, the seed, torch's threads, the command.
    environment = shown["environment"]
    bundled = data_file("EUR_USD")
    assert environment["data"]["sha256"] == hashlib.sha256(bundled.read_bytes()).hexdigest()
    assert environment["data"]["path"] == str(bundled) and environment["data"]["bars"] > 1000
    assert environment["seeds"] == {"seed": 1} and environment["torch"]["threads"] >= 1
    assert "train" in environment["command"] and "requirements.txt" in shown["artifacts"]

    compared = json.loads(cli("experiments", "compare", *ids, "--json", env=env).stdout)
    assert compared["config_diff"]["learning_rate"] == {ids[0]: 0.0003, ids[1]: 0.001}
    best = json.loads(
        cli("experiments", "best", name, "--metric", "total_profit", "--json", env=env).stdout
    )
    assert best["run_id"] in ids
    text = cli("experiments", "show", ids[0], env=env).stdout
    assert "model.zip" in text and "learning_rate" in text
    assert "sha256" in text and "stable-baselines3" in text

    deleted = cli("experiments", "delete", ids[1], "--yes", env=env)
    assert deleted.returncode == 0
    missing = cli("experiments", "show", ids[1], env=env)
    assert missing.returncode == 2 and "no run" in missing.stderr  # the command names no run


def test_cli_refuses_bad_training_options() -> None:
    result = cli("train", "--agent", "ddpg", "--timesteps", "1000", env={})
    assert result.returncode == 2
    assert "agent_type='DDPG' is not allowed" in result.stderr
    result = cli("train", "--timesteps", "10", env={})
    assert result.returncode == 2 and "timesteps=10" in result.stderr


@pytest.mark.redis
def test_stop_from_another_process_cancels_in_both_systems(
    settings: Settings, redis_url: str, namespace: str
) -> None:
    env = {
        **os.environ,
        "ML_STORAGE_PATH": settings.ml_storage_path,
        "MESSAGE_BROKER_TYPE": "redis",
        "REDIS_URL": redis_url,
        "MESSAGE_NAMESPACE": namespace,
        "MESSAGE_PROGRESS_INTERVAL": "0.05",
    }
    proc = subprocess.Popen(
        [*CLI, "train", "--timesteps", "500000", "--experiment", "to-stop", "--json"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    watcher = SyncTrainingChannel(
        namespace, settings=make_settings(message_broker_type="redis", redis_url=redis_url)
    )
    try:
        deadline = time.monotonic() + 90
        running = []
        while time.monotonic() < deadline:
            running = [s for s in watcher.list_experiments("running") if s.current_step > 500]
            if running:
                break
            time.sleep(0.2)
        assert running, "the training never showed up as running"
        assert watcher.request_stop(running[0].experiment_id, "enough")
        out, err = proc.communicate(timeout=60)
        assert proc.returncode == 1, err
        outcome = json.loads(out)
        assert outcome["status"] == "cancelled"
        state = watcher.get_experiment(running[0].experiment_id)
        assert state is not None and state.status is ExperimentStatus.CANCELLED
        run = get_sync_experiment_repository(settings).get_run(outcome["run_id"])
        assert run.status is ExperimentStatus.CANCELLED
    finally:
        proc.kill()
        proc.wait()
        watcher.close()
        delete_namespace(redis_url, namespace)


def test_ctrl_c_records_cancelled(settings: Settings) -> None:
    proc = subprocess.Popen(
        [*CLI, "train", "--timesteps", "500000", "--experiment", "interrupted", "--json"],
        env={**os.environ, "ML_STORAGE_PATH": settings.ml_storage_path},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    repo = get_sync_experiment_repository(settings)
    try:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline and not repo.list_runs(experiment="interrupted"):
            time.sleep(0.3)
        time.sleep(1.0)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
        assert proc.returncode == 130, err
        assert "Traceback" not in err
        runs = repo.list_runs(experiment="interrupted")
        assert [(r.status, r.error) for r in runs] == [
            (ExperimentStatus.CANCELLED, "interrupted (Ctrl-C)")
        ], err
    finally:
        proc.kill()
        proc.wait()


CONSOLE_SCRIPT = """
import logging, sys, time
logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")  # before capture
from stable_baselines3 import PPO
from stable_baselines3.common.callbacks import BaseCallback
from agentic_trading.training import ExperimentCallback, load_prices, split_prices
from agentic_trading.training.env import make_env

class Chatty(BaseCallback):
    def _on_step(self):
        n = self.num_timesteps
        if n % 64 == 0:
            print(f"print at step {n}")
            logging.getLogger("research").info("logged at step %d", n)
            sys.stderr.write(f"\\r\\x1b[2K\\x1b[32mbar {n // 64}/4\\x1b[0m")  # redrawn in place
        if n == 256:
            sys.stderr.write("\\n")
            print("last words", flush=True)
            if sys.argv[1] == "hang":
                time.sleep(0.5)
                tracked.on_rollout_end()  # hand the lines over, as each rollout's end does
                print("ready", flush=True)
                time.sleep(600)
        return True

split = split_prices(load_prices(), 10)
model = PPO("MlpPolicy", make_env(split.training, 10), n_steps=128, seed=1)
tracked = ExperimentCallback(sys.argv[2], {})
model.learn(256, callback=[tracked, Chatty()])
print(tracked.run.run_id)
"""


def _console_lines(settings: Settings, run_id: str) -> list[str]:
    detail = get_sync_experiment_repository(settings).get_run(run_id)
    uri = detail.artifacts["output.log"]
    return Path(uri.removeprefix("file://")).read_text().splitlines()


def test_a_trainings_console_output_is_kept_and_still_printed(
    settings: Settings, tmp_path: Path
) -> None:
    env = {**os.environ, "ML_STORAGE_PATH": settings.ml_storage_path}
    done = subprocess.run(
        [sys.executable, "-c", CONSOLE_SCRIPT, "finish", f"console-{uuid.uuid4().hex[:6]}"],
        capture_output=True, text=True, env=env, timeout=180, check=True,
    )  # fmt: skip
    # The terminal got everything, as without capture.
    assert "print at step 64" in done.stdout and "INFO logged at step 192" in done.stderr
    assert "\x1b[32mbar 1/4" in done.stderr
    lines = _console_lines(settings, done.stdout.strip().splitlines()[-1])
    for n in (64, 128, 192, 256):
        assert f"print at step {n}" in lines
        # As a terminal shows it: a log line after a bar that ended without a newline.
        assert sum(line.endswith(f"INFO logged at step {n}") for line in lines) == 1
    assert lines.count("bar 4/4") == 1 and not any(line == "bar 1/4" for line in lines)
    assert "last words" in lines and not any("\x1b" in line for line in lines)


def test_a_killed_trainings_console_output_is_kept_by_its_writer(
    settings: Settings, tmp_path: Path
) -> None:
    env = {**os.environ, "ML_STORAGE_PATH": settings.ml_storage_path}
    name = f"console-{uuid.uuid4().hex[:6]}"
    proc = subprocess.Popen(
        [sys.executable, "-c", CONSOLE_SCRIPT, "hang", name],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env,
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        deadline = time.monotonic() + 120
        while proc.stdout.readline().strip() != "ready":
            assert time.monotonic() < deadline and proc.poll() is None, "the script never got ready"
        time.sleep(0.5)  # the lines reach the writer process
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
    finally:
        if proc.poll() is None:
            proc.kill()
    repo = get_sync_experiment_repository(settings)
    deadline = time.monotonic() + 30
    while not (runs := [r for r in repo.list_runs(experiment=name) if "output.log" in r.artifacts]):
        assert time.monotonic() < deadline, "no output.log after the kill"
        time.sleep(0.5)
    assert runs[0].status is ExperimentStatus.CRASHED
    lines = _console_lines(settings, runs[0].run_id)
    assert "print at step 256" in lines and "last words" in lines


# --- re-running a run exactly ---------------------------------------------------------------------


def test_a_rerun_of_a_training_is_identical_bit_for_bit(settings: Settings) -> None:
    env = {"ML_STORAGE_PATH": settings.ml_storage_path}
    trained = cli(
        "train", "--timesteps", "512", "--n-steps", "128", "--seed", "3", "--json", env=env
    )
    assert trained.returncode == 0, trained.stderr
    run_id = json.loads(trained.stdout)["run_id"]

    again = cli("experiments", "rerun", run_id, env=env)
    assert again.returncode == 0, again.stderr
    said = " ".join(again.stdout.split())
    assert f"identical: every final metric of run {run_id}" in said
    assert "equal bit for bit" in said and "what changed" not in said  # same code, packages
    repo = get_sync_experiment_repository(settings)
    (rerun,) = repo.list_runs(where=[f"config.rerun_of == {run_id}"])
    assert rerun.config["seed"] == 3 and rerun.run_id in said
    original = repo.get_run(run_id)
    timed = {"training_seconds"}
    assert {k: v for k, v in rerun.final_metrics.items() if k not in timed} == {
        k: v for k, v in original.final_metrics.items() if k not in timed
    }


def test_a_rerun_refuses_changed_data_naming_its_hash(settings: Settings, tmp_path: Path) -> None:
    bars = load_prices().head(3000)
    csv = tmp_path / "bars.csv"
    bars.rename_axis("datetime").rename(columns=str.lower).to_csv(csv)
    env = {"ML_STORAGE_PATH": settings.ml_storage_path}
    trained = cli(
        "train", "--timesteps", "256", "--n-steps", "128", "--data", str(csv), "--json", env=env
    )
    assert trained.returncode == 0, trained.stderr
    run_id = json.loads(trained.stdout)["run_id"]
    recorded = hashlib.sha256(csv.read_bytes()).hexdigest()
    csv.write_text(csv.read_text().replace(",1.0", ",1.5", 1))  # one price edited

    refused = cli("experiments", "rerun", run_id, env=env)
    assert refused.returncode == 1 and "Traceback" not in refused.stderr
    assert f"sha256 {recorded} recorded" in refused.stderr and "changed" in refused.stderr
    assert len(get_sync_experiment_repository(settings).list_runs(experiment="PPO_EUR_USD")) >= 1


def test_a_rerun_names_what_changed_since_the_original() -> None:
    recorded = {
        "git": {"commit": "a" * 40, "patch_sha256": None},
        "versions": {"numpy": "2.4.6", "torch": "2.13.0"},
        "python": "3.11.7",
        "torch": {"threads": 2},
        "data": {"sha256": "f" * 64},
    }
    faked = {**recorded, "versions": {"numpy": "1.26.4", "torch": "2.13.0"}}
    assert compare_environments(faked, recorded) == {"package numpy": ("1.26.4", "2.4.6")}
    moved = {**recorded, "git": {"commit": "b" * 40, "patch_sha256": "c" * 64}}
    assert set(compare_environments(recorded, moved)) == {
        "git commit", "uncommitted diff (sha256)"
    }  # fmt: skip
