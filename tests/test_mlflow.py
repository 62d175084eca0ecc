"""MLflow as the tracking backend, seen from MLflow's side: a real training written to MLflow
and read back by MLflow's own client and UI (in a real headless Chromium), the MLflow server
stopped mid-run, and names MLflow would refuse.

The behavioural suite shared with Aim is tests/test_tracking.py (parametrized over backends).
"""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from agentic_trading import ExperimentStatus
from agentic_trading.config import Settings
from agentic_trading.tracking import get_sync_experiment_repository, get_sync_tracker
from tests.aim_server import stop_process, wait_for_port
from tests.conftest import make_settings
from tests.mlflow_server import MlflowServer, mlflow_server
from tests.postgres import database, shared_available
from tests.redis_server import free_port
from tests.trainings import CLI, ROOT, start_training

pytest.importorskip("mlflow")


def mlflow_env(storage: Path, **extra: str) -> dict[str, str]:
    return {
        **os.environ,
        "MESSAGE_BROKER_TYPE": "memory",
        "ML_TRACKING_BACKEND": "mlflow",
        "ML_STORAGE_PATH": str(storage),
        **extra,
    }


# A plain MLflow user's script: nothing of ours imported.
MLFLOW_READER = """
import json, sys
from mlflow import MlflowClient
client = MlflowClient(sys.argv[1])
experiment = client.get_experiment_by_name(sys.argv[2])
run = client.search_runs([experiment.experiment_id])[0]
history = client.get_metric_history(run.info.run_id, "eval_equity")
local = client.download_artifacts(run.info.run_id, "model.zip", sys.argv[3])
print(json.dumps({
    "name": run.info.run_name, "status": run.info.status, "params": run.data.params,
    "tags": run.data.tags, "metrics": run.data.metrics, "equity_points": len(history),
    "model_bytes": open(local, "rb").read(4).hex(),
    "config": json.loads(client.download_artifacts(run.info.run_id, "config.json", sys.argv[3])
                         and open(sys.argv[3] + "/config.json").read()),
}))
"""


def test_a_training_on_mlflow_is_read_by_mlflows_own_client(tmp_path: Path) -> None:
    storage = tmp_path / "store"
    env = mlflow_env(storage)
    proc = start_training(env, "EURUSD-mlflow", 256)
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err
    run_id = json.loads(out)["run_id"]

    seen = subprocess.run(
        [sys.executable, "-c", MLFLOW_READER, f"sqlite:///{storage}/mlflow.db", "EURUSD-mlflow",
         str(tmp_path)],
        capture_output=True, text=True, timeout=120, check=True,
    ).stdout  # fmt: skip
    mlflow_view = json.loads(seen.strip().splitlines()[-1])
    assert mlflow_view["name"] == run_id
    assert mlflow_view["status"] == "FINISHED"
    assert mlflow_view["tags"]["agentic.status"] == "completed"
    assert mlflow_view["tags"]["agentic.run_id"] == run_id
    assert mlflow_view["params"]["agent_type"] == "PPO"
    assert mlflow_view["params"]["timesteps"] == "256"
    assert mlflow_view["model_bytes"] == "504b0304"  # a zip file: SB3's model.zip
    assert mlflow_view["config"]["agent_type"] == "PPO"

    ours = get_sync_experiment_repository(
        make_settings(ml_tracking_backend="mlflow", ml_storage_path=str(storage))
    )
    run = ours.get_run(run_id)
    assert run.status is ExperimentStatus.COMPLETED
    assert run.config == mlflow_view["config"]
    assert mlflow_view["equity_points"] == len(ours.get_metric_series(run_id, "eval_equity").steps)
    for name, value in run.final_metrics.items():  # final metrics are MLflow metrics too
        assert mlflow_view["metrics"][f"final/{name}"] == pytest.approx(value)
    listed = subprocess.run(
        [*CLI, "experiments", "list", "--json"], env=env, capture_output=True, text=True,
        timeout=60, cwd=ROOT, check=True,
    ).stdout  # fmt: skip
    assert [r["run_id"] for r in json.loads(listed)] == [run_id]
    doctor = subprocess.run(
        [*CLI, "doctor", "--json"], env=env, capture_output=True, text=True, timeout=60,
        cwd=ROOT, check=True,
    ).stdout  # fmt: skip
    tracking = json.loads(doctor)["tracking"]
    assert tracking["ok"] and tracking["backend"] == "mlflow" and tracking["runs"] == 1
    assert tracking["location"] == f"sqlite:///{storage}/mlflow.db"


OPENER = """
import sys
from agentic_trading.config import Settings
from agentic_trading.tracking.backends.mlflow._storage import connect
settings = Settings(_env_file=None, ml_tracking_backend="mlflow", ml_storage_path=sys.argv[1])
print(len(connect(settings).search_experiments()))
"""


def test_processes_opening_a_new_local_store_at_once_set_it_up_once(tmp_path: Path) -> None:
    # MLflow's client migrates a new SQLite database (dozens of steps, no one transaction) as
    # it is made: a study's workers starting together on a new store left it half migrated
    # ("table _alembic_tmp_experiments already exists" for every process after).
    import sqlite3

    command = [sys.executable, "-c", OPENER, str(tmp_path)]
    pipes = {"stdout": subprocess.PIPE, "stderr": subprocess.PIPE, "text": True, "cwd": ROOT}
    procs = [subprocess.Popen(command, **pipes) for _ in range(4)]
    for proc in procs:
        out, err = proc.communicate(timeout=120)
        assert (proc.returncode, out.strip()) == (0, "1"), err  # MLflow's Default experiment
    tables = [
        name for (name,) in sqlite3.connect(tmp_path / "mlflow.db").execute(
            "SELECT name FROM sqlite_master WHERE type = 'table'"
        )
    ]  # fmt: skip
    assert "runs" in tables and not [t for t in tables if t.startswith("_alembic_tmp")]


@pytest.fixture
def server(tmp_path: Path) -> Iterator[MlflowServer]:
    if not shared_available():
        pytest.skip("no PostgreSQL at 127.0.0.1:5432")
    with database() as url, mlflow_server(url, tmp_path) as started:
        yield started


@pytest.mark.stress  # about 30 s, as the Aim server's outage test
@pytest.mark.timeout(240)
def test_mlflow_server_stopped_mid_run_loses_nothing(server: MlflowServer) -> None:
    settings = make_settings(
        ml_tracking_backend="mlflow", mlflow_tracking_uri=server.url, ml_heartbeat_interval=0.5
    )
    tracker = get_sync_tracker(settings)
    run = tracker.create_run("outage", {"lr": 0.001})
    stopped = math.inf
    for step in range(2000):
        tracker.log_metrics(run, {"reward": float(step), "loss": 1.0 / (step + 1)}, step=step)
        if step == 500:
            tracker.flush()
            server.stop()  # gone for several seconds while the training goes on
            stopped = time.monotonic()
        if 500 < step < 1500:
            time.sleep(0.003)  # about three seconds of logging into the outage
        if step == 1500:
            time.sleep(max(0.0, 3 - (time.monotonic() - stopped)))
            assert tracker.pending > 0  # held by the writer, not written
            server.start()
    tracker.finish_run(run, "completed", {"total_reward": 1999.0})
    tracker.close()
    repo = get_sync_experiment_repository(settings)
    detail = repo.get_run(run.run_id)
    assert detail.status is ExperimentStatus.COMPLETED
    assert detail.final_metrics == {"total_reward": 1999.0}
    reward = repo.get_metric_series(run.run_id, "reward")
    assert reward.steps == list(range(2000))
    assert reward.values == [float(s) for s in range(2000)]
    assert repo.get_metric_series(run.run_id, "loss").steps == list(range(2000))


@pytest.mark.parametrize(
    ("metrics", "message"),
    [
        ({"reward": 1.0, "a<b": 2.0}, r"metric name 'a<b' is not allowed with MLflow: letters"),
        ({"../up": 1.0}, r"metric name '\.\./up' is not allowed with MLflow: no leading /"),
        ({"/abs": 1.0}, "metric name '/abs' is not allowed with MLflow"),
        ({"x" * 300: 1.0}, "is not allowed"),
        ({"final/sharpe": 1.0}, "'final/' names final metrics in MLflow"),
    ],
)
def test_names_mlflow_would_refuse_fail_at_the_call_and_nothing_is_half_written(
    tmp_path: Path, metrics: dict[str, float], message: str
) -> None:
    settings = make_settings(
        ml_tracking_backend="mlflow", ml_storage_path=str(tmp_path), ml_writer="thread"
    )
    tracker = get_sync_tracker(settings)
    run = tracker.create_run("hostile", {"weird key <x>": "'; DROP TABLE runs; --", "ok": 1})
    tracker.log_metrics(run, {"reward": 0.5}, step=0)
    with pytest.raises(ValueError, match=message):
        tracker.log_metrics(run, metrics, step=1)
    with pytest.raises(ValueError, match="param name 'bad key!' is not allowed with MLflow"):
        tracker.log_params(run, {"bad key!": 1})
    with pytest.raises(ValueError, match="over 8000 characters"):
        tracker.log_params(run, {"notes": "x" * 9000})
    with pytest.raises(ValueError, match="metric name 'a<b' is not allowed"):
        tracker.finish_run(run, "completed", {"a<b": 1.0})
    tracker.finish_run(run, "completed", {"sharpe": 1.0})
    tracker.close()
    repo = get_sync_experiment_repository(settings)
    detail = repo.get_run(run.run_id)
    assert detail.status is ExperimentStatus.COMPLETED
    assert detail.config == {"weird key <x>": "'; DROP TABLE runs; --", "ok": 1}  # kept whole
    assert detail.metrics == ["reward"] and detail.params == {}
    assert repo.get_metric_series(run.run_id, "reward").steps == [0]


@pytest.fixture
def local_run(tmp_path: Path) -> tuple[Settings, str]:
    settings = make_settings(
        ml_tracking_backend="mlflow", ml_storage_path=str(tmp_path / "store"), ml_writer="thread"
    )
    tracker = get_sync_tracker(settings)
    run = tracker.create_run("ui-check", {"learning_rate": 0.0003})
    for step in range(5):
        tracker.log_metrics(run, {"reward": 2.5 * step}, step=step)
    tracker.finish_run(run, "completed", {"sharpe_ratio": 1.25})
    tracker.close()
    return settings, run.run_id


@pytest.mark.stress  # 45-52 s: mlflow ui's start, then the run in Chromium (make stress)
def test_tracking_ui_opens_mlflows_ui_on_the_runs(
    local_run: tuple[Settings, str], tmp_path: Path
) -> None:
    settings, run_id = local_run
    port = free_port()
    proc = subprocess.Popen(
        [*CLI, "tracking-ui", "--port", str(port)],
        env=mlflow_env(Path(settings.ml_storage_path)),
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True, cwd=ROOT,
    )  # fmt: skip
    try:
        wait_for_port(port, proc, timeout=90)
        from mlflow import MlflowClient

        client = MlflowClient(f"http://127.0.0.1:{port}")
        experiment = _wait(lambda: client.get_experiment_by_name("ui-check"), 60)
        [run] = client.search_runs([experiment.experiment_id])
        assert run.info.run_name == run_id and run.data.params == {"learning_rate": "0.0003"}
        assert run.data.tags["agentic.status"] == "completed"
        assert run.data.metrics["final/sharpe_ratio"] == 1.25
        if shutil.which("chromedriver"):
            _see_run_in_chromium(port, experiment.experiment_id, run_id, tmp_path)
    finally:
        stop_process(proc)  # type: ignore[arg-type]


def _wait(condition: Any, timeout: float) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        try:
            value = condition()
            if value:
                return value
        except Exception:
            if time.monotonic() > deadline:
                raise
        if time.monotonic() > deadline:
            raise AssertionError("timed out")
        time.sleep(0.5)


def _see_run_in_chromium(port: int, experiment_id: str, run_id: str, tmp_path: Path) -> None:
    """MLflow's own UI, in a real headless Chromium, lists the run by its name (our run id)."""
    from selenium import webdriver
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.wait import WebDriverWait

    options = webdriver.ChromeOptions()
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage"):
        options.add_argument(argument)
    driver = webdriver.Chrome(options=options)
    try:
        driver.set_window_size(1400, 1000)
        driver.get(f"http://127.0.0.1:{port}/#/experiments/{experiment_id}/runs")
        WebDriverWait(driver, 60).until(
            lambda d: run_id in d.find_element(By.TAG_NAME, "body").text
        )
        driver.get(f"http://127.0.0.1:{port}/#/experiments/{experiment_id}/runs/"
                   f"{_mlflow_id(port, experiment_id)}")  # fmt: skip
        WebDriverWait(driver, 60).until(
            lambda d: "learning_rate" in d.find_element(By.TAG_NAME, "body").text
        )
        screenshots = ROOT / "test-output" / "screenshots"
        screenshots.mkdir(parents=True, exist_ok=True)
        driver.save_screenshot(str(screenshots / "mlflow-ui-run.png"))
    finally:
        driver.quit()


def _mlflow_id(port: int, experiment_id: str) -> str:
    from mlflow import MlflowClient

    return str(MlflowClient(f"http://127.0.0.1:{port}").search_runs([experiment_id])[0].info.run_id)


def test_tracking_ui_on_an_mlflow_server_prints_its_address() -> None:
    done = subprocess.run(
        [*CLI, "tracking-ui"],
        env={**mlflow_env(Path("unused")), "MLFLOW_TRACKING_URI": "http://127.0.0.1:5999"},
        capture_output=True, text=True, timeout=60, cwd=ROOT,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "http://127.0.0.1:5999"
    assert "is the MLflow server itself" in done.stderr


def test_export_copies_aim_runs_into_mlflow_once(tmp_path: Path) -> None:
    aim = make_settings(ml_storage_path=str(tmp_path / "aim"), ml_writer="thread")
    model = tmp_path / "model.zip"
    model.write_bytes(b"PK\x03\x04 weights")
    tracker = get_sync_tracker(aim)
    done, failed = (
        tracker.create_run("EURUSD", {"lr": lr, "net": {"layers": 2}}) for lr in (1e-3, 3e-4)
    )
    for step in range(250):
        tracker.log_metrics(done, {"reward": step * 0.5, "loss": 1.0 / (step + 1)}, step=step)
    tracker.log_params(done, {"verdict_label": "skill", "trial": 4})
    tracker.add_tags(done, "baseline")
    tracker.log_artifact(done, model, "model.zip")
    tracker.finish_run(done, "completed", {"sharpe_ratio": 1.5, "total_reward": 42.0})
    tracker.log_metrics(failed, {"reward": 1.0}, step=0)
    tracker.finish_run(failed, "failed", error="RuntimeError: diverged")
    running = tracker.create_run("EURUSD", {"lr": 1e-4})
    tracker.flush()

    target = make_settings(
        ml_tracking_backend="mlflow", mlflow_tracking_uri=f"sqlite:///{tmp_path}/mlflow.db"
    )
    # An export interrupted after creating the failed run's copy, before finishing it.
    from agentic_trading.tracking.backends.mlflow.store import MlflowRunStore

    half = MlflowRunStore(target)
    half.open_run(failed.run_id, "EURUSD", {"lr": 3e-4}, [])
    half.close()

    env = {**os.environ, "ML_STORAGE_PATH": aim.ml_storage_path,
           "MLFLOW_TRACKING_URI": target.mlflow_store_uri()}  # fmt: skip
    command = [*CLI, "experiments", "export", "--to", "mlflow", "--json"]
    first = subprocess.run(command, env=env, capture_output=True, text=True, timeout=180, cwd=ROOT)
    assert first.returncode == 0, first.stderr
    report = json.loads(first.stdout)
    assert sorted(report["copied"]) == sorted([done.run_id, failed.run_id])
    assert report["still_running"] == [running.run_id] and report["failed"] == {}
    assert report["points"] == 500 + 1

    source = get_sync_experiment_repository(aim)
    copied = get_sync_experiment_repository(target)
    for run_id in (done.run_id, failed.run_id):
        theirs, ours = source.get_run(run_id), copied.get_run(run_id)
        for field in ("experiment", "status", "config", "final_metrics", "error", "tags",
                      "params", "metrics"):  # fmt: skip
            assert getattr(ours, field) == getattr(theirs, field), field
        # MLflow keeps times to the millisecond.
        assert abs((ours.created_at - theirs.created_at).total_seconds()) < 0.001
        for name in theirs.metrics:
            a, b = source.get_metric_series(run_id, name), copied.get_metric_series(run_id, name)
            assert (a.steps, a.values) == (b.steps, b.values)
    assert len(copied.list_runs()) == 2  # the half-copied run was replaced, not duplicated
    artifact = copied.get_run(done.run_id).artifacts["model.zip"]
    assert Path(artifact.removeprefix("file://")).read_bytes() == b"PK\x03\x04 weights"

    again = subprocess.run(command, env=env, capture_output=True, text=True, timeout=180, cwd=ROOT)
    assert again.returncode == 0, again.stderr
    repeat = json.loads(again.stdout)
    assert repeat["copied"] == [] and sorted(repeat["already_in_mlflow"]) == sorted(
        [done.run_id, failed.run_id]
    )
    tracker.finish_run(running)
    tracker.close()


def test_export_refuses_what_it_cannot_do() -> None:
    for env, message in (
        (
            {"ML_TRACKING_BACKEND": "mlflow"},
            "export copies runs out of another backend into mlflow",
        ),
        ({}, "--to 'wandb' is not a backend"),
    ):
        to = "wandb" if not env else "mlflow"
        done = subprocess.run(
            [*CLI, "experiments", "export", "--to", to], env={**os.environ, **env},
            capture_output=True, text=True, timeout=60, cwd=ROOT,
        )  # fmt: skip
        assert done.returncode != 0 and message in done.stderr, done.stderr
        assert "Traceback" not in done.stderr
