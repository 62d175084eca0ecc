"""The dashboard's data (the guide's Pattern 2), its pages and callbacks through Dash's own HTTP
endpoints, its control (stop, start, token) and its launchers."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr
from typer.testing import CliRunner

from agentic_trading import ExperimentStatus
from agentic_trading.cli.app import app as cli
from agentic_trading.config import Settings, SettingsError
from agentic_trading.dashboard.app import create_app
from agentic_trading.dashboard.control import ControlError
from agentic_trading.dashboard.pages import history
from agentic_trading.dashboard.pages.live import live_update
from agentic_trading.messaging.channels.sync import SyncTrainingChannel
from agentic_trading.messaging.channels.training import TrainingChannel
from agentic_trading.tracking import (
    RunHandle,
    get_experiment_repository,
    get_sync_experiment_repository,
    get_sync_tracker,
)
from tests.conftest import make_settings
from tests.dash_requests import (
    UPDATE_PATH,
    Browserless,
    find_data,
    history_rows,
    page_body,
    post,
)
from tests.redis_server import free_port

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def settings(tmp_path: Path, namespace: str, monkeypatch: pytest.MonkeyPatch) -> Settings:
    monkeypatch.setenv("ML_STORAGE_PATH", str(tmp_path / "aim"))
    monkeypatch.setenv("MESSAGE_NAMESPACE", namespace)
    return make_settings(ml_storage_path=str(tmp_path / "aim"), message_namespace=namespace)


@pytest.fixture(params=["aim", "mlflow"])
def any_backend(
    request: pytest.FixtureRequest, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> Settings:
    """The settings with each tracking backend in turn (Aim, a local MLflow store)."""
    monkeypatch.setenv("ML_TRACKING_BACKEND", request.param)
    return settings.model_copy(update={"ml_tracking_backend": request.param})


def track_run(
    settings: Settings,
    status: str = "completed",
    profit: float = 0.021,
    experiment: str = "PPO_EUR_USD",
    artifact: Path | None = None,
) -> RunHandle:
    tracker = get_sync_tracker(settings)
    run = tracker.create_run(experiment, {"agent_type": "PPO", "timesteps": 1000})
    for step in range(3):
        tracker.log_metrics(run, {"reward": step * profit * 100}, step=step)
    if artifact is not None:
        tracker.log_artifact(run, artifact, "model.zip")
    final = {"total_reward": 250.0, "total_profit": profit, "sharpe_ratio": profit * 80}
    final.update({"buy_and_hold_total_profit": 0.0223, "excess_profit": profit - 0.0223})
    tracker.finish_run(run, status, final, error="boom" if status == "failed" else None)
    tracker.flush()
    return run


@pytest.fixture
def finished_run(settings: Settings) -> str:
    return track_run(settings).run_id


COMPARE_OUTPUTS = [
    ("compare-tables", "children"),
    ("compare-equity", "figure"),
    ("compare-metric", "options"),
    ("compare-metric", "value"),
    ("compare-message", "children"),
    ("compare-links", "children"),
]


def initial_view(page: str) -> Any:
    """The live view's state as the page was rendered with it (the live-view store)."""
    return find_data(json.loads(page), "live-view")


async def test_the_guides_pattern_two_runs_as_written(
    settings: Settings, finished_run: str
) -> None:
    from agentic_trading.dashboard import analyze_performance

    # The user guide's code, with agentic_trading for src:
    async def get_live_experiments():  # type: ignore[no-untyped-def]
        channel = TrainingChannel()
        experiments = await channel.list_experiments(status="running")
        return experiments

    async def get_experiment_history():  # type: ignore[no-untyped-def]
        repo = await get_experiment_repository()
        experiments = await repo.list_experiments()
        return experiments

    async def get_dashboard_data():  # type: ignore[no-untyped-def]
        live_experiments = await get_live_experiments()
        historical_data = await get_experiment_history()
        return {
            "live": live_experiments,
            "history": historical_data,
            "comparison": analyze_performance(historical_data),
        }

    channel = TrainingChannel()
    await channel.create_experiment("exp_live", {"agent_type": "PPO"})
    await channel.publish_progress("exp_live", 1000, 50000)
    data = await get_dashboard_data()
    assert [s.experiment_id for s in data["live"]] == ["exp_live"]
    assert [e.name for e in data["history"]] == ["PPO_EUR_USD"]
    assert data["comparison"]["best_experiment"] == "PPO_EUR_USD"
    await channel.delete_experiment("exp_live")
    await channel.close()


async def test_dashboard_data_combines_live_history_and_comparison(
    settings: Settings, finished_run: str
) -> None:
    from agentic_trading.dashboard import get_dashboard_data

    data = await get_dashboard_data(settings)
    assert data["live_error"] is None and data["live"] == []
    assert data["recent_runs"][0].run_id == finished_run
    assert data["comparison"]["best_sharpe"] == {
        "run_id": finished_run,
        "experiment": "PPO_EUR_USD",
        "sharpe_ratio": pytest.approx(0.021 * 80),
    }


def test_landing_page_sends_only_what_changed(settings: Settings, finished_run: str) -> None:
    channel = SyncTrainingChannel(settings=settings)
    channel.create_experiment("live-one", {})
    channel.publish_progress("live-one", 2500, 10000)
    channel.flush()
    dash = Browserless(create_app(settings))
    assert dash.client.get("/").status_code == 200
    page = dash.page("/")
    assert "live-one" in page and finished_run in page
    assert "+2.10%" in page  # the run's profit, formatted
    assert '"disabled": false' in page  # something is live: the page refreshes itself
    view = initial_view(page)

    assert dash.tick(view) is None  # nothing changed: nothing sent

    channel.publish_progress("live-one", 5000, 10000)
    channel.publish_metrics("live-one", 5000, {"reward": 12.5})
    channel.flush()
    update = dash.tick(view)
    rows = update["live-table"]["children"]
    assert rows["__dash_patch_update"] == "__dash_patch_update"
    changed = {tuple(op["location"]) for op in rows["operations"]}
    # progress, steps, reward (and speed/ETA when known) cells of row 0; not the id or status
    assert (0, "props", "children", 2) in changed and (0, "props", "children", 3) in changed
    assert (0, "props", "children", 0) not in changed
    assert (0, "props", "children", 1) not in changed
    assert "5,000/10,000" in json.dumps(rows)
    figure = update["live-reward"]["figure"]
    assert figure["operations"][0]["operation"] == "Append"
    assert figure["operations"][0]["params"]["value"]["y"] == [12.5]
    assert "live-tick" not in update  # still live: the timer goes on
    view = update["live-view"]["data"]

    channel.publish_metrics("live-one", 6000, {"reward": 14.0})
    channel.flush()
    update = dash.tick(view)
    ops = update["live-reward"]["figure"]["operations"]
    assert [op["location"] for op in ops] == [["data", 0, "x"], ["data", 0, "y"]]  # extend
    view = update["live-view"]["data"]

    channel.publish_status("live-one", ExperimentStatus.COMPLETED)
    channel.flush()
    update = dash.tick(view)
    assert update["live-tick"]["disabled"] is True  # nothing live: polling stops
    assert finished_run in json.dumps(update["recent-runs"])  # runs refreshed at the end
    assert "completed" in json.dumps(update["live-table"])
    channel.close()


def test_live_update_replaces_rows_only_when_experiments_come_or_go(settings: Settings) -> None:
    channel = SyncTrainingChannel(settings=settings)
    channel.create_experiment("first", {})
    channel.flush()
    app = create_app(settings)
    states = app.context.feed.states()
    rows, _, view = live_update(states, None, can_stop=True)
    assert isinstance(rows, list) and len(rows) == 1
    assert view["ids"] == ["first"] and view["traces"] == []
    channel.create_experiment("second", {})
    channel.flush()
    rows, _, view = live_update(app.context.feed.states(), view, can_stop=True)
    assert isinstance(rows, list) and [r.id["experiment"] for r in rows] == ["second", "first"]
    for eid in ("first", "second"):
        channel.publish_status(eid, "cancelled")
    channel.close()


def test_live_events_wake_an_idle_page_when_an_experiment_starts(settings: Settings) -> None:
    dash = Browserless(create_app(settings))
    page = dash.page("/")
    assert '"disabled": true' in page  # nothing live: no polling

    def start_later() -> None:
        time.sleep(1.0)
        channel = SyncTrainingChannel(settings=settings)
        channel.create_experiment("late", {})
        channel.close()

    threading.Thread(target=start_later).start()
    started = time.monotonic()
    response = dash.client.get("/_agentic/live-events")
    assert response.mimetype == "text/event-stream"
    body = response.get_data(as_text=True)
    assert "event: live" in body
    assert 0.8 < time.monotonic() - started < 10  # woken by the event, not by a timeout


def test_redis_down_shows_a_banner_and_history_still_works(
    settings: Settings, finished_run: str
) -> None:
    down = settings.model_copy(
        update={"message_broker_type": "redis", "redis_url": f"redis://127.0.0.1:{free_port()}/0"}
    )
    dash = Browserless(create_app(down))
    page = dash.page("/")
    assert "Live view unavailable" in page and "runs below still work" in page
    assert finished_run in page
    rows = history_rows(dash)
    assert finished_run in rows
    assert "event: down" in dash.client.get("/_agentic/live-events").get_data(as_text=True)


def test_history_filters_sorts_and_pages(
    any_backend: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = any_backend
    good = track_run(settings, profit=0.05)
    bad = track_run(settings, "failed", profit=-0.01)
    other = track_run(settings, profit=0.01, experiment="A2C_EUR_USD")
    dash = Browserless(create_app(settings))
    page = dash.page("/runs")
    assert "A2C_EUR_USD" in page and "sharpe_ratio (highest first)" in page
    assert "max_drawdown" not in page or "lowest first" in page

    everything = history_rows(dash)
    assert all(r.run_id in everything for r in (good, bad, other))
    assert "(3 runs)" in everything
    failed = history_rows(dash, statuses=["failed", "crashed"], trigger="history-status")
    assert bad.run_id in failed and good.run_id not in failed
    ppo = history_rows(dash, experiment="PPO_EUR_USD")
    assert other.run_id not in ppo and "(2 runs)" in ppo
    by_profit = history_rows(dash, order="-final_metrics.total_profit", trigger="history-sort")
    order = [by_profit.index(r.run_id) for r in (good, other, bad)]
    assert order == sorted(order)

    monkeypatch.setattr(history, "PAGE_SIZE", 2)
    second = history_rows(dash, page=0, trigger="history-next")
    assert "page 2 of 2" in second and second.count('"/runs/') == 1


def test_compare_and_run_pages(any_backend: Settings, tmp_path: Path) -> None:
    settings = any_backend
    model = tmp_path / "model.zip"
    model.write_bytes(b"PK fake model")
    one = track_run(settings, profit=0.03, artifact=model)
    two = track_run(settings, profit=0.01)
    dash = Browserless(create_app(settings))
    assert one.run_id in dash.page(f"/compare?runs={one.run_id},{two.run_id}")
    selected = dash.call(
        COMPARE_OUTPUTS,
        [("compare-runs", "value", [one.run_id, two.run_id])],
    )
    tables = json.dumps(selected["compare-tables"]["children"])
    assert '"className": "best"' in tables and "+3.00%" in tables
    assert selected["compare-metric"]["options"] == ["reward"]
    curves = dash.call(
        [("compare-curves", "figure")],
        [
            ("compare-runs", "value", [one.run_id, two.run_id]),
            ("compare-metric", "value", "reward"),
        ],
    )
    assert len(curves["compare-curves"]["figure"]["data"]) == 2
    assert "no run" in json.dumps(
        dash.call(
            COMPARE_OUTPUTS,
            [("compare-runs", "value", ["0" * 24])],
        )
    )

    page = dash.page(f"/runs/{one.run_id}")
    if settings.ml_tracking_backend == "aim":
        assert "http://127.0.0.1:43800/runs/" + one.run_id in page
    else:
        assert "Open in MLflow UI" in page
    assert "+3.00%" in page and "+2.23%" in page  # agent against buy-and-hold
    # Where it came from: the tests run outside git; the packages and settings are there.
    assert "not in a git repository" in page and "stable-baselines3" in page
    assert "ML_STORAGE_PATH" in page
    packages = dash.client.get(f"/_agentic/artifacts/{one.run_id}/requirements.txt")
    assert packages.status_code == 200 and b"numpy==" in packages.data
    assert "run-system" not in page  # sampled every 10 s: this run was shorter
    sampled = get_sync_tracker(
        settings.model_copy(update={"ml_writer": "thread", "ml_system_metrics_interval": 0.2})
    )
    three = sampled.create_run("PPO_EUR_USD", {})
    sampled.flush()
    time.sleep(0.7)
    sampled.finish_run(three, "completed", {})
    sampled.close()
    page = dash.page(f"/runs/{three.run_id}")
    assert "run-system" in page and "system/rss_mb" in page and "system/cpu_percent" in page

    # A run's console output, searchable.
    printed = get_sync_tracker(settings)
    four = printed.create_run("PPO_EUR_USD", {})
    lines = [f"step {n}: reward {n / 10}" for n in range(2500)] + ["ERROR feed lost at 2500"]
    assert printed.log_output(four, lines)
    printed.finish_run(four, "failed", {}, error="feed lost")
    printed.flush()
    assert "Console output" in dash.page(f"/runs/{four.run_id}")
    found = dash.call(
        [("run-output-count", "children"), ("run-output-lines", "children")],
        [("run-output-search", "value", "error")],
        [("run-id", "data", four.run_id)],
    )
    assert found["run-output-lines"]["children"] == "ERROR feed lost at 2500"
    assert found["run-output-count"]["children"].startswith("1 of 2,501 lines")
    everything = dash.call(
        [("run-output-count", "children"), ("run-output-lines", "children")],
        [("run-output-search", "value", "")],
        [("run-id", "data", four.run_id)],
    )
    assert "the last 2,000 shown" in everything["run-output-count"]["children"]
    assert everything["run-output-lines"]["children"].splitlines()[0] == "step 501: reward 50.1"
    download = dash.client.get(f"/_agentic/artifacts/{one.run_id}/model.zip")
    assert download.status_code == 200 and download.data == b"PK fake model"
    assert dash.client.get(f"/_agentic/artifacts/{one.run_id}/other.zip").status_code == 404
    assert dash.client.get(f"/_agentic/artifacts/{two.run_id}/model.zip").status_code == 404
    assert "Run not found" in dash.page("/runs/" + "f" * 24)
    assert "Run not found" in dash.page("/runs/not-a-hash!")


def test_stop_from_the_dashboard_reaches_the_training(settings: Settings) -> None:
    channel = SyncTrainingChannel(settings=settings)
    channel.create_experiment("to-stop", {})
    channel.publish_status("to-stop", "running")
    channel.flush()
    dash = Browserless(create_app(settings))
    button = {"experiment": "to-stop", "type": "stop"}
    response = dash.client.post(
        UPDATE_PATH,
        json={
            "output": "..stop-confirm.displayed...stop-confirm.message...stop-target.data..",
            "outputs": [
                {"id": "stop-confirm", "property": "displayed"},
                {"id": "stop-confirm", "property": "message"},
                {"id": "stop-target", "property": "data"},
            ],
            "inputs": [[{"id": button, "property": "n_clicks", "value": 1}]],
            "changedPropIds": [json.dumps(button, separators=(",", ":")) + ".n_clicks"],
        },
    )
    asked = response.get_json()["response"]
    assert asked["stop-confirm"]["displayed"] is True
    assert asked["stop-target"]["data"] == "to-stop"
    done = dash.call(
        [("control-message", "children")],
        [("stop-confirm", "submit_n_clicks", 1)],
        [("stop-target", "data", "to-stop"), ("token", "value", "")],
    )
    assert "Stop requested" in done["control-message"]["children"]
    state = channel.get_experiment("to-stop")
    assert state is not None and state.stop_requested
    channel.publish_status("to-stop", "cancelled")
    channel.close()


def test_control_needs_a_token_off_loopback(settings: Settings) -> None:
    with pytest.raises(SettingsError, match="DASHBOARD_TOKEN"):
        create_app(settings, host="0.0.0.0")
    read_only = create_app(settings.model_copy(update={"dashboard_control": False}), "0.0.0.0")
    page = Browserless(read_only).page("/")
    assert "start-button" not in page
    with pytest.raises(ControlError, match="disabled"):
        read_only.context.control.stop("x")

    secured = settings.model_copy(update={"dashboard_token": SecretStr("s3cret")})
    control = create_app(secured, host="0.0.0.0").context.control
    assert control.requires_token
    for wrong in (None, "", "S3CRET"):
        with pytest.raises(ControlError, match="token"):
            control.stop("x", wrong)
    assert control.stop("x", "s3cret") is False  # allowed; nothing named x is live
    assert '"type": "password"' in Browserless(create_app(secured, "0.0.0.0")).page("/")


def test_start_training_validates_the_form(settings: Settings) -> None:
    control = create_app(settings).context.control
    with pytest.raises(ControlError, match="timesteps"):
        control.start_training("PPO", 5, 3e-4)
    with pytest.raises(ControlError, match="learning_rate"):
        control.start_training("PPO", 1000, -1)
    with pytest.raises(ControlError, match="agent_type"):
        control.start_training("DDPG", 1000, 3e-4)
    assert control.running_trainings() == []


def _group_run(settings: Settings) -> str:
    """A run that is not one training: a walk-forward group's own run."""
    tracker = get_sync_tracker(settings)
    run = tracker.create_run("groups", {"kind": "walk_forward_group", "agent_type": "PPO"})
    tracker.finish_run(run, "completed", {})
    tracker.flush()
    return run.run_id


def test_the_run_page_reruns_a_training_under_the_token(settings: Settings) -> None:
    from agentic_trading.training import TrainingConfig, train

    original = train(
        TrainingConfig(timesteps=256, n_steps=128, seed=5), "rerun-me", settings=settings
    )
    assert original.run_id is not None
    secured = settings.model_copy(update={"dashboard_token": SecretStr("s3cret")})
    app = create_app(secured, host="0.0.0.0")
    dash = Browserless(app)
    assert "Re-run exactly" in dash.page(f"/runs/{original.run_id}")
    pressed = [k for k, v in app.callback_map.items() if v["inputs"][0]["id"] == "rerun-button"]
    assert len(pressed) == 1 and pressed[0].startswith("control-message.children")
    control = app.context.control
    with pytest.raises(ControlError, match="token"):
        control.rerun(original.run_id, "wrong")
    with pytest.raises(ControlError, match="not one training"):
        control.rerun(_group_run(settings), "s3cret")
    started = control.rerun(original.run_id, "s3cret")
    assert f"a re-run of {original.run_id}" in started
    assert control.wait_for_trainings(120) == []
    repo = get_sync_experiment_repository(settings)
    (rerun,) = repo.list_runs(where=[f"config.rerun_of == {original.run_id}"])
    recorded = repo.get_run(original.run_id).final_metrics
    timed = {"training_seconds"}
    assert {k: v for k, v in rerun.final_metrics.items() if k not in timed} == {
        k: v for k, v in recorded.items() if k not in timed
    }


def test_with_study_storage_the_form_queues_a_study_trial(
    settings: Settings, tmp_path: Path
) -> None:
    from agentic_trading.studies import load_study, trial_rows

    studies = settings.model_copy(update={"study_storage": f"sqlite:///{tmp_path / 's.db'}"})
    studies.model_fields_set.add("study_storage")  # as when STUDY_STORAGE is set
    control = create_app(studies).context.control
    message = control.start_training("A2C", 3000, 7e-4)
    assert "Queued as trial 0 of study dashboard-a2c-3000" in message
    assert "agentic-trading study worker dashboard-a2c-3000" in message
    control.start_training("a2c", 3000, 1e-3)  # the same study, one more trial
    study, spec = load_study("dashboard-a2c-3000", studies)
    waiting = [r for r in trial_rows(study.get_trials()) if r.state == "waiting"]
    assert [r.params["learning_rate"] for r in waiting] == [7e-4, 1e-3]
    assert (spec.agent, spec.timesteps, spec.trials) == ("A2C", 3000, 2)
    assert control.running_trainings() == []  # nothing trains in the dashboard's process
    assert "now has a budget of 12 trials" in control.add_trials("dashboard-a2c-3000", 10)
    with pytest.raises(ControlError, match="no study 'nope'"):
        control.add_trials("nope", 1)


def test_cli_refuses_to_expose_control_without_a_token(settings: Settings) -> None:
    result = CliRunner().invoke(cli, ["dashboard", "--host", "0.0.0.0"])
    assert result.exit_code == 2
    assert "DASHBOARD_TOKEN" in result.output and "Traceback" not in result.output


def test_launcher_serves_on_loopback(settings: Settings, finished_run: str) -> None:
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "scripts/dashboard/launch_dashboard.py", "--port", str(port)],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 60
        page = None
        while time.monotonic() < deadline and page is None:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=5) as r:
                    page = r.read().decode()
            except OSError:
                time.sleep(0.3)
        assert page is not None and "Agentic Trading" in page
        assert finished_run in post(f"http://127.0.0.1:{port}", page_body("/"))
    finally:
        proc.terminate()
        proc.wait(10)


def test_wrong_redis_password_is_a_banner_without_the_password(
    settings: Settings, tmp_path: Path, finished_run: str
) -> None:
    from tests.redis_server import RedisServer

    server = RedisServer(tmp_path / "auth", "--requirepass", "s3cret-pass").start()
    try:
        wrong = settings.model_copy(
            update={
                "message_broker_type": "redis",
                "redis_url": server.url,
                "redis_password": SecretStr("wrong-pass"),
            }
        )
        dash = Browserless(create_app(wrong))
        page = dash.page("/")
        assert "Live view unavailable" in page and "REDIS_PASSWORD" in page
        assert "wrong-pass" not in page and "s3cret-pass" not in page
        assert finished_run in page  # the runs still show
    finally:
        server.stop()


def test_the_live_table_keeps_live_experiments_and_the_newest_finished() -> None:
    from agentic_trading.dashboard.pages.live import FINISHED_SHOWN, on_screen
    from agentic_trading.messaging.messages import ExperimentState
    from agentic_trading.status import ExperimentStatus

    def state(name: str, status: ExperimentStatus, at: float) -> ExperimentState:
        return ExperimentState(
            namespace="default", experiment_id=name, status=status, created_at=at, updated_at=at,
            heartbeat_at=time.time(),
        )  # fmt: skip

    finished = [state(f"trial-{n}", ExperimentStatus.COMPLETED, 100.0 + n) for n in range(20)]
    running = state("running-one", ExperimentStatus.RUNNING, 1.0)
    shown = on_screen([running, *finished])
    assert [s.experiment_id for s in shown] == [
        "running-one", *(f"trial-{n}" for n in range(20 - FINISHED_SHOWN, 20))
    ]  # fmt: skip
