"""The dashboard in a real headless Chromium (dash[testing] with Debian's chromium-driver)."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest

from agentic_trading.config import Settings
from agentic_trading.dashboard.app import create_app
from agentic_trading.messaging.channels.sync import SyncTrainingChannel
from agentic_trading.tracking import get_sync_tracker
from tests.conftest import make_settings

SCREENSHOTS = Path(__file__).resolve().parents[1] / "test-output" / "screenshots"

pytestmark = pytest.mark.skipif(
    shutil.which("chromedriver") is None,
    reason="needs chromium and chromium-driver (make setup installs them with apt-get)",
)


@pytest.fixture
def settings(tmp_path: Path, namespace: str) -> Settings:
    return make_settings(ml_storage_path=str(tmp_path / "aim"), message_namespace=namespace)


def test_landing_page_shows_a_finished_run_and_a_moving_live_one(
    dash_duo: Any, settings: Settings
) -> None:
    tracker = get_sync_tracker(settings)
    run = tracker.create_run("PPO_EUR_USD", {"agent_type": "PPO"})
    tracker.finish_run(run, "completed", {"total_profit": 0.0203, "sharpe_ratio": 1.67})
    tracker.close()
    channel = SyncTrainingChannel(settings=settings)
    channel.create_experiment("live-ppo", {"agent_type": "PPO"})
    channel.publish_progress("live-ppo", 1000, 10000)
    channel.flush()

    dash_duo.start_server(create_app(settings))
    dash_duo.wait_for_contains_text("#recent-runs", run.run_id, timeout=20)
    dash_duo.wait_for_contains_text("#recent-runs", "+2.03%")
    dash_duo.wait_for_contains_text("#live-table", "1,000/10,000", timeout=10)

    channel.publish_progress("live-ppo", 6000, 10000)
    channel.flush()
    dash_duo.wait_for_contains_text("#live-table", "6,000/10,000", timeout=10)  # no reload
    progress = dash_duo.find_element("#live-table progress")
    assert float(progress.get_attribute("value")) == pytest.approx(60.0)
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    dash_duo.driver.save_screenshot(str(SCREENSHOTS / "landing.png"))
    assert dash_duo.get_logs() == []  # no errors in the browser console
    channel.publish_status("live-ppo", "completed")
    channel.close()
