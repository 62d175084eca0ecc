"""Studies: Optuna studies whose trials are real trainings, live, tracked, pruned and judged."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from agentic_trading.cli.app import app
from agentic_trading.config import Settings
from agentic_trading.messaging.channels.sync import SyncTrainingChannel
from agentic_trading.studies import (
    SearchSpace,
    SpaceError,
    StudyError,
    StudySpec,
    create_study,
    enqueue_trials,
    judge,
    list_studies,
    load_study,
    run_worker,
    trial_rows,
)
from agentic_trading.studies.attributes import trial_info
from agentic_trading.studies.spec import DEFAULT_TIMESTEPS
from agentic_trading.tracking import get_sync_experiment_repository
from tests import postgres
from tests.aim_server import stop_process, wait_for_port
from tests.conftest import delete_namespace, make_settings
from tests.redis_server import free_port
from tests.trainings import wait_until

ROOT = Path(__file__).resolve().parents[1]
CLI = [sys.executable, "-m", "agentic_trading.cli.app"]

#: Small, cheap trials: what the tests search.
TINY_SPACE = {
    "learning_rate": {"low": 1e-4, "high": 3e-3, "log": True},
    "n_steps": [64, 128],
    "n_epochs": [1, 3],
    "net_arch": ["tiny"],
}

# --- search spaces ------------------------------------------------------------------------------


@pytest.mark.parametrize("agent", ["ppo", "a2c", "dqn", "sac", "td3"])
def test_builtin_spaces_are_valid(agent: str) -> None:
    space = SearchSpace.builtin(agent)
    assert space.parameters and not space.fixed
    assert SearchSpace.from_mapping(space.as_data(), agent) == space


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("", "empty; give at least one parameter"),
        ("lr: [0.1]", "unknown parameter 'lr' for PPO"),
        ("learning_rate: {low: 1.0e-3, high: 1.0e-5}", "low 0.001 >= high 1e-05; an empty range"),
        ("learning_rate: {low: 0, high: 0.1, log: true}", "log-scaled, so low must be above 0"),
        ("n_steps: {low: 4, high: 64}", "n_steps=4 is not allowed"),
        ("n_steps: []", "n_steps has no choices"),
        ("net_arch: [tiny, tiny]", "lists a choice twice"),
        ("net_arch: [huge]", "net_arch='huge' is not allowed"),
        ("gamma: {low: a, high: 1}", "gamma.low must be a number"),
        ("gamma: {low: 0.9, high: 0.99, sigma: 1}", "unknown key(s) sigma"),
        ("n_epochs: {low: 1.5, high: 3, type: int}", "int range, so low and high must be whole"),
        ("ent_coef: 0.01", "every parameter is fixed; nothing is searched"),
        ("clip_range: [", "not readable YAML"),
        ("buffer_size: [100]", "unknown parameter 'buffer_size'"),
    ],
)
def test_a_bad_search_space_is_one_clear_error(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "space.yaml"
    path.write_text(content)
    with pytest.raises(SpaceError, match=message.replace("(", r"\(").replace(")", r"\)")):
        SearchSpace.from_file(path, "ppo")


def test_a_space_file_as_people_write_it(tmp_path: Path) -> None:
    path = tmp_path / "space.yaml"
    path.write_text(
        "learning_rate: {low: 1e-5, high: 2e-3, log: true}   # YAML reads 1e-5 as text\n"
        "n_steps: [128, 256]\nn_epochs: {low: 3, high: 20}\nent_coef: 0.0\n"
    )
    space = SearchSpace.from_file(path, "PPO")
    assert space.parameters["learning_rate"].low == 1e-5
    assert space.parameters["n_epochs"].kind == "int"
    assert space.fixed == {"ent_coef": 0.0}


# --- creating studies ---------------------------------------------------------------------------


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return make_settings(
        ml_storage_path=str(tmp_path / "aim"),
        study_storage=f"sqlite:///{tmp_path / 'studies.db'}",
        study_heartbeat_interval=1,
        study_grace_period=4,
    )


def tiny_spec(name: str, **overrides: Any) -> StudySpec:
    values: dict[str, Any] = {
        "name": name,
        "space": TINY_SPACE,
        "trials": 4,
        "timesteps": 512,
        "eval_every": 128,
        "base": {"window_size": 5},
    }
    values.update(overrides)
    return StudySpec(**values)


def env_of(settings: Settings, **extra: str) -> dict[str, str]:
    return {
        "ML_STORAGE_PATH": settings.ml_storage_path,
        "STUDY_STORAGE": settings.study_storage,
        "STUDY_HEARTBEAT_INTERVAL": str(settings.study_heartbeat_interval),
        "STUDY_GRACE_PERIOD": str(settings.study_grace_period),
        **extra,
    }


def test_study_create_refuses_bad_input_and_creates_nothing(
    settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in env_of(settings).items():
        monkeypatch.setenv(name, value)
    runner = CliRunner()
    ok = runner.invoke(app, ["study", "create", "first", "--trials", "3", "--json"])
    assert ok.exit_code == 0, ok.output
    assert json.loads(ok.output)["trials"] == 3
    listed = runner.invoke(app, ["study", "list", "--json"])
    assert json.loads(listed.output)[0]["created_at"] is not None  # before any trial ran

    empty = tmp_path / "empty.yaml"
    empty.write_text("# nothing\n")
    unknown = tmp_path / "unknown.yaml"
    unknown.write_text("learning_rate: {low: 1.0e-5, high: 1.0e-3}\nmomentum: [0.9]\n")
    cases = [
        (["first"], "a study named 'first' already exists"),
        (["second", "--objective", "accuracy"], "objective 'accuracy' is not a validation metric"),
        (["second", "--space", str(empty)], "empty; give at least one parameter"),
        (["second", "--space", str(unknown)], "unknown parameter 'momentum'"),
        (["second", "--space", str(tmp_path / "missing.yaml")], "no such file"),
        (["second", "--pruner", "patient"], "pruner='patient' is not allowed"),
        (["second", "--eval-every", "5000", "--timesteps", "1000"], "exceeds the trial's"),
        (
            ["second", "--features", "nope"],
            "base settings refused: features: unknown feature 'nope'",
        ),
        (["second", "--reward", "pnl"], "base settings refused: reward: Input should be 'net'"),
    ]
    for args, message in cases:
        result = runner.invoke(app, ["study", "create", *args])
        assert result.exit_code == 2, (args, result.output)
        assert message in " ".join(result.output.split()), (args, result.output)
        assert "Traceback" not in result.output
    monkeypatch.setenv("STUDY_STORAGE", "postgresql://postgres:s3cret@127.0.0.1:1/nothing")
    down = runner.invoke(app, ["study", "create", "third"])
    assert down.exit_code == 1 and "cannot be opened" in down.output  # the work failed
    assert "s3cret" not in down.output and "********" in down.output
    assert [s.name for s in list_studies(settings)] == ["first"]  # nothing half-created


# --- running studies ----------------------------------------------------------------------------


def trials_by_state(settings: Settings, name: str) -> dict[str, list[Any]]:
    study, _ = load_study(name, settings)
    out: dict[str, list[Any]] = {}
    for row in trial_rows(study.get_trials()):
        out.setdefault(row.state, []).append(row)
    return out


def assert_tracked(settings: Settings, name: str) -> None:
    """Every finished trial is a tracked run of the study, with the same final status."""
    study, _ = load_study(name, settings)
    runs = {r.run_id: r for r in get_sync_experiment_repository(settings).list_runs(study=name)}
    for trial in study.get_trials():
        if trial.state.name not in ("COMPLETE", "PRUNED"):
            continue
        run = runs[trial_info(trial)["run_id"]]
        assert run.config["study"] == name and run.config["trial"] == trial.number
        assert run.config["params"] == trial.params
        expected = "completed" if trial.state.name == "COMPLETE" else "pruned"
        assert run.status.value == expected, (trial.number, run.status, run.error)
        if expected == "completed":
            objective = study.user_attrs["agentic_trading"]["objective"]
            assert run.final_metrics[f"validation_{objective}"] == pytest.approx(trial.value)


class LiveWatcher:
    """Polls a messaging namespace and remembers every experiment it saw running."""

    def __init__(self, settings: Settings) -> None:
        self.channel = SyncTrainingChannel(settings=settings)
        self.running: set[str] = set()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._poll, daemon=True)

    def _poll(self) -> None:
        while not self._stop.is_set():
            try:
                for state in self.channel.list_experiments("running"):
                    self.running.add(state.experiment_id)
            except Exception:
                pass
            time.sleep(0.2)

    def __enter__(self) -> LiveWatcher:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join(5)
        self.channel.close()


@pytest.fixture
def redis_namespace(redis_url: str, namespace: str) -> Iterator[dict[str, str]]:
    yield {"MESSAGE_BROKER_TYPE": "redis", "REDIS_URL": redis_url, "MESSAGE_NAMESPACE": namespace}
    delete_namespace(redis_url, namespace)


@pytest.mark.redis
@pytest.mark.xdist_group("heavy")  # see tests/test_load.py
@pytest.mark.parametrize("engine", ["local", "ray"])
def test_a_study_on_sqlite_with_two_workers(
    settings: Settings, redis_namespace: dict[str, str], engine: str
) -> None:
    """Two worker processes on this machine, or two Ray tasks on a Ray started for the run:
    every trial is in Optuna, live, and tracked, whichever engine ran it."""
    name = f"two-{engine}-{uuid.uuid4().hex[:6]}"
    create_study(tiny_spec(name, trials=4, pruner="successive_halving"), settings)
    env = {**os.environ, **env_of(settings, **redis_namespace), "COLUMNS": "160"}
    watched = settings.model_copy(
        update={
            "message_broker_type": "redis",
            "redis_url": redis_namespace["REDIS_URL"],
            "message_namespace": redis_namespace["MESSAGE_NAMESPACE"],
        }
    )
    with LiveWatcher(watched) as watcher:
        done = subprocess.run(
            [*CLI, "study", "run", name, "--workers", "2", "--engine", engine],
            env=env, capture_output=True, text=True, timeout=300, check=False, cwd=ROOT,
        )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert f"{name}: PPO" in done.stdout
    where = "a local Ray" if engine == "ray" else "sqlite:"
    assert f"2 {'Ray workers' if engine == 'ray' else 'workers'} on study {name} ({where}" in (
        done.stdout
    )
    assert re.search(r"[45]/4 trials done", " ".join(done.stdout.split())), done.stdout
    states = trials_by_state(settings, name)
    finished = states.get("complete", []) + states.get("pruned", [])
    assert 4 <= len(finished) <= 5  # two workers may both start the last trial
    assert not states.get("fail") and not states.get("running")
    assert len({row.worker for row in finished}) == 2  # both workers ran trials
    # Every trial was a live experiment with progress, and ended as its trial did; the
    # complete ones (long enough for a poll every 0.2 s to catch) were seen running.
    live = SyncTrainingChannel(settings=watched)
    for row in finished:
        state = live.get_experiment(row.experiment_id)
        assert state is not None and state.current_step > 0, row
        assert state.status.value == ("completed" if row.state == "complete" else "pruned")
        if row.state == "complete":
            assert row.experiment_id in watcher.running, row
    live.close()
    assert_tracked(settings, name)
    listed = subprocess.run(
        [*CLI, "experiments", "list", "--study", name, "--json", "--limit", "20"],
        env=env, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert {r["run_id"] for r in json.loads(listed.stdout)} == {r.run_id for r in finished}


def test_the_ray_engine_says_which_extra_to_install(settings: Settings, tmp_path: Path) -> None:
    name = f"no-ray-{uuid.uuid4().hex[:6]}"
    create_study(tiny_spec(name), settings)
    hidden = tmp_path / "hide"
    hidden.mkdir()
    (hidden / "ray.py").write_text("raise ImportError(\"No module named 'ray'\")\n")
    env = {**os.environ, **env_of(settings), "PYTHONPATH": str(hidden)}
    done = subprocess.run(
        [*CLI, "study", "run", name, "--engine", "ray"],
        env=env, capture_output=True, text=True, timeout=120, check=False, cwd=ROOT,
    )  # fmt: skip
    assert done.returncode == 2, done.stderr
    assert done.stderr.strip() == (
        "error: the Ray engine needs Ray: pip install 'agentic-trading[ray]'"
    )
    bad = subprocess.run(
        [*CLI, "study", "run", name, "--engine", "slurm"],
        env=env, capture_output=True, text=True, timeout=120, check=False, cwd=ROOT,
    )  # fmt: skip
    assert bad.returncode == 2 and "--engine 'slurm' is not allowed: use local or ray" in bad.stderr


@pytest.mark.skipif(not postgres.shared_available(), reason="no PostgreSQL at 127.0.0.1:5432")
def test_a_study_on_postgresql_prunes_and_judges(tmp_path: Path) -> None:
    with postgres.database() as url:
        settings = make_settings(
            ml_storage_path=str(tmp_path / "aim"),
            study_storage=url,
            study_heartbeat_interval=1,
            study_grace_period=4,
        )
        name = "pg-study"
        create_study(tiny_spec(name, trials=1, pruner="median"), settings)
        # Fixed trials in a fixed order (one worker): a good one first, then hopeless ones.
        good = {"learning_rate": 3e-4, "n_steps": 128, "n_epochs": 3, "net_arch": "tiny"}
        enqueue_trials(name, dict(good), settings)
        enqueue_trials(name, {**good, "learning_rate": 2.9e-3, "n_epochs": 1}, settings, count=2)
        report = run_worker(name, settings, poll_interval=0.5)
        assert report.reason == "the budget of 4 trials is spent"
        states = trials_by_state(settings, name)
        assert len(states.get("complete", [])) + len(states.get("pruned", [])) == 4
        assert_tracked(settings, name)
        study, _ = load_study(name, settings)
        verdict = judge(study.get_trials())
        assert verdict is not None and verdict.trials == 4
        assert "DSR" in verdict.summary()
        shown = CliRunner().invoke(app, ["study", "show", name, "--json"], env=env_of(settings))
        data = json.loads(shown.output)
        assert data["finished"] == 4 and data["budget"] == 4
        assert data["verdict"]["label"] in ("skill", "luck")
        assert all(t["run_id"] for t in data["trials"])
        # The two hopeless trials (the same fixed parameters and seed: the same scores) fell
        # below the first trial's validation Sharpe at the same step and were pruned there.
        pruned = {row.number for row in states.get("pruned", [])}
        assert {1, 2} <= pruned, states
        for row in states.get("pruned", []):
            assert row.intermediate and row.last_step is not None and row.last_step < 512


def test_a_trial_whose_policy_churns_is_flagged_with_what_to_do(settings: Settings) -> None:
    name = f"churn-{uuid.uuid4().hex[:6]}"
    create_study(tiny_spec(name, trials=1, timesteps=256, eval_every=256), settings)
    enqueue_trials(
        name, {"learning_rate": 3e-4, "n_steps": 64, "n_epochs": 3, "net_arch": "tiny"}, settings
    )  # 256 steps: a policy that trades nearly every bar for nothing (measured)
    run_worker(name, settings, poll_interval=0.5)
    shown = CliRunner().invoke(
        app, ["study", "show", name], env={**env_of(settings), "COLUMNS": "300"}
    )
    assert shown.exit_code == 0, shown.output
    text = " ".join(shown.output.split())
    assert re.search(r"warning: [12] churn \(costs above their gain before costs\)", text), text
    assert (
        f"trials of 256 steps may be too short to learn: try --timesteps {DEFAULT_TIMESTEPS:,}"
        in text
    )
    data = json.loads(
        CliRunner().invoke(app, ["study", "show", name, "--json"], env=env_of(settings)).output
    )
    assert "churn (costs above their gain before costs)" in data["warning"]
    study, _ = load_study(name, settings)
    record = study.get_trials()[0].user_attrs["validation"]
    assert record["warning"].startswith("it churns: a unit traded every")


def test_optuna_dashboard_shows_the_same_study(settings: Settings, tmp_path: Path) -> None:
    name = "seen-by-optuna-dashboard"
    create_study(tiny_spec(name), settings)
    enqueue_trials(name, {"n_steps": 64}, settings, count=2)
    port = free_port()
    server = subprocess.Popen(
        [
            str(Path(sys.executable).with_name("optuna-dashboard")),
            settings.study_storage,
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        wait_for_port(port, server, timeout=30)  # type: ignore[arg-type]
        import urllib.request

        def get(path: str) -> Any:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as reply:
                return json.loads(reply.read())

        (summary,) = get("/api/studies")["study_summaries"]
        assert summary["study_name"] == name and summary["directions"] == ["maximize"]
        detail = get(f"/api/studies/{summary['study_id']}")
        assert [t["state"] for t in detail["trials"]] == ["Waiting", "Waiting"]
        assert detail["trials"][0]["fixed_params"][0]["name"] == "n_steps"
    finally:
        stop_process(server)  # type: ignore[arg-type]


def test_enqueue_checks_parameters(settings: Settings) -> None:
    create_study(tiny_spec("queue"), settings)
    with pytest.raises(StudyError, match="momentum are not searched"):
        enqueue_trials("queue", {"momentum": 0.9}, settings)
    with pytest.raises(ValueError, match="n_steps"):
        enqueue_trials("queue", {"n_steps": 2}, settings)
    numbers = enqueue_trials("queue", {"n_steps": 64, "seed": 9}, settings, count=2)
    study, spec = load_study("queue", settings)
    waiting = [t for t in study.get_trials() if t.state.name == "WAITING"]
    assert [t.number for t in waiting] == numbers
    assert all(t.user_attrs["seed"] == 9 for t in waiting)
    assert spec.trials == 6  # the budget grew with the queued trials
    with pytest.raises(StudyError, match="no study 'nope'"):
        load_study("nope", settings)


# --- faults -------------------------------------------------------------------------------------


def running_trial(name: str, settings: Settings) -> Any:
    """A running trial of study ``name`` whose run has started, or None."""
    study, _ = load_study(name, settings)
    return next(
        (
            t
            for t in study.get_trials()
            if t.state.name == "RUNNING" and trial_info(t).get("run_id")
        ),
        None,
    )


def start_worker(env: dict[str, str], name: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [*CLI, "study", "worker", name],
        env={**os.environ, **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
    )


@pytest.mark.stress  # make test kills a worker in tests/test_multi_host.py, across hosts
def test_a_killed_workers_trial_is_rerun_by_another(settings: Settings) -> None:
    name = "killed-worker"
    create_study(tiny_spec(name, trials=2, timesteps=2048, eval_every=1024), settings)
    env = env_of(settings)
    first = start_worker(env, name)

    try:
        victim = wait_until(lambda: running_trial(name, settings), 120, "a running trial")
        time.sleep(1.0)
        first.kill()  # SIGKILL mid-trial: no goodbye to Optuna, messaging or tracking
        first.wait(10)
        second = start_worker(env, name)
        _out, err = second.communicate(timeout=240)
        assert second.returncode == 0, err
    finally:
        for proc in (first,):
            if proc.poll() is None:
                proc.kill()
    study, _ = load_study(name, settings)
    trials = {t.number: t for t in study.get_trials()}
    assert trials[victim.number].state.name == "FAIL"  # failed by the heartbeat...
    retries = [t for t in trials.values() if t.system_attrs.get("failed_trial") == victim.number]
    assert len(retries) == 1 and retries[0].state.name in ("COMPLETE", "PRUNED")  # ...re-run
    assert retries[0].params == victim.params
    finished = [t for t in trials.values() if t.state.name in ("COMPLETE", "PRUNED")]
    assert len(finished) == 2  # the budget, not one trial more
    run = get_sync_experiment_repository(settings).get_run(trial_info(victim)["run_id"])
    assert run.status.value == "crashed"  # the dead trial's run, as tracking tells it


def start_ray_study(name: str, settings: Settings) -> subprocess.Popen[str]:
    """``study run NAME --engine ray --workers 1`` on a Ray it starts."""
    return subprocess.Popen(
        [*CLI, "study", "run", name, "--engine", "ray", "--workers", "1"],
        env={**os.environ, **env_of(settings)}, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True, cwd=ROOT,
    )  # fmt: skip


@pytest.mark.xdist_group("heavy")  # see tests/test_load.py
def test_ctrl_c_on_a_ray_engine_study_cancels_its_running_trials(settings: Settings) -> None:
    """Ray's workers train in child processes: Ctrl-C on ``study run`` reaches them through
    Ray's cancel, and each running trial ends cancelled, as with hand-started workers."""
    name = f"ray-ctrl-c-{uuid.uuid4().hex[:6]}"
    create_study(tiny_spec(name, trials=4, timesteps=50_000, eval_every=10_000), settings)
    run = start_ray_study(name, settings)
    try:
        trial = wait_until(lambda: running_trial(name, settings), 120, "a running trial")
        run.send_signal(signal.SIGINT)
        out, err = run.communicate(timeout=90)
    finally:
        if run.poll() is None:
            run.kill()
    assert run.returncode == 130, err
    assert "stopping: each worker ends its trial as cancelled" in out
    study, _ = load_study(name, settings)
    ended = next(t for t in study.get_trials() if t.number == trial.number)
    assert ended.state.name == "FAIL" and trial_info(ended)["status"] == "cancelled"
    assert [t.state.name for t in study.get_trials()] == ["FAIL"]  # nothing ran on after it


def test_a_child_started_with_exit_with_parent_dies_when_its_parent_does() -> None:
    """The Ray task's child: when the task's process dies, the child's stdin closes and it
    exits at once (its trial left to its heartbeat, as a killed worker's)."""
    child = subprocess.Popen(
        [sys.executable, "-c", "import time; from agentic_trading.common.parent import "
         "exit_with_parent; exit_with_parent(); print('up', flush=True); time.sleep(60)"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert child.stdout is not None and child.stdout.readline() == "up\n"
        assert child.poll() is None
        assert child.stdin is not None
        child.stdin.close()  # as the parent's death closes it
        assert child.wait(timeout=10) == 137
    finally:
        if child.poll() is None:
            child.kill()


@pytest.mark.stress
def test_a_ray_worker_killed_mid_trial_is_restarted_and_its_trial_rerun(
    settings: Settings,
) -> None:
    """A lost node's worker, on one machine: SIGKILL to the Ray worker process running a trial.
    Ray starts the task again; the dead trial is failed by its heartbeat and run again."""
    import psutil

    name = "killed-ray-worker"
    create_study(tiny_spec(name, trials=2, timesteps=8192, eval_every=1024), settings)
    run = start_ray_study(name, settings)
    try:
        wait_until(lambda: running_trial(name, settings), 180, "a running trial")
        time.sleep(1.0)  # into its training
        victim = running_trial(name, settings)
        workers = [
            p for p in psutil.process_iter(["cmdline"])
            if "ray::_worker_task" in " ".join(p.info["cmdline"] or [])
        ]  # fmt: skip
        assert len(workers) == 1, workers
        workers[0].kill()
        out, err = run.communicate(timeout=400)
    finally:
        if run.poll() is None:
            run.kill()
    assert run.returncode == 0, err
    study, _ = load_study(name, settings)
    trials = {t.number: t for t in study.get_trials()}
    assert trials[victim.number].state.name == "FAIL"
    retries = [t for t in trials.values() if t.system_attrs.get("failed_trial") == victim.number]
    assert len(retries) == 1 and retries[0].state.name in ("COMPLETE", "PRUNED")
    assert retries[0].params == victim.params
    assert sum(t.state.name in ("COMPLETE", "PRUNED") for t in trials.values()) == 2
    assert "2/2 trials done" in " ".join(out.split())


@pytest.mark.stress
def test_postgresql_restarted_mid_study_loses_and_repeats_nothing(tmp_path: Path) -> None:
    server = postgres.PostgresServer().start()
    try:
        with postgres.database(server.host, server.port) as url:
            settings = make_settings(
                ml_storage_path=str(tmp_path / "aim"),
                study_storage=url,
                study_heartbeat_interval=2,
                study_grace_period=30,
            )
            name = "restarted"
            create_study(tiny_spec(name, trials=3, timesteps=3072, eval_every=1024), settings)
            worker = start_worker(env_of(settings), name)
            try:
                wait_until(
                    lambda: any(
                        t.state.name == "RUNNING" and t.intermediate_values
                        for t in load_study(name, settings)[0].get_trials()
                    ),
                    120,
                    "a trial that reported a validation score",
                )
                server.stop()  # the database goes away mid-trial...
                time.sleep(5)
                server.start()  # ...and comes back
                _out, err = worker.communicate(timeout=300)
            finally:
                if worker.poll() is None:
                    worker.kill()
            assert worker.returncode == 0, err
            assert "did not answer" in err and "answers again" in err  # one line each
            study, _ = load_study(name, settings)
            trials = study.get_trials()
            assert [
                t.state.name for t in trials if t.state.name not in ("COMPLETE", "PRUNED")
            ] == []
            assert len(trials) == 3  # nothing lost, nothing run twice
            assert len({trial_info(t)["run_id"] for t in trials}) == 3
    finally:
        server.remove()


def test_sigterm_to_a_worker_cancels_its_trial_and_it_exits_143(settings: Settings) -> None:
    name = "terminated-worker"
    create_study(tiny_spec(name, trials=3, timesteps=20_000, eval_every=5000), settings)
    worker = start_worker(env_of(settings), name)
    try:
        trial = wait_until(lambda: running_trial(name, settings), 120, "a running trial")
        time.sleep(1.0)
        worker.send_signal(signal.SIGTERM)  # as systemd, Kubernetes or Slurm would
        out, err = worker.communicate(timeout=60)
    finally:
        if worker.poll() is None:
            worker.kill()
    assert worker.returncode == 143, err
    study, _ = load_study(name, settings)
    ended = next(t for t in study.get_trials() if t.number == trial.number)
    assert ended.state.name == "FAIL" and trial_info(ended)["status"] == "cancelled"
    assert [t.state.name for t in study.get_trials()] == ["FAIL"]  # no trial started after it
    run = get_sync_experiment_repository(settings).get_run(trial_info(ended)["run_id"])
    assert run.status.value == "cancelled" and run.error == "terminated by SIGTERM"
    # One word for it everywhere: cancelled, without Optuna's "failed" and its traceback.
    assert "Traceback" not in err and "TrialCancelled" not in err, err
    assert "worker done: 1 cancelled" in " ".join(out.split()), out
