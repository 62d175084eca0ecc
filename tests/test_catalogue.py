"""The run catalogue and the model registry, on SQLite and on PostgreSQL, against the Aim-only
path on the same runs; reindex against the live catalogue; the catalogue's database down during
a training; hostile filters, sort keys, names and aliases."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from agentic_trading.common.databases import sqlalchemy_url
from agentic_trading.config import Settings
from agentic_trading.models import ModelRegistry, RegistryError, get_model_registry
from agentic_trading.status import ExperimentStatus
from agentic_trading.tracking import (
    CatalogueUnavailableError,
    RunNotFoundError,
    RunSummary,
    SyncExperimentRepository,
    get_sync_experiment_repository,
    get_sync_tracker,
)
from agentic_trading.tracking.catalogue import RunCatalogue, RunQuery
from agentic_trading.tracking.catalogue.schema import SCHEMA_VERSION
from tests import postgres
from tests.conftest import make_settings

ROOT = Path(__file__).resolve().parents[1]
CATALOGUES = ["sqlite", "postgresql"]


@contextmanager
def catalogue_url(kind: str, folder: Path) -> Iterator[str]:
    """A fresh, empty catalogue database of ``kind``."""
    if kind == "sqlite":
        yield f"sqlite:///{folder / f'catalogue-{time.monotonic_ns()}.db'}"
        return
    if not postgres.shared_available():
        pytest.skip("no PostgreSQL at 127.0.0.1:5432")
    with postgres.database() as url:
        yield url


def run_cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "agentic_trading.cli.app", *args],
        env={**os.environ, "MESSAGE_BROKER_TYPE": "memory", **env},
        capture_output=True,
        text=True,
        timeout=180,
        cwd=ROOT,
    )


def worker(mode: str, experiment: str, points: int, env: dict[str, str]) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "tests.tracking_worker", mode, experiment, str(points)],
        env={**os.environ, "PYTHONPATH": str(ROOT), **env},
        stdout=subprocess.PIPE,
        text=True,
        cwd=ROOT,
        start_new_session=True,
    )


def seen(runs: list[RunSummary]) -> list[tuple[Any, ...]]:
    """What a reader relies on of each run, in the order given."""
    return [
        (r.run_id, r.experiment, r.status.value, r.final_metrics, r.config, r.tags) for r in runs
    ]


# --- the catalogue agrees with the Aim-only path -----------------------------------------------


@pytest.fixture(scope="module")
def written(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """An Aim repository with a live (SQLite) catalogue: two experiments, every status, configs
    with numbers, words, booleans and nested keys, study trials and a walk-forward group; one
    run still running and one whose process was killed."""
    folder = tmp_path_factory.mktemp("agree")
    # No heartbeat while the two paths are compared: a beat in between would move "last
    # activity" for one of them only.
    settings = make_settings(
        ml_storage_path=str(folder / "aim"), ml_heartbeat_interval=120, ml_heartbeat_timeout=300
    )
    tracker = get_sync_tracker(settings)
    plan = [
        ("alpha", "PPO", 1e-3, True, "completed", 0.9, {"study": "s1", "trial": 0}),
        ("alpha", "PPO", 3e-4, False, "completed", 1.4, {"study": "s1", "trial": 1}),
        ("alpha", "A2C", 1e-4, True, "failed", None, {"study": "s1", "trial": 2}),
        ("beta", "PPO", 3e-4, True, "completed", -0.2, {"group_id": "g" * 24, "fold": 0}),
        ("beta", "DQN", 5e-4, False, "completed", 2.5, {"group_id": "g" * 24, "fold": 1}),
        ("beta", "PPO", 2e-3, False, "cancelled", 0.1, {}),
        ("alpha", "A2C", 7e-4, True, "completed", 1.4, {}),  # a tie on sharpe_ratio
    ]
    ids, middle = [], None
    for i, (experiment, agent, lr, flag, status, sharpe, extra) in enumerate(plan):
        config = {"agent_type": agent, "learning_rate": lr, "use_sde": flag,
                  "net": {"layers": 1 + i % 3}, **extra}  # fmt: skip
        run = tracker.create_run(experiment, config)
        tracker.log_metrics(run, {"reward": float(i)}, step=0)
        final = {} if sharpe is None else {"sharpe_ratio": sharpe, "total_profit": sharpe / 10}
        tracker.finish_run(run, status, final, error="boom" if status == "failed" else None)
        ids.append(run.run_id)
        if i == 3:
            tracker.flush()
            middle = datetime.now(UTC)
            time.sleep(0.05)
    live = tracker.create_run("beta", {"agent_type": "PPO", "learning_rate": 1e-3})
    tracker.flush()
    env = {"ML_STORAGE_PATH": settings.ml_storage_path, "ML_HEARTBEAT_INTERVAL": "120",
           "ML_HEARTBEAT_TIMEOUT": "300"}  # fmt: skip
    killed = worker("hang", "alpha", 5, env)
    assert killed.stdout is not None
    killed_id = killed.stdout.readline().strip()
    assert killed.stdout.readline().strip() == "flushed"
    os.killpg(killed.pid, signal.SIGKILL)  # the training and its writer: nobody records it
    killed.wait(10)
    yield {"settings": settings, "ids": ids, "middle": middle, "live": live.run_id,
           "killed": killed_id, "folder": folder}  # fmt: skip
    tracker.finish_run(live)
    tracker.close()


QUERIES: list[dict[str, Any]] = [
    {},
    {"experiment": "alpha"},
    *({"status": s.value} for s in ExperimentStatus),
    {"status": ["completed", "cancelled"]},
    {"order_by": "-final_metrics.sharpe_ratio"},
    {"order_by": "final_metrics.sharpe_ratio"},
    {"order_by": "config.learning_rate"},
    {"order_by": "-config.learning_rate"},
    {"order_by": "config.agent_type"},
    {"order_by": "created_at"},
    {"order_by": "experiment"},
    {"order_by": "-final_metrics.sharpe_ratio", "limit": 3, "offset": 1},
    # pages that end, straddle and pass where runs without the metric begin
    *(
        {"order_by": order, "limit": limit, "offset": offset}
        for order in ("-final_metrics.sharpe_ratio", "final_metrics.total_profit")
        for limit, offset in ((6, 0), (3, 5), (2, 7), (5, 20))
    ),
    {"order_by": "final_metrics.sharpe_ratio", "limit": 4, "offset": 3, "experiment": "beta"},
    {"order_by": "created_at", "limit": 2, "offset": 7},
    {"where": ["final_metrics.sharpe_ratio > 0.5"]},
    {"where": ["final_metrics.sharpe_ratio >= 1.4", "config.agent_type == PPO"]},
    {"where": ["config.agent_type != PPO"]},
    {"where": ["config.net.layers <= 2"], "experiment": "beta"},
    {"where": ["config.use_sde == true"]},
    {"where": ["config.learning_rate < 0.0005"], "order_by": "config.learning_rate"},
    {"study": "s1", "order_by": "config.trial"},
    {"group": "g" * 24},
    {"study": "none-such"},
]


@pytest.mark.parametrize("kind", CATALOGUES)
def test_the_catalogue_answers_as_the_aim_only_path(
    written: dict[str, Any], kind: str, tmp_path: Path
) -> None:
    settings: Settings = written["settings"]
    aim_only = get_sync_experiment_repository(
        settings.model_copy(update={"ml_catalog_url": "none"})
    )
    assert aim_only.catalogue is None
    with catalogue_url(kind, tmp_path) as url:
        # sqlite: the catalogue the writers kept; postgresql: a new one, filled on first read.
        update = {} if kind == "sqlite" else {"ml_catalog_url": url}
        repo = get_sync_experiment_repository(settings.model_copy(update=update))
        assert repo.catalogue is not None
        assert {r.run_id for r in repo.list_runs()} == {
            *written["ids"],
            written["live"],
            written["killed"],
        }
        statuses = {r.run_id: r.status for r in repo.list_runs()}
        assert statuses[written["killed"]] is ExperimentStatus.CRASHED
        assert statuses[written["live"]] is ExperimentStatus.RUNNING
        for query in QUERIES:
            filters = {k: v for k, v in query.items() if k not in ("order_by", "limit", "offset")}
            assert seen(repo.list_runs(**query)) == seen(aim_only.list_runs(**query)), query
            assert repo.count_runs(**filters) == aim_only.count_runs(**filters), query
        since = {"since": written["middle"]}
        assert seen(repo.list_runs(**since)) == seen(aim_only.list_runs(**since))
        for metric, mode in (("sharpe_ratio", "max"), ("sharpe_ratio", "min"), ("x", "max")):
            for experiment in ("alpha", "beta"):
                ours, theirs = (
                    repo.best_run(experiment, metric, mode),
                    aim_only.best_run(experiment, metric, mode),
                )
                assert (ours and ours.run_id) == (theirs and theirs.run_id), (experiment, mode)
            assert repo.list_experiments(metric, mode) == aim_only.list_experiments(metric, mode)
        assert repo.metric_names() == aim_only.metric_names() == ["sharpe_ratio", "total_profit"]
        assert repo.experiment_names() == aim_only.experiment_names() == ["alpha", "beta"]
        some = [*written["ids"], written["live"]]
        for metrics in (None, ["sharpe_ratio", "reward"]):
            ours_c, theirs_c = (
                repo.compare_runs(some, metrics),
                aim_only.compare_runs(some, metrics),
            )
            assert ours_c.table == theirs_c.table and ours_c.best == theirs_c.best, metrics
            assert ours_c.config_diff == theirs_c.config_diff
        assert repo.compare_runs([written["live"]], ["reward"]).table[written["live"]] == {
            "reward": None
        }
        with pytest.raises(RunNotFoundError):
            repo.compare_runs([written["ids"][0], "f" * 24])


# --- the schema ---------------------------------------------------------------------------------


def _shape(url: str) -> dict[str, Any]:
    import sqlalchemy as sa

    engine = sa.create_engine(sqlalchemy_url(url))
    try:
        inspector = sa.inspect(engine)
        return {
            table: {
                "columns": sorted(
                    (c["name"], str(c["type"]), c["nullable"]) for c in inspector.get_columns(table)
                ),
                "primary_key": inspector.get_pk_constraint(table)["constrained_columns"],
                "indexes": sorted(
                    (i["name"], tuple(i["column_names"])) for i in inspector.get_indexes(table)
                ),
                "foreign_keys": sorted(
                    (tuple(f["constrained_columns"]), f["referred_table"])
                    for f in inspector.get_foreign_keys(table)
                ),
            }
            for table in sorted(inspector.get_table_names())
        }
    finally:
        engine.dispose()


@pytest.mark.parametrize("kind", CATALOGUES)
def test_a_new_catalogue_has_the_schema_the_migrations_build(kind: str, tmp_path: Path) -> None:
    """A new catalogue is created at once (no Alembic run) and stamped; it must be exactly what
    the migrations build, or an upgrade later would start from the wrong place."""
    import sqlalchemy as sa

    from agentic_trading.tracking.catalogue import database

    with catalogue_url(kind, tmp_path) as created, catalogue_url(kind, tmp_path) as migrated:
        RunCatalogue(created).run_ids()  # opened: created at once
        engine = sa.create_engine(sqlalchemy_url(migrated))
        with engine.begin() as connection:
            database._migrate(connection)  # built by the migrations
        engine.dispose()
        assert _shape(created) == _shape(migrated)
        with sa.create_engine(sqlalchemy_url(created)).connect() as db:
            assert db.execute(sa.text("SELECT version_num FROM alembic_version")).all() == [
                (SCHEMA_VERSION,)
            ]


# --- reindex, catching up ----------------------------------------------------------------------


_OPEN_AT = """
import sys, time
from agentic_trading.tracking.catalogue.database import connect
url, at = sys.argv[1], float(sys.argv[2])
time.sleep(max(0.0, at - time.time()))  # every process at the same instant
connect(url)
print("opened")
"""


@pytest.mark.parametrize("kind", CATALOGUES)
def test_several_processes_opening_a_new_catalogue_at_once_all_open_it(
    kind: str, tmp_path: Path
) -> None:
    # Several writers of a study start at once on a new catalogue: one creates the tables, the
    # others wait for it and find them (they used to race to create them too, and fail).
    with catalogue_url(kind, tmp_path) as url:
        at = time.time() + 5  # after every interpreter has started
        processes = [
            subprocess.Popen(
                [sys.executable, "-c", _OPEN_AT, url, str(at)],
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
                cwd=ROOT,
            )
            for _ in range(12)
        ]
        results = [process.communicate(timeout=60) for process in processes]
        assert [out.strip() for out, _ in results] == ["opened"] * 12, [e for _, e in results]
        assert RunCatalogue(url).list_runs(RunQuery()) == []


@pytest.mark.parametrize("kind", CATALOGUES)
def test_reindex_equals_the_live_catalogue_of_several_writers_one_killed(
    kind: str, tmp_path: Path
) -> None:
    with catalogue_url(kind, tmp_path) as url:
        env = {"ML_STORAGE_PATH": str(tmp_path / "aim"), "ML_CATALOG_URL": url}
        finishing = [worker("finish", "many", 200, env) for _ in range(3)]
        killed = worker("hang", "many", 50, env)
        assert killed.stdout is not None
        killed_id = killed.stdout.readline().strip()
        assert killed.stdout.readline().strip() == "flushed"
        os.killpg(killed.pid, signal.SIGKILL)
        killed.wait(10)
        ids = [proc.communicate(timeout=120)[0].split()[0] for proc in finishing]

        settings = make_settings(ml_storage_path=env["ML_STORAGE_PATH"], ml_catalog_url=url)
        catalogue = RunCatalogue(url)
        live = catalogue.list_runs(RunQuery(order_by="run_id"))  # as the writers left it
        assert sorted(r.run_id for r in live) == sorted([*ids, killed_id])
        finished = [r for r in live if r.run_id in ids]
        assert all(r.status is ExperimentStatus.COMPLETED for r in finished)
        assert all(r.final_metrics == {"total_reward": 200.0} for r in finished)

        result = run_cli("experiments", "reindex", "--json", env=env)
        assert result.returncode == 0, result.stderr
        report = json.loads(result.stdout)
        assert (report["added"], report["fixed"], report["removed"], report["runs"]) == (0, 0, 0, 4)

        rebuilt_url = f"sqlite:///{tmp_path / 'rebuilt.db'}"
        rebuilt = get_sync_experiment_repository(
            settings.model_copy(update={"ml_catalog_url": rebuilt_url})
        )
        assert rebuilt.reindex().added == 4
        repo = get_sync_experiment_repository(settings)
        assert seen(rebuilt.list_runs(order_by="run_id")) == seen(repo.list_runs(order_by="run_id"))
        assert repo.get_run(killed_id).status is ExperimentStatus.CRASHED


def test_runs_written_without_a_catalogue_are_caught_up(tmp_path: Path) -> None:
    settings = make_settings(ml_storage_path=str(tmp_path / "aim"), ml_catalog_url="none")
    tracker = get_sync_tracker(settings)
    ids = []
    for reward in (1.0, 2.0, 3.0):
        run = tracker.create_run("late", {"reward": reward})
        tracker.finish_run(run, "completed", {"total_reward": reward})
        ids.append(run.run_id)
    tracker.close()
    assert not (tmp_path / "aim" / "catalogue.db").exists()

    repo = get_sync_experiment_repository(settings.model_copy(update={"ml_catalog_url": None}))
    assert repo.catalogue is not None  # the default: catalogue.db beside .aim
    best = repo.best_run("late", "total_reward")
    assert best is not None and best.run_id == ids[2]
    assert [r.run_id for r in repo.list_runs(order_by="-final_metrics.total_reward")] == ids[::-1]
    assert (tmp_path / "aim" / "catalogue.db").exists()

    aim_only = get_sync_experiment_repository(settings)
    aim_only.delete_run(ids[0])  # behind the catalogue's back
    report = repo.reindex()
    assert (report.added, report.removed) == (0, 1)
    assert [r.run_id for r in repo.list_runs()] == ids[:0:-1]


# --- faults -------------------------------------------------------------------------------------


def test_catalogue_database_down_during_a_training_loses_nothing(tmp_path: Path) -> None:
    server = postgres.PostgresServer().start()
    try:
        url = server.url
        settings = make_settings(ml_storage_path=str(tmp_path / "aim"), ml_catalog_url=url)
        env = {"ML_STORAGE_PATH": settings.ml_storage_path, "ML_CATALOG_URL": url}
        tracker = get_sync_tracker(settings)
        first = tracker.create_run("outage", {"n": 1})
        tracker.log_metrics(first, {"reward": 0.0}, step=0)
        tracker.flush()
        server.stop()
        # Down: the training goes on, nothing raises, Aim records everything.
        for step in range(1, 200):
            tracker.log_metrics(first, {"reward": float(step)}, step=step)
        tracker.finish_run(first, "completed", {"total_reward": 199.0})
        second = tracker.create_run("outage", {"n": 2})
        tracker.flush()
        reader = run_cli("experiments", "list", env=env)
        assert reader.returncode == 1 and "Traceback" not in reader.stderr
        where = f"run catalogue at postgresql+psycopg://postgres@127.0.0.1:{server.port}/postgres"
        assert where in reader.stderr and "does not answer" in reader.stderr
        assert len(reader.stderr.strip().splitlines()) <= 3  # one line, wrapped by the console
        aim_only = get_sync_experiment_repository(
            settings.model_copy(update={"ml_catalog_url": "none"})
        )
        assert aim_only.get_run(first.run_id).final_metrics == {"total_reward": 199.0}

        server.start()
        # Back: the writer's own queue catches the catalogue up while the training runs.
        deadline = time.monotonic() + 20
        rows: list[RunSummary] = []
        while time.monotonic() < deadline and [r.status for r in rows] != [
            ExperimentStatus.COMPLETED,
            ExperimentStatus.RUNNING,
        ]:
            tracker.log_metrics(second, {"reward": 1.0}, step=0)  # the writer retries on work
            tracker.flush()
            time.sleep(0.3)
            try:
                rows = RunCatalogue(url).list_runs(RunQuery(order_by="created_at"))
            except CatalogueUnavailableError:
                rows = []
        assert [(r.run_id, r.final_metrics) for r in rows] == [
            (first.run_id, {"total_reward": 199.0}),
            (second.run_id, {}),
        ]
        tracker.finish_run(second, "completed", {"total_reward": 2.0})
        tracker.flush()
        finished = RunCatalogue(url).list_runs(RunQuery(order_by="created_at"))
        assert finished[1].final_metrics == {"total_reward": 2.0}
        tracker.close()
        listed = run_cli("experiments", "list", "--json", env=env)
        assert listed.returncode == 0, listed.stderr
        assert {r["run_id"] for r in json.loads(listed.stdout)} == {first.run_id, second.run_id}
    finally:
        server.remove()


# --- hostile input ------------------------------------------------------------------------------


def test_hostile_filters_sort_keys_names_and_aliases_are_refused_or_bound(
    written: dict[str, Any],
) -> None:
    repo = get_sync_experiment_repository(written["settings"])
    before = repo.count_runs()
    for bad in ("1=1; DROP TABLE runs", "final_metrics.x > 1 OR 1=1", "config.a == ", "x > 1",
                "final_metrics.a;b > 1", "config." + "k" * 300 + " == 1"):  # fmt: skip
        with pytest.raises(ValueError, match="is not allowed"):
            repo.list_runs(where=[bad])
    # A hostile value is a value: bound as a parameter, it matches nothing and harms nothing.
    for value in ("PPO' OR '1'='1", "PPO; DROP TABLE runs; --", "%", "_"):
        assert repo.list_runs(where=[f"config.agent_type == {value}"]) == []
    for key in ("final_metrics.x; DROP TABLE runs", "config.lr desc, (select 1)", "-", "id"):
        with pytest.raises(ValueError, match="order_by"):
            repo.list_runs(order_by=key)
    assert repo.count_runs() == before
    registry = ModelRegistry(repo.current_catalogue())  # type: ignore[arg-type]
    for name in ("x'; DROP TABLE models; --", "../up", "", "a" * 200, "a b"):
        with pytest.raises(ValueError, match="model name"):
            registry.register(written["ids"][0], name)
        with pytest.raises(ValueError, match=r"model name|model reference"):
            registry.resolve(f"{name}@champion")
    for alias in ("Champion", "a b", "x';--", "", "a" * 65):
        with pytest.raises(ValueError, match="alias"):
            registry.promote("m", 1, alias)
    with pytest.raises(RegistryError, match="no model 'nothing'"):
        registry.model("nothing")
    assert repo.count_runs() == before


# --- the model registry -------------------------------------------------------------------------


def _fake_completed_run(catalogue: RunCatalogue, run_id: str) -> None:
    """A completed run with a model, written through the writer's own catalogue calls."""
    now = time.time()
    catalogue.open_run(run_id, "race", {"agent_type": "PPO"}, [], now, "host", 1)
    catalogue.update(run_id, artifacts={"model.zip": f"file:///nowhere/{run_id}/model.zip"})
    catalogue.close_run(run_id, ExperimentStatus.COMPLETED, {"sharpe_ratio": 1.0}, None, now)


RACE = """
import sys
from agentic_trading.models import ModelRegistry
from agentic_trading.tracking.catalogue import RunCatalogue

registry = ModelRegistry(RunCatalogue(sys.argv[1]))
me = int(sys.argv[2])
registered = [registry.register(f"run{me}{i:022d}", "raced").version for i in range(5)]
seen = set()
for i in range(40):
    registry.promote("raced", 1 + (me + i) % 2, "champion")
    seen.add(registry.resolve("raced@champion").version)
print(registered, sorted(seen))
"""


@pytest.mark.parametrize("kind", CATALOGUES)
def test_racing_registrations_and_promotions_leave_one_champion(kind: str, tmp_path: Path) -> None:
    with catalogue_url(kind, tmp_path) as url:
        catalogue = RunCatalogue(url)
        for me in range(2):
            for i in range(5):
                _fake_completed_run(catalogue, f"run{me}{i:022d}")
        procs = [
            subprocess.Popen(
                [sys.executable, "-c", RACE, url, str(me)], stdout=subprocess.PIPE, text=True
            )
            for me in range(2)
        ]
        outputs = [proc.communicate(timeout=120)[0] for proc in procs]
        assert all(proc.returncode == 0 for proc in procs), outputs
        registered = [v for out in outputs for v in json.loads(out.split("] ")[0] + "]")]
        assert sorted(registered) == list(range(1, 11))  # no number given twice, none skipped
        model = ModelRegistry(catalogue).model("raced")
        assert list(model.aliases) == ["champion"] and model.aliases["champion"] in (1, 2)
        assert sum("champion" in v.aliases for v in model.versions) == 1


@pytest.fixture(scope="module", params=["aim", "mlflow-server"])
def trained(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, Any]]:
    """One real (short) PPO training on EUR/USD, with its model stored: in a local Aim
    repository, or through a real ``mlflow server`` (its model then in MLflow's artifact store,
    the registry mirrored into MLflow's, the catalogue in PostgreSQL)."""
    from agentic_trading.training import TrainingConfig, train

    folder = tmp_path_factory.mktemp("registry")
    with contextlib.ExitStack() as stack:
        env = {"ML_STORAGE_PATH": str(folder / "store")}
        if request.param == "mlflow-server":
            env |= {
                "ML_TRACKING_BACKEND": "mlflow",
                "MLFLOW_TRACKING_URI": request.getfixturevalue("mlflow_server_url"),
                "ML_CATALOG_URL": stack.enter_context(postgres.database()),
            }
        settings = make_settings(
            message_broker_type="memory", **{k.lower(): v for k, v in env.items()}
        )
        outcome = train(TrainingConfig(timesteps=128, n_steps=64, batch_size=32), settings=settings)
        assert outcome.status is ExperimentStatus.COMPLETED
        yield {"settings": settings, "run_id": outcome.run_id, "env": env}


def test_register_promote_and_load_in_a_fresh_process(trained: dict[str, Any]) -> None:
    env = trained["env"]
    run_id = trained["run_id"]
    done = run_cli("models", "register", run_id, "EURUSD-PPO", "--json", env=env)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["version"] == 1
    registry = get_model_registry(trained["settings"])
    assert registry.register(run_id, "EURUSD-PPO").version == 2
    registry.promote("EURUSD-PPO", 1, "champion")
    moved = run_cli("models", "promote", "EURUSD-PPO", "2", "--alias", "champion", env=env)
    assert moved.returncode == 0 and "EURUSD-PPO@champion is now version 2 (was version 1)" in (
        moved.stdout
    )
    shown = json.loads(run_cli("models", "show", "EURUSD-PPO", "--json", env=env).stdout)
    assert shown["aliases"] == {"champion": 2}
    assert [v["run_id"] for v in shown["versions"]] == [run_id, run_id]
    version = shown["versions"][1]
    assert version["config"]["agent_type"] == "PPO" and "feature_mean" in str(version["config"])
    assert version["verdict"]["verdict_label"] in ("skill", "luck", "trails")
    assert [m.name for m in registry.models()] == ["EURUSD-PPO"]

    script = (
        "import numpy as np\n"
        "from agentic_trading.models import load_model\n"
        "from agentic_trading.training.data import load_prices\n"
        "m = load_model('EURUSD-PPO@champion')\n"
        "closes = load_prices('EUR_USD')['Close'].to_numpy()\n"
        "action, _ = m.model.predict(m.observation(closes), deterministic=True)\n"
        "print(m.version.reference, int(action), m.act(closes), m.verdict['verdict_label'])\n"
    )
    fresh = subprocess.run(
        [sys.executable, "-c", script], env={**os.environ, **env}, capture_output=True,
        text=True, timeout=120, cwd=ROOT,
    )  # fmt: skip
    assert fresh.returncode == 0, fresh.stderr
    reference, action, position, label = fresh.stdout.split()
    assert reference == "EURUSD-PPO/2" and int(action) in (0, 1, 2)
    assert float(position) in (-1.0, 0.0, 1.0) and label == version["verdict"]["verdict_label"]
    checked = run_cli("models", "load", "EURUSD-PPO@champion", "--json", env=env)
    assert json.loads(checked.stdout)["position_on_last_bar"] == float(position)

    if trained["settings"].ml_tracking_backend == "mlflow":
        _mlflow_registry_agrees(trained["settings"], run_id)

    for args, message in (
        (("models", "load", "EURUSD-PPO@staging"), "has no alias 'staging' (it has: champion)"),
        (("models", "register", "0" * 24, "X"), "no run '000000000000000000000000'"),
    ):
        failed = run_cli(*args, env=env)
        assert failed.returncode != 0 and message in failed.stderr, failed.stderr
        assert "Traceback" not in failed.stderr


def _mlflow_registry_agrees(settings: Settings, run_id: str) -> None:
    """MLflow's own client sees the same versions and alias, and loads the champion by
    ``models:/NAME@champion``."""
    import mlflow
    from stable_baselines3 import PPO

    client = mlflow.MlflowClient(settings.mlflow_store_uri())
    champion = client.get_model_version_by_alias("EURUSD-PPO", "champion")
    assert champion.tags["agentic.version"] == "2" and champion.tags["agentic.run_id"] == run_id
    assert sorted(
        v.tags["agentic.version"] for v in client.search_model_versions("name = 'EURUSD-PPO'")
    ) == ["1", "2"]
    run = client.get_run(champion.run_id)
    assert run.data.tags["agentic.run_id"] == run_id
    mlflow.set_tracking_uri(settings.mlflow_store_uri())  # as MLFLOW_TRACKING_URI does
    try:
        local = mlflow.artifacts.download_artifacts("models:/EURUSD-PPO@champion")
    finally:
        mlflow.set_tracking_uri(None)
    assert PPO.load(Path(local) / "model.zip", device="cpu").observation_space is not None


def test_only_a_completed_run_with_a_model_is_registered(tmp_path: Path) -> None:
    catalogue = RunCatalogue(f"sqlite:///{tmp_path / 'c.db'}")
    now = time.time()
    catalogue.open_run("a" * 24, "x", {}, [], now, "h", 1)
    registry = ModelRegistry(catalogue)
    with pytest.raises(RegistryError, match="is running: only a completed run"):
        registry.register("a" * 24, "m")
    catalogue.close_run("a" * 24, ExperimentStatus.COMPLETED, {}, None, now)
    with pytest.raises(RegistryError, match=r"stored no model\.zip"):
        registry.register("a" * 24, "m")
    with pytest.raises(RegistryError, match="no run 'b"):
        registry.register("b" * 24, "m")


def test_the_catalogue_setting_is_checked_and_masked(tmp_path: Path) -> None:
    env = {"ML_STORAGE_PATH": str(tmp_path / "aim"), "ML_CATALOG_URL": "mysql://u:secret@h/db"}
    result = run_cli("experiments", "list", env=env)
    assert result.returncode == 2 and "ML_CATALOG_URL" in result.stderr
    assert "secret" not in result.stderr and "Traceback" not in result.stderr


def test_repository_without_a_catalogue_says_so_for_reindex(tmp_path: Path) -> None:
    repo: SyncExperimentRepository = get_sync_experiment_repository(
        make_settings(ml_storage_path=str(tmp_path / "aim"), ml_catalog_url="none")
    )
    with pytest.raises(Exception, match="there is no run catalogue"):
        repo.reindex()
