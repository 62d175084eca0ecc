"""The dashboard's data (the guide's Pattern 2) and its landing page, served by Dash's Flask."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from agentic_trading import ExperimentStatus
from agentic_trading.config import Settings
from agentic_trading.dashboard.app import create_app
from agentic_trading.messaging.channels.training import TrainingChannel
from agentic_trading.tracking import get_experiment_repository, get_sync_tracker
from tests.conftest import make_settings
from tests.redis_server import free_port

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def settings(tmp_path: Path, namespace: str, monkeypatch: pytest.MonkeyPatch) -> Settings:
    monkeypatch.setenv("ML_STORAGE_PATH", str(tmp_path / "aim"))
    monkeypatch.setenv("MESSAGE_NAMESPACE", namespace)
    return make_settings(ml_storage_path=str(tmp_path / "aim"), message_namespace=namespace)


@pytest.fixture
def finished_run(settings: Settings) -> str:
    tracker = get_sync_tracker(settings)
    run = tracker.create_run("PPO_EUR_USD", {"agent_type": "PPO"})
    tracker.finish_run(
        run,
        "completed",
        {
            "total_reward": 250.0,
            "total_profit": 0.021,
            "sharpe_ratio": 1.6,
            "excess_profit": -0.001,
        },
    )
    tracker.close()
    return run.run_id


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
        "sharpe_ratio": 1.6,
    }


async def test_landing_page_shows_live_and_finished_runs(
    settings: Settings, finished_run: str
) -> None:
    channel = TrainingChannel(settings=settings)
    await channel.create_experiment("live-one", {})
    await channel.publish_progress("live-one", 2500, 10000)
    client = create_app(settings).server.test_client()
    assert client.get("/").status_code == 200
    layout = json.dumps(client.get("/_dash-layout").get_json())
    assert "live-one" in layout and finished_run in layout
    assert "+2.10%" in layout  # the run's profit, formatted

    await channel.publish_progress("live-one", 5000, 10000)
    update = client.post(
        "/_dash-update-component",
        json={
            "output": "..live-table.children...banner.children...updated.children..",
            "outputs": [
                {"id": "live-table", "property": "children"},
                {"id": "banner", "property": "children"},
                {"id": "updated", "property": "children"},
            ],
            "inputs": [{"id": "live-tick", "property": "n_intervals", "value": 1}],
            "changedPropIds": ["live-tick.n_intervals"],
        },
    )
    assert update.status_code == 200
    body = json.dumps(update.get_json())
    assert "5,000/10,000" in body and '"value": "50.0"' in body
    await channel.publish_status("live-one", ExperimentStatus.COMPLETED)
    await channel.close()


def test_redis_down_shows_a_banner_and_history_still_works(
    settings: Settings, finished_run: str
) -> None:
    down = settings.model_copy(
        update={"message_broker_type": "redis", "redis_url": f"redis://127.0.0.1:{free_port()}/0"}
    )
    client = create_app(down).server.test_client()
    layout = json.dumps(client.get("/_dash-layout").get_json())
    assert "Live view unavailable" in layout and "History below still works" in layout
    assert finished_run in layout


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
                with urllib.request.urlopen(
                    f"http://127.0.0.1:{port}/_dash-layout", timeout=5
                ) as r:
                    page = r.read().decode()
            except OSError:
                time.sleep(0.3)
        assert page is not None and finished_run in page
    finally:
        proc.terminate()
        proc.wait(10)
