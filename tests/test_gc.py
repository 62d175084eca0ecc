"""``experiments gc``: old runs deleted for good from every store, the best and the registered
ones kept, the bytes reported freed, and a gc cut short finished by the next one."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from agentic_trading.config import Settings
from agentic_trading.tracking import (
    SyncExperimentRepository,
    get_sync_experiment_repository,
    get_sync_tracker,
)
from agentic_trading.tracking.errors import RunNotFoundError
from agentic_trading.tracking.retention import collect_garbage
from tests.conftest import make_settings

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(params=["aim", "mlflow"])
def settings(request: pytest.FixtureRequest, tmp_path: Path) -> Settings:
    return make_settings(
        ml_tracking_backend=request.param,
        ml_storage_path=str(tmp_path / "runs"),
        ml_capture_environment=False,
        ml_system_metrics_interval=0,
    )


def make_runs(settings: Settings, statuses: list[str], tmp_path: Path) -> list[str]:
    """One run per status, each with 300 points, a 100 kB model and a sharpe_ratio."""
    tracker = get_sync_tracker(settings)
    model = tmp_path / "model.zip"
    model.write_bytes(os.urandom(100_000))
    ids = []
    for number, status in enumerate(statuses):
        run = tracker.create_run("kept-tidy", {"n": number})
        tracker.log_metrics_batch(run, [(step, {"reward": float(step)}) for step in range(300)])
        tracker.log_artifact(run, model, "model.zip")
        tracker.finish_run(run, status, {"sharpe_ratio": float(number)})
        ids.append(run.run_id)
    tracker.flush()
    return ids


def stored_files(folder: Path) -> dict[Path, int]:
    return {p: p.stat().st_size for p in folder.rglob("*") if p.is_file()}


def artifact_paths(repo: SyncExperimentRepository, run_ids: list[str]) -> list[Path]:
    paths = []
    for run_id in run_ids:
        for uri in repo.get_run(run_id).artifacts.values():
            assert uri.startswith("file://"), uri
            paths.append(Path(uri.removeprefix("file://")))
    return paths


def test_a_dry_run_changes_nothing_and_a_real_one_frees_what_it_reported(
    settings: Settings, tmp_path: Path
) -> None:
    ids = make_runs(
        settings, ["completed", "failed", "crashed", "cancelled", "completed"], tmp_path
    )
    repo = get_sync_experiment_repository(settings)
    doomed = ids[1:4]
    files = artifact_paths(repo, doomed)
    storage = Path(settings.ml_storage_path)
    before = stored_files(storage)

    dry = collect_garbage(repo, dry_run=True)
    assert sorted(r["run_id"] for r in dry.runs) == sorted(doomed)
    assert all(r["bytes"] >= 100_000 for r in dry.runs)  # at least the model each
    assert stored_files(storage) == before
    assert {r.run_id for r in repo.list_runs()} == set(ids)

    report = collect_garbage(repo)
    assert sorted(r["run_id"] for r in report.runs) == sorted(doomed)
    assert report.bytes == dry.bytes
    # The files that went hold what it reported (Aim's own index also rotates its logs and
    # compacts meanwhile, which neither side counts).
    after = stored_files(storage)
    gone = sum(size for path, size in before.items() if path not in after)
    assert gone >= report.bytes, (gone, report.bytes)
    assert gone <= 1.1 * report.bytes, (gone, report.bytes)
    assert not any(path.exists() for path in files)
    assert {r.run_id for r in repo.list_runs()} == {ids[0], ids[4]}
    fresh = get_sync_experiment_repository(settings.model_copy())  # another reader
    for run_id in doomed:
        with pytest.raises(RunNotFoundError):
            fresh.get_run(run_id)
    assert collect_garbage(repo).runs == []  # nothing left to do


def test_the_best_and_the_registered_runs_are_kept_unless_forced(
    settings: Settings, tmp_path: Path
) -> None:
    from agentic_trading.models import registry_for
    from agentic_trading.tracking.catalogue import open_catalogue

    ids = make_runs(settings, ["completed", "completed", "completed", "failed"], tmp_path)
    catalogue = open_catalogue(settings)
    assert catalogue is not None
    version = registry_for(settings, catalogue).register(ids[0], "tidy-model")
    repo = get_sync_experiment_repository(settings)

    report = collect_garbage(repo, statuses=None, keep_best=1, by="sharpe_ratio")
    assert [r["run_id"] for r in report.runs] == [ids[1], ids[3]]
    assert report.kept == {
        ids[0]: f"registered as tidy-model v{version.version}",
        ids[2]: "among the 1 best by sharpe_ratio",
    }
    repo.get_run(ids[0])  # the registered version's run is whole

    forced = collect_garbage(repo, statuses=None, keep_best=1, by="sharpe_ratio", force=True)
    assert [r["run_id"] for r in forced.runs] == [ids[0]]


def test_a_gc_cut_short_at_each_step_is_finished_by_the_next(
    settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ids = make_runs(settings, ["failed", "failed"], tmp_path)
    repo = get_sync_experiment_repository(settings)
    files = artifact_paths(repo, ids)
    reader: Any = repo._reader

    # 1. Cut after the catalogue's row went, before the backend's run: the run is whole and
    # listed again (readers catch the catalogue up), and the next gc deletes it.
    def cut(*_: Any) -> bool:
        raise KeyboardInterrupt

    monkeypatch.setattr(reader, "delete_run", cut)
    with pytest.raises(KeyboardInterrupt):
        collect_garbage(repo)
    monkeypatch.undo()
    again = get_sync_experiment_repository(settings.model_copy())
    assert {r.run_id for r in again.list_runs()} == set(ids)
    assert again.get_run(ids[0]).artifacts

    # 2. Cut after the backend's run went, before its artifacts (Aim) or its purge (MLflow):
    # no reader sees the run; the next gc frees what was left.
    if settings.ml_tracking_backend == "aim":
        import agentic_trading.tracking.backends.aim.reader as aim_reader

        monkeypatch.setattr(aim_reader, "remove_artifacts", cut)
    else:
        monkeypatch.setattr(type(reader), "_purge", cut)
    with pytest.raises(KeyboardInterrupt):
        collect_garbage(again)
    monkeypatch.undo()
    third = get_sync_experiment_repository(settings.model_copy())
    assert ids[0] not in {r.run_id for r in third.list_runs()}
    with pytest.raises(RunNotFoundError):
        third.get_run(ids[0])
    report = collect_garbage(third)
    assert report.finished_earlier >= 100_000  # the first run's model, left behind
    assert [r["run_id"] for r in report.runs] == [ids[1]]
    assert not any(path.exists() for path in files)
    assert third.list_runs() == []


def test_a_gc_killed_midway_then_run_again_completes(tmp_path: Path) -> None:
    settings = make_settings(
        ml_storage_path=str(tmp_path / "runs"),
        ml_capture_environment=False,
        ml_system_metrics_interval=0,
    )
    ids = make_runs(settings, ["failed"] * 12, tmp_path)
    repo = get_sync_experiment_repository(settings)
    files = artifact_paths(repo, ids)
    env = {**os.environ, "ML_STORAGE_PATH": settings.ml_storage_path, "PYTHONPATH": str(ROOT)}
    command = [sys.executable, "-m", "agentic_trading.cli.app", "experiments", "gc", "--json"]
    gc = subprocess.Popen(command, env=env, cwd=tmp_path, stdout=subprocess.PIPE)
    deadline = time.monotonic() + 60
    while sum(path.exists() for path in files) == len(files) and time.monotonic() < deadline:
        time.sleep(0.01)
    gc.send_signal(signal.SIGKILL)  # somewhere in the first deletions
    gc.wait(10)
    left = get_sync_experiment_repository(settings.model_copy())
    remaining = [r.run_id for r in left.list_runs()]
    assert 0 < len(remaining) < len(ids)  # killed midway
    for run_id in remaining:  # what is listed reads whole
        assert left.get_run(run_id).artifacts
    done = subprocess.run(command, env=env, cwd=tmp_path, capture_output=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert {r["run_id"] for r in json.loads(done.stdout)["runs"]} == set(remaining)
    assert left.list_runs() == []
    assert not any(path.exists() for path in files)


def test_gc_refuses_bad_options_naming_them(tmp_path: Path) -> None:
    env = {**os.environ, "ML_STORAGE_PATH": str(tmp_path / "runs"), "PYTHONPATH": str(ROOT)}
    for arguments, expected in [
        (["--older-than", "30x"], "--older-than '30x' is not allowed"),
        (["--status", "running"], "--status 'running' is not allowed"),
        (["--keep-best", "2"], "--keep-best needs --by"),
    ]:
        done = subprocess.run(
            [sys.executable, "-m", "agentic_trading.cli.app", "experiments", "gc", *arguments],
            env=env, cwd=tmp_path, capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert done.returncode == 2 and expected in done.stderr, done.stderr
        assert "Traceback" not in done.stderr


def test_gc_removes_a_deleted_runs_finished_state_from_messaging(
    tmp_path: Path, redis_url: str, namespace: str
) -> None:
    from agentic_trading.messaging import SyncTrainingChannel
    from tests.conftest import delete_namespace

    settings = make_settings(
        ml_storage_path=str(tmp_path / "runs"),
        ml_capture_environment=False,
        ml_system_metrics_interval=0,
        message_broker_type="redis",
        redis_url=redis_url,
        message_namespace=namespace,
    )
    channel = SyncTrainingChannel(settings=settings)
    try:
        channel.create_experiment("tidy-live-1", {"agent": "PPO"})
        channel.publish_status("tidy-live-1", "failed", "boom")
        channel.flush()
        tracker = get_sync_tracker(settings)
        run = tracker.create_run("kept-tidy", {"experiment_id": "tidy-live-1"})
        tracker.finish_run(run, "failed", error="boom")
        tracker.flush()
        env = {
            **os.environ,
            "ML_STORAGE_PATH": settings.ml_storage_path,
            "MESSAGE_BROKER_TYPE": "redis",
            "REDIS_URL": redis_url,
            "MESSAGE_NAMESPACE": namespace,
            "PYTHONPATH": str(ROOT),
        }
        done = subprocess.run(
            [sys.executable, "-m", "agentic_trading.cli.app", "experiments", "gc"],
            env=env, cwd=tmp_path, capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        assert "1 run(s) deleted" in done.stdout
        assert channel.get_experiment("tidy-live-1") is None
    finally:
        channel.close()
        delete_namespace(redis_url, namespace)
