"""The dashboard in a real headless Chromium (dash[testing] with Debian's chromium-driver).

Each test saves a screenshot of its page under test-output/screenshots/.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import pytest
from selenium.common.exceptions import StaleElementReferenceException
from selenium.webdriver.support.expected_conditions import alert_is_present
from selenium.webdriver.support.wait import WebDriverWait

from agentic_trading.config import Settings
from agentic_trading.dashboard.app import create_app
from agentic_trading.messaging.channels.sync import SyncTrainingChannel
from agentic_trading.tracking import RunHandle, get_sync_experiment_repository, get_sync_tracker
from tests.conftest import make_settings

SCREENSHOTS = Path(__file__).resolve().parents[1] / "test-output" / "screenshots"

pytestmark = [
    pytest.mark.skipif(
        shutil.which("chromedriver") is None,
        reason="needs chromium and chromium-driver (make setup installs them with apt-get)",
    ),
    # dash_duo stops its server by raising SystemExit in every thread it started (its
    # KillerThread), open live-event requests included; that is its teardown, not our error.
    pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning"),
]


@pytest.fixture
def settings(tmp_path: Path, namespace: str) -> Settings:
    return make_settings(ml_storage_path=str(tmp_path / "aim"), message_namespace=namespace)


def screenshot(dash_duo: Any, name: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    dash_duo.driver.set_window_size(1400, 1000)
    dash_duo.driver.save_screenshot(str(SCREENSHOTS / f"{name}.png"))


def finished_run(
    settings: Settings, agent: str, profit: float, slope: float, model: Path | None = None
) -> RunHandle:
    """A completed run with a reward curve, held-out equity and buy-and-hold (and ``model``
    stored as its ``model.zip``)."""
    tracker = get_sync_tracker(settings)
    run = tracker.create_run("PPO_EUR_USD", {"agent_type": agent, "learning_rate": slope / 1e4})
    for step in range(0, 5000, 500):
        tracker.log_metrics(run, {"reward": slope * step / 1000}, step=step)
    for bar in range(50):
        tracker.log_metrics(
            run,
            {"eval_equity": 1 + profit * bar / 49, "eval_buy_and_hold_equity": 1 + 0.02 * bar / 49},
            step=bar,
        )
    if model is not None:
        tracker.log_artifact(run, model, "model.zip")
    tracker.finish_run(
        run,
        "completed",
        {
            "total_profit": profit,
            "buy_and_hold_total_profit": 0.02,
            "excess_profit": profit - 0.02,
            "sharpe_ratio": 10 * profit,
        },
    )
    tracker.flush()
    return run


def test_landing_page_shows_a_finished_run_and_a_moving_live_one(
    dash_duo: Any, settings: Settings
) -> None:
    run = finished_run(settings, "PPO", 0.0203, 1.0)
    channel = SyncTrainingChannel(settings=settings)
    channel.create_experiment("live-ppo", {"agent_type": "PPO"})
    channel.publish_progress("live-ppo", 1000, 10000)
    channel.publish_metrics("live-ppo", 1000, {"reward": 1.5})
    channel.flush()

    dash_duo.start_server(create_app(settings))
    dash_duo.wait_for_contains_text("#recent-runs", run.run_id, timeout=20)
    dash_duo.wait_for_contains_text("#recent-runs", "+2.03%")
    dash_duo.wait_for_contains_text("#live-table", "1,000/10,000", timeout=10)

    channel.publish_progress("live-ppo", 6000, 10000)
    channel.publish_metrics("live-ppo", 6000, {"reward": 4.0})
    channel.flush()
    dash_duo.wait_for_contains_text("#live-table", "6,000/10,000", timeout=10)  # no reload
    value = retried(lambda: dash_duo.find_element("#live-table progress").get_attribute("value"))
    assert float(value) == pytest.approx(60.0)
    wait_for(lambda: len(dash_duo.find_elements("#live-reward .scatterlayer .point")) == 2)
    screenshot(dash_duo, "landing")
    assert dash_duo.get_logs() == []  # no errors in the browser console
    channel.publish_status("live-ppo", "completed")
    channel.close()


T = TypeVar("T")


def retried(action: Callable[[], T], timeout: float = 15.0) -> T:
    """``action()``, again while the element it uses is replaced under it (Dash re-rendered
    the part of the page it was in)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return action()
        except StaleElementReferenceException:
            assert time.monotonic() < deadline, "the element kept being re-rendered"
            time.sleep(0.2)


def wait_for(condition: Callable[[], Any], timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not retried(condition, timeout):
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.2)


def test_a_training_started_from_the_form_is_stopped_by_the_stop_button(
    dash_duo: Any, settings: Settings
) -> None:
    dash_duo.start_server(create_app(settings))
    dash_duo.wait_for_element("#start-button", timeout=20)
    timesteps = dash_duo.find_element("#start-timesteps")
    timesteps.clear()
    timesteps.send_keys("200000")
    dash_duo.find_element("#start-button").click()
    dash_duo.wait_for_contains_text("#control-message", "Started", timeout=10)
    # The page was idle when the training started: the live view wakes up by itself.
    dash_duo.wait_for_contains_text("#live-table", "running", timeout=60)
    retried(lambda: dash_duo.wait_for_element("#live-table button.stop", timeout=20).click())
    alert = WebDriverWait(dash_duo.driver, 10).until(alert_is_present())  # confirmation
    assert "Stop the training" in alert.text
    alert.accept()
    dash_duo.wait_for_contains_text("#control-message", "Stop requested", timeout=10)
    dash_duo.wait_for_contains_text("#live-table", "cancelled", timeout=60)
    screenshot(dash_duo, "stopped")

    repository = get_sync_experiment_repository(settings)
    wait_for(lambda: [r.status.value for r in repository.list_runs()] == ["cancelled"], 30)
    (run,) = repository.list_runs()
    assert run.config["timesteps"] == 200000
    assert dash_duo.get_logs() == []
    get_sync_tracker(settings).close()


def test_compare_page_overlays_two_runs(dash_duo: Any, settings: Settings) -> None:
    better = finished_run(settings, "PPO", 0.031, 2.0)
    worse = finished_run(settings, "A2C", 0.011, 1.0)
    dash_duo.start_server(create_app(settings))
    dash_duo.driver.get(f"{dash_duo.server_url}/compare?runs={better.run_id},{worse.run_id}")
    dash_duo.wait_for_element("#compare-curves .scatterlayer .trace", timeout=20)
    wait_for(lambda: len(dash_duo.find_elements("#compare-curves .scatterlayer .trace")) == 2)
    # Two agents and buy-and-hold on the held-out bars.
    wait_for(lambda: len(dash_duo.find_elements("#compare-equity .scatterlayer .trace")) == 3)
    best = dash_duo.find_elements("#compare-final td.best")
    assert {cell.text for cell in best} >= {"+3.10%", "0.31"}
    dash_duo.wait_for_contains_text("#compare-config", "learning_rate")
    screenshot(dash_duo, "compare")
    assert dash_duo.get_logs() == []


def test_history_and_run_pages(dash_duo: Any, settings: Settings) -> None:
    runs = [finished_run(settings, "PPO", 0.01 * i, 1.0) for i in range(3)]
    dash_duo.start_server(create_app(settings))
    dash_duo.driver.get(f"{dash_duo.server_url}/runs")
    dash_duo.wait_for_contains_text("#history-page-label", "3 runs", timeout=20)
    screenshot(dash_duo, "history")
    dash_duo.find_element(f"a[href='/runs/{runs[2].run_id}']").click()  # no reload: a dcc.Link
    dash_duo.wait_for_contains_text("h1", runs[2].run_id, timeout=20)
    dash_duo.wait_for_contains_text("#run-final", "+2.00%")
    wait_for(lambda: len(dash_duo.find_elements("#run-charts .js-plotly-plot")) == 2)
    link = dash_duo.find_element("#aim-link").get_attribute("href")
    assert link == f"http://127.0.0.1:43800/runs/{runs[2].run_id}"
    screenshot(dash_duo, "run")
    assert dash_duo.get_logs() == []


def test_study_page_follows_trials_live_and_stops_one(
    dash_duo: Any, settings: Settings, tmp_path: Path
) -> None:
    import threading

    from agentic_trading.studies import StudySpec, create_study, load_study, run_worker
    from agentic_trading.studies.attributes import trial_info

    settings = settings.model_copy(update={"study_storage": f"sqlite:///{tmp_path / 'studies.db'}"})
    space = {"learning_rate": {"low": 1e-4, "high": 1e-3, "log": True}, "n_steps": [64]}
    spec = StudySpec(
        name="watched", space=space, trials=1, timesteps=6144, eval_every=1024,
        base={"window_size": 5},
    )  # fmt: skip
    create_study(spec, settings)
    dash_duo.start_server(create_app(settings))
    dash_duo.driver.get(f"{dash_duo.server_url}/studies/watched")
    dash_duo.wait_for_contains_text("#study-summary", "0 of 1 trials done", timeout=20)

    worker = threading.Thread(target=run_worker, args=("watched", settings), daemon=True)
    worker.start()
    dash_duo.wait_for_contains_text("#study-trials", "running", timeout=60)  # no reload
    dash_duo.wait_for_element("#study-trials progress", timeout=30)

    def progress() -> float:
        return float(dash_duo.find_element("#study-trials progress").get_attribute("value"))

    first = retried(progress)
    wait_for(lambda: progress() > first, 30)  # the running trial's progress moves, from messaging
    retried(lambda: dash_duo.find_element("#study-trials button.stop").click())
    alert = WebDriverWait(dash_duo.driver, 10).until(alert_is_present())
    alert.accept()
    dash_duo.wait_for_contains_text("#study-trials", "cancelled", timeout=60)
    # The budget counts complete and pruned trials: the worker runs another one to the end.
    dash_duo.wait_for_contains_text("#study-summary", "1 of 1 trials done", timeout=120)
    wait_for(lambda: len(dash_duo.find_elements("#study-history .scatterlayer .point")) >= 1)
    wait_for(lambda: len(dash_duo.find_elements("#study-intermediate .scatterlayer .trace")) >= 1)
    worker.join(60)
    screenshot(dash_duo, "study")
    study, _ = load_study("watched", settings)
    assert [t.state.name for t in study.get_trials()] == ["FAIL", "COMPLETE"]
    assert trial_info(study.get_trials()[0])["status"] == "cancelled"

    dash_duo.driver.get(f"{dash_duo.server_url}/studies")
    dash_duo.wait_for_contains_text("#studies-table", "watched", timeout=20)
    dash_duo.wait_for_contains_text("#studies-table", "1/1")
    assert dash_duo.get_logs() == []
    get_sync_tracker(settings).close()


def test_live_page_shows_a_trainings_whole_history_then_grows(
    dash_duo: Any, settings: Settings
) -> None:
    tracker = get_sync_tracker(settings)
    channel = SyncTrainingChannel(settings=settings)
    channel.create_experiment("long-run", {"agent_type": "PPO"})
    run = tracker.create_run("PPO_EUR_USD", {"experiment_id": "long-run", "agent_type": "PPO"})
    for step in range(1000, 6000, 1000):  # an hour of training, before the page is opened
        tracker.log_metrics(run, {"reward": step / 1000, "learning_rate": 3e-4}, step=step)
        channel.publish_progress("long-run", step, 10_000)
        channel.publish_metrics("long-run", step, {"reward": step / 1000})
    tracker.flush()
    channel.flush()

    dash_duo.start_server(create_app(settings))
    dash_duo.wait_for_contains_text("#live-table", "5,000/10,000", timeout=20)
    points = "#live-reward .scatterlayer .point"
    wait_for(lambda: len(dash_duo.find_elements(points)) == 5)  # all five at once
    channel.publish_progress("long-run", 6000, 10_000)
    channel.publish_metrics("long-run", 6000, {"reward": 6.0})
    channel.flush()
    wait_for(lambda: len(dash_duo.find_elements(points)) == 6)  # then it grows
    screenshot(dash_duo, "live-history")

    # The run's own page refreshes itself while it runs; a constant series says its value.
    dash_duo.driver.get(f"{dash_duo.server_url}/runs/{run.run_id}")
    dash_duo.wait_for_contains_text("#run-charts", "learning_rate: 0.0003 (constant)", timeout=20)
    tracker.log_metrics(run, {"late_metric": 1.0}, step=6000)
    tracker.flush()
    dash_duo.wait_for_contains_text("#run-charts", "late_metric", timeout=20)  # no reload
    tracker.finish_run(run, "completed", {"total_reward": 1.0})
    channel.publish_status("long-run", "completed")
    channel.close()
    assert dash_duo.get_logs() == []


def test_a_runs_model_is_registered_and_promoted_with_confirmation(
    dash_duo: Any, settings: Settings, tmp_path: Path
) -> None:
    model = tmp_path / "model.zip"
    model.write_bytes(b"PK\x05\x06" + b"\x00" * 18)  # the registry keeps the file's address only
    run = finished_run(settings, "PPO", 0.02, 1.0, model)
    dash_duo.start_server(create_app(settings))
    dash_duo.driver.get(f"{dash_duo.server_url}/runs/{run.run_id}")
    register = dash_duo.wait_for_element("#register-button", timeout=20)
    assert dash_duo.find_element("#register-name").get_attribute("value") == "EURUSD-PPO"
    register.click()
    dash_duo.wait_for_contains_text("#control-message", "Registered EURUSD-PPO/1", timeout=10)
    register.click()
    dash_duo.wait_for_contains_text("#control-message", "Registered EURUSD-PPO/2", timeout=10)

    dash_duo.find_element("a[href='/models']").click()
    dash_duo.wait_for_contains_text("#models-body", "no aliases", timeout=20)
    assert run.run_id in dash_duo.find_element("#models-body").text
    version = dash_duo.find_element("#promote-version")
    version.clear()
    version.send_keys("1")
    dash_duo.find_element("#promote-button").click()
    alert = WebDriverWait(dash_duo.driver, 10).until(alert_is_present())
    assert "Make version 1 of EURUSD-PPO its 'champion'?" in alert.text
    alert.accept()
    dash_duo.wait_for_contains_text("#control-message", "EURUSD-PPO@champion is now version 1")
    dash_duo.wait_for_contains_text("#models-body", "champion → 1")
    screenshot(dash_duo, "models")
    registry = get_sync_experiment_repository(settings).current_catalogue()
    assert registry is not None
    from agentic_trading.models import ModelRegistry

    assert ModelRegistry(registry).resolve("EURUSD-PPO@champion").version == 1
    assert dash_duo.get_logs() == []


#: The parts of a chart that must never cover one another.
CHART_PARTS = {
    "title": ".gtitle",
    "x axis title": ".xtitle",
    "y axis title": ".ytitle",
    "legend": ".legend",
    "toolbar": ".modebar",
    "axis name": ".axis-title",  # parallel coordinates' axis names
}


def _boxes(dash_duo: Any, graph: str) -> list[tuple[str, dict[str, float]]]:
    """The bounding boxes of a graph's parts (name, box), as the browser lays them out."""
    script = """
        const [graph, parts] = arguments;
        const found = [];
        for (const [name, selector] of Object.entries(parts)) {
            for (const el of document.querySelectorAll(graph + ' ' + selector)) {
                const r = el.getBoundingClientRect();
                if (r.width > 0 && r.height > 0 && el.textContent !== null)
                    found.push([name, {left: r.left, right: r.right, top: r.top, bottom: r.bottom}]);
            }
        }
        return found;
    """
    boxes: list[tuple[str, dict[str, float]]] = dash_duo.driver.execute_script(
        script, graph, CHART_PARTS
    )
    return boxes


def _overlap(a: dict[str, float], b: dict[str, float]) -> bool:
    return min(a["right"], b["right"]) - max(a["left"], b["left"]) > 1 and (
        min(a["bottom"], b["bottom"]) - max(a["top"], b["top"]) > 1
    )


def _inputs_cut(dash_duo: Any) -> list[str]:
    """Text inputs whose value is wider than the box that shows it."""
    cut: list[str] = dash_duo.driver.execute_script(
        """return [...document.querySelectorAll('input')]
            .filter(el => el.type !== 'hidden' && el.type !== 'password' && el.value
                          && el.scrollWidth > el.clientWidth + 1)
            .map(el => el.id + '=' + el.value + ' ' + el.scrollWidth + '>' + el.clientWidth + ' ' + getComputedStyle(el).width);"""
    )
    return cut


def test_charts_and_inputs_read_whole_at_1280x800(
    dash_duo: Any, settings: Settings, tmp_path: Path
) -> None:
    import optuna

    from agentic_trading.studies import StudySpec, create_study
    from agentic_trading.studies.attributes import update_trial_info

    settings = settings.model_copy(update={"study_storage": f"sqlite:///{tmp_path / 'studies.db'}"})
    space = {
        "learning_rate": {"low": 1e-5, "high": 2e-3, "log": True},
        "ent_coef": {"low": 1e-8, "high": 0.1, "log": True},
        "gamma": [0.9, 0.99, 0.999, 0.9999],
        "n_steps": [64, 128, 256],
    }
    spec = StudySpec(
        name="laid-out", space=space, trials=12, timesteps=12000, eval_every=3000,
        base={"window_size": 5},
    )  # fmt: skip
    study = create_study(spec, settings)
    rng = __import__("random").Random(3)
    for number in range(12):  # finished trials, as a study leaves them (no training needed)
        trial = study.ask()
        params = spec.search_space.suggest(trial)
        for step in (3000, 6000, 9000):
            trial.report(rng.uniform(-5, 1) + step / 10000, step)
        update_trial_info(trial, steps=12000, worker="host:1")
        state = optuna.trial.TrialState.PRUNED if number % 4 == 3 else None
        study.tell(trial, None if state else rng.uniform(-5, 1), state=state)
        assert params
    model = tmp_path / "model.zip"
    model.write_bytes(b"PK fake model")
    run = finished_run(settings, "PPO", 0.03, 1.0, model)

    dash_duo.start_server(create_app(settings))
    dash_duo.driver.set_window_size(1280, 800)
    dash_duo.driver.get(f"{dash_duo.server_url}/studies/laid-out")
    dash_duo.wait_for_contains_text("#study-summary", "trials done", timeout=20)
    for graph in ("#study-history", "#study-intermediate", "#study-parallel", "#study-importances"):
        wait_for(lambda g=graph: any(n == "title" for n, _ in _boxes(dash_duo, g)), 20)
        boxes = _boxes(dash_duo, graph)
        clashes = [
            (a, b)
            for i, (a, box_a) in enumerate(boxes)
            for b, box_b in boxes[i + 1 :]
            if a != b and _overlap(box_a, box_b)
        ]
        assert clashes == [], (graph, clashes)
    parallel = dash_duo.find_element("#study-parallel").text
    assert "learning_rate (log)" in parallel and "1e-4" in parallel  # log axes
    trials = dash_duo.find_element("#study-trials").text
    assert "12,000" in trials and "0.9999" in trials
    screenshot(dash_duo, "study-laid-out")

    for page in ("/models", f"/runs/{run.run_id}", "/"):
        dash_duo.driver.get(f"{dash_duo.server_url}{page}")
        dash_duo.wait_for_element("nav", timeout=20)
        time.sleep(1.0)
        assert _inputs_cut(dash_duo) == [], page
    assert dash_duo.get_logs() == []
