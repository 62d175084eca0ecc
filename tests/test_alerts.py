"""Alerts through Apprise to a local web hook (``json://127.0.0.1:PORT/...``): one per event
per run, from the training's writer, or from a watcher when the writer died too; threshold
rules; studies; secrets masked; an endpoint that is down gets the alert late, once."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from agentic_trading.alerts import (
    Alerter,
    AlertEvent,
    AlertWatcher,
    Backoff,
    parse_rules,
    run_alert,
)
from agentic_trading.alerts.ledger import CatalogueLedger
from agentic_trading.config import Settings, SettingsError, load_settings
from agentic_trading.tracking import get_sync_tracker
from agentic_trading.tracking.catalogue import catalogue_url
from agentic_trading.tracking.wire import EXIT_ERROR
from tests.conftest import make_settings
from tests.hook_server import HookServer

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def hook() -> Iterator[HookServer]:
    server = HookServer()
    yield server
    server.down()


def alerting(backend: str, folder: Path, hook: HookServer) -> Settings:
    return make_settings(
        ml_tracking_backend=backend,
        ml_storage_path=str(folder / "runs"),
        ml_heartbeat_interval=0.2,
        ml_heartbeat_timeout=3,
        ml_capture_environment=False,
        ml_system_metrics_interval=0,
        alert_urls=hook.url,
        dashboard_url="http://dash.example:8050",
    )


@pytest.fixture(params=["aim", "mlflow"])
def settings(request: pytest.FixtureRequest, tmp_path: Path, hook: HookServer) -> Settings:
    """Both backends: what the writer reads of a run (its experiment, verdict) differs."""
    return alerting(request.param, tmp_path, hook)


@pytest.fixture
def aim_settings(tmp_path: Path, hook: HookServer) -> Settings:
    """One backend: the writer's and watcher's side of alerts is the same for every one."""
    return alerting("aim", tmp_path, hook)


def environment(settings: Settings) -> dict[str, str]:
    """The settings as a child process's environment."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ML_", "ALERT_"))}
    for name, value in settings.model_dump(exclude_none=True).items():
        if name.startswith(("ml_", "alert_", "dashboard_url")):
            env[name.upper()] = str(value)
    return {**env, "PYTHONPATH": str(ROOT)}


def training(settings: Settings, mode: str = "hang") -> subprocess.Popen[str]:
    """A training process (``tests.tracking_worker``) in a process group of its own."""
    return subprocess.Popen(
        [sys.executable, "-m", "tests.tracking_worker", mode, "alerted", "5"],
        env=environment(settings),
        stdout=subprocess.PIPE,
        text=True,
        cwd=ROOT,
        start_new_session=True,
    )


def flushed_training(settings: Settings) -> tuple[subprocess.Popen[str], str]:
    """A training whose run is open and flushed; its process and run id."""
    process = training(settings)
    assert process.stdout is not None
    run_id = process.stdout.readline().strip()
    assert process.stdout.readline().strip() == "flushed"
    return process, run_id


def writer_pids(parent: int) -> list[int]:
    import psutil

    return [child.pid for child in psutil.Process(parent).children(recursive=True)]


def test_a_run_alerts_once_per_end_with_its_verdict_and_link(
    settings: Settings, hook: HookServer
) -> None:
    tracker = get_sync_tracker(settings)
    ids = {}
    for status in ("completed", "failed", "cancelled"):
        run = tracker.create_run("alerted", {"status": status})
        if status == "completed":
            tracker.log_params(run, {"verdict": "excess Sharpe +0.12 over buy-and-hold"})
        tracker.finish_run(
            run, status, {"total_reward": 1.0}, error="boom" if status == "failed" else None
        )
        ids[status] = run.run_id
    received = hook.wait_for(3, timeout=30)
    assert sorted(a["event"] for a in received) == ["cancelled", "completed", "failed"]
    by_event = {a["event"]: a for a in received}
    done = by_event["completed"]
    assert done["run"] == ids["completed"]
    assert done["experiment"] == "alerted"
    assert done["status"] == "completed"
    assert done["verdict"] == "excess Sharpe +0.12 over buy-and-hold"
    assert done["link"] == f"http://dash.example:8050/runs/{ids['completed']}"
    assert done["host"]
    assert by_event["failed"]["detail"] == "boom"
    # A watcher finds these runs ended and already alerted on: it sends nothing more.
    watcher = AlertWatcher(settings)
    assert watcher.poll().queued == 0
    assert watcher.alerter.flush(10)
    assert len(hook.wait_for(4, timeout=1)) == 3
    # The run's page lists the alert sent about it.
    from agentic_trading.dashboard.app import create_app
    from tests.dash_requests import Browserless

    page = Browserless(create_app(settings)).page(f"/runs/{ids['failed']}")
    assert "run-alerts" in page and "failed" in page


def test_the_writer_alerts_when_its_training_is_killed(
    aim_settings: Settings, hook: HookServer
) -> None:
    process, run_id = flushed_training(aim_settings)
    os.kill(process.pid, signal.SIGKILL)  # the training alone: its writer learns of it
    process.wait(10)
    received = hook.wait_for(1, timeout=30)
    assert [(a["event"], a["run"]) for a in received] == [("crashed", run_id)]
    assert received[0]["detail"] == EXIT_ERROR


def test_two_watchers_alert_once_when_training_and_writer_die(
    aim_settings: Settings, hook: HookServer
) -> None:
    process, run_id = flushed_training(aim_settings)
    writers = writer_pids(process.pid)
    assert writers, "the training has a writer process"
    os.killpg(process.pid, signal.SIGKILL)  # the whole group: training and writer
    process.wait(10)
    env = environment(aim_settings)
    watchers = [
        subprocess.Popen(
            [sys.executable, "-m", "agentic_trading.cli.app", "watch", "--interval", "0.5"],
            env=env,
            cwd=ROOT,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    try:
        received = hook.wait_for(1, timeout=60)
        time.sleep(2)  # both watchers have looked several times since
        received = hook.alerts()
    finally:
        for watcher in watchers:
            watcher.terminate()
        for watcher in watchers:
            watcher.wait(15)
    assert [(a["event"], a["run"]) for a in received] == [("crashed", run_id)]
    assert "no heartbeat" in received[0]["detail"] or "stopped" in received[0]["detail"]


def test_a_threshold_rule_alerts_once_per_run_on_live_and_final_metrics(
    aim_settings: Settings, hook: HookServer
) -> None:
    ruled = aim_settings.model_copy(
        update={"alert_rules": "reward > 5; total_reward >= 10", "alert_events": "rule"}
    )
    tracker = get_sync_tracker(ruled)
    run = tracker.create_run("alerted")
    for step in range(10):
        tracker.log_metrics(run, {"reward": float(step)}, step=step)
    tracker.finish_run(run, "completed", {"total_reward": 10.0})
    received = hook.wait_for(2, timeout=30)
    assert sorted((a["event"], a["detail"]) for a in received) == [
        ("rule", "reward = 6"),
        ("rule", "total_reward = 10"),
    ]
    assert all(a["run"] == run.run_id for a in received)


def test_study_alerts_are_sent_once_by_whichever_worker_claims_them(
    tmp_path: Path, hook: HookServer
) -> None:
    import optuna

    from agentic_trading.studies.worker import _StudyAlerts
    from tests.test_studies import tiny_spec

    settings = make_settings(ml_storage_path=str(tmp_path / "runs"), alert_urls=hook.url)
    spec = tiny_spec("alerted", trials=3)
    study = optuna.create_study(direction="maximize")
    workers = [_StudyAlerts(settings, "alerted"), _StudyAlerts(settings, "alerted")]
    for number, value in enumerate([1.0, 0.5, 2.0]):
        trial = study.ask({"gamma": optuna.distributions.FloatDistribution(0.9, 0.9999)})
        study.tell(trial, value)
        finished = study.trials[number]
        for worker in workers:  # both workers see every finished trial
            worker.new_best(study, spec, finished)
    for worker in workers:
        worker.finished(study, spec)
    received = hook.wait_for(3, timeout=30)
    assert sorted((a["event"], a.get("trial")) for a in received) == [
        ("new_best", "0"),
        ("new_best", "2"),
        ("study_finished", None),
    ]
    finished_alert = next(a for a in received if a["event"] == "study_finished")
    assert "3 of 3 trials done" in finished_alert["summary"]
    assert "best trial #2" in finished_alert["summary"]


def test_a_process_that_ends_right_after_an_alert_still_sends_it(hook: HookServer) -> None:
    # A study worker alerts "study finished" and exits at once: the send happens while the
    # interpreter shuts down.
    script = (
        "from agentic_trading.alerts import Alerter, AlertEvent, study_alert\n"
        f"Alerter([{hook.url!r}]).notify(study_alert(AlertEvent.STUDY_FINISHED, 'ending', "
        "summary='6 of 6 trials done'))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert [a["study"] for a in hook.wait_for(1, timeout=10)] == ["ending"]


def test_secrets_in_alert_urls_never_reach_messages_or_logs(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with pytest.raises(SettingsError) as refused:
        load_settings(alert_urls="slack:/T0KEN-A/T0KEN-B")
    assert "T0KEN" not in str(refused.value) and "ALERT_URLS" in str(refused.value)
    settings = load_settings(alert_urls="slack://T0KEN-A/T0KEN-B/T0KEN-C json://h:1/p4th")
    assert "T0KEN" not in str(settings.public_dict()) and "p4th" not in str(settings.public_dict())
    assert "T0KEN" not in repr(settings)
    # A refused delivery is logged with the address masked.
    alerter = Alerter(["json://127.0.0.1:9/s3cr3t"], backoff=Backoff(give_up_after=0))
    with caplog.at_level(logging.INFO, logger="agentic_trading.alerts"):
        alerter.notify(run_alert(AlertEvent.FAILED, "r1", "exp", status="failed"))
        assert alerter.flush(20)
    assert "json://127.0.0.1:9/********" in caplog.text
    assert "s3cr3t" not in caplog.text


def test_bad_rules_and_events_are_refused_naming_them() -> None:
    assert [r.text for r in parse_rules("max_drawdown > 0.2; reward < -100")] == [
        "max_drawdown > 0.2",
        "reward < -100",
    ]
    with pytest.raises(SettingsError, match=r"ALERT_RULES.*'reward <<< 3' is not one"):
        load_settings(alert_rules="reward <<< 3")
    with pytest.raises(SettingsError, match=r"ALERT_EVENTS.*'exploded' is not an alert event"):
        load_settings(alert_events="crashed,exploded")
    with pytest.raises(SettingsError, match="DASHBOARD_URL"):
        load_settings(dashboard_url="dash.example:8050")


def test_notify_queues_without_waiting_for_the_endpoint(tmp_path: Path) -> None:
    alerter = Alerter(["json://127.0.0.1:9/hook"], backoff=Backoff(give_up_after=0))
    started = time.perf_counter()
    for number in range(100):
        alerter.notify(run_alert(AlertEvent.FAILED, f"r{number}", "exp", status="failed"))
    elapsed = time.perf_counter() - started
    assert elapsed < 0.5  # 100 alerts to an endpoint that refuses: none waited for it
    assert alerter.flush(60)


@pytest.mark.stress
def test_an_alert_waits_out_an_endpoint_down_for_10_s_and_arrives_once(
    tmp_path: Path, hook: HookServer
) -> None:
    settings = make_settings(ml_storage_path=str(tmp_path / "runs"), alert_urls=hook.url)
    url = catalogue_url(settings)
    assert url is not None
    hook.down()
    alerter = Alerter([hook.url], ledger=CatalogueLedger(url), backoff=Backoff(cap=2))
    alert = run_alert(AlertEvent.CRASHED, uuid.uuid4().hex, "exp", status="crashed")
    alerter.notify(alert)
    time.sleep(10)
    assert hook.alerts() == []
    hook.up()
    received = hook.wait_for(1, timeout=30)
    assert [a["run"] for a in received] == [alert.facts["run"]]
    assert alerter.flush(5)
    time.sleep(3)
    assert len(hook.alerts()) == 1
