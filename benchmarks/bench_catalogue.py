"""The run catalogue at scale: 100,000 runs filled straight into it (SQLite and PostgreSQL,
through its own write path, in bulk) and real tracked runs through Aim; a page of 50 (newest,
sorted by a final metric, filtered by config), counts, list_experiments, best_run and the
dashboard history's first render, against raw SQL on the same database and the Aim-only path;
and what the catalogue costs the tracker's points per second.

``BENCH_CATALOGUE_RUNS`` (default 100,000) and ``BENCH_CATALOGUE_TRACKED`` (default 2,000;
the issue's figure is 10,000, about 25 minutes of writing) size it.
"""

from __future__ import annotations

import os
import statistics
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import sqlalchemy as sa

from agentic_trading.config import load_settings
from agentic_trading.status import ExperimentStatus
from agentic_trading.tracking import (
    RunSummary,
    SyncExperimentRepository,
    get_sync_experiment_repository,
    get_sync_tracker,
)
from agentic_trading.tracking.catalogue import RunCatalogue
from benchmarks.bench_tracking import fill_repository

RUNS = int(os.environ.get("BENCH_CATALOGUE_RUNS", "100000"))
TRACKED = int(os.environ.get("BENCH_CATALOGUE_TRACKED", "2000"))
AGENTS = ("PPO", "A2C", "DQN")


def _ms(call: Callable[[], Any], repeat: int = 5) -> float:
    """Median milliseconds of ``repeat`` calls (after one warm-up)."""
    call()
    samples = []
    for _ in range(repeat):
        start = time.perf_counter()
        call()
        samples.append(time.perf_counter() - start)
    return round(statistics.median(samples) * 1000, 2)


def _synthetic(i: int, start: datetime) -> RunSummary:
    created = start + timedelta(seconds=i)
    status = ExperimentStatus.FAILED if i % 17 == 0 else ExperimentStatus.COMPLETED
    return RunSummary(
        run_id=f"{i + 1:024x}",
        experiment=f"study-{i % 20}",
        status=status,
        config={"agent_type": AGENTS[i % 3], "learning_rate": 1e-5 * (1 + i % 97),
                "gamma": 0.9 + (i % 10) / 100, "net": {"layers": 1 + i % 3}, "seed": i % 5},
        final_metrics={"sharpe_ratio": ((i * 7919) % 1000) / 250 - 2,
                       "total_profit": ((i * 104729) % 1000) / 5000 - 0.1},
        created_at=created,
        ended_at=created + timedelta(seconds=60),
        heartbeat_at=created + timedelta(seconds=60),
        host="bench",
        pid=1,
    )  # fmt: skip


def fill(catalogue: RunCatalogue, runs: int) -> float:
    """Runs written through the catalogue's own write path, 1,000 a transaction; seconds."""
    start_at = datetime(2026, 1, 1, tzinfo=UTC)
    started = time.perf_counter()
    for first in range(0, runs, 1000):
        catalogue.upsert(_synthetic(i, start_at) for i in range(first, min(runs, first + 1000)))
    catalogue.analyze()  # as reindex does after a bulk write (and autovacuum on PostgreSQL)
    return round(time.perf_counter() - started, 1)


def history_first_render(repo: SyncExperimentRepository) -> None:
    """What the history page asks for when it opens: its dropdowns, then its first page."""
    from agentic_trading.dashboard.pages import history

    context: Any = SimpleNamespace(repository=repo)
    history.layout(context)
    runs, _ = history.filter_runs(context, None, [], "all", "-created_at", 0)
    [history._row(run) for run in runs]


def queries(repo: SyncExperimentRepository, raw: sa.Engine | None) -> dict[str, float]:
    """The figures the issue asks for, in milliseconds (median of 5, warm)."""
    out = {
        "page_of_50_newest_ms": _ms(lambda: repo.list_runs(limit=50)),
        "page_of_50_by_sharpe_ms": _ms(
            lambda: repo.list_runs(order_by="-final_metrics.sharpe_ratio", limit=50)
        ),
        "page_of_50_filtered_by_config_ms": _ms(
            lambda: repo.list_runs(
                where=["config.agent_type == PPO", "config.learning_rate < 0.0002"], limit=50
            )
        ),
        "page_1000_of_50_by_sharpe_ms": _ms(
            lambda: repo.list_runs(order_by="-final_metrics.sharpe_ratio", limit=50, offset=50_000)
        ),
        "count_runs_ms": _ms(repo.count_runs),
        "list_experiments_ms": _ms(repo.list_experiments),
        "best_run_ms": _ms(lambda: repo.best_run("study-3", "sharpe_ratio")),
        "history_first_render_ms": _ms(lambda: history_first_render(repo)),
    }
    if raw is not None:
        newest = sa.text("SELECT * FROM runs ORDER BY created_at DESC LIMIT 50")
        by_metric = sa.text(
            "SELECT r.* FROM runs r JOIN run_metrics m ON m.run_id = r.run_id "
            "AND m.name = 'sharpe_ratio' ORDER BY m.value DESC LIMIT 50"
        )

        filtered = sa.text(
            "SELECT r.* FROM runs r WHERE EXISTS (SELECT 1 FROM run_config k WHERE "
            "k.run_id = r.run_id AND k.key = 'agent_type' AND k.text = 'PPO') AND EXISTS "
            "(SELECT 1 FROM run_config k WHERE k.run_id = r.run_id AND "
            "k.key = 'learning_rate' AND k.number < 0.0002) ORDER BY r.created_at DESC LIMIT 50"
        )

        def run(statement: Any) -> None:
            with raw.connect() as db:
                db.execute(statement).fetchall()

        out["raw_sql_newest_ms"] = _ms(lambda: run(newest))
        out["raw_sql_by_sharpe_ms"] = _ms(lambda: run(by_metric))
        out["raw_sql_filtered_by_config_ms"] = _ms(lambda: run(filtered))
    return out


def at_scale(url: str, folder: Path) -> dict[str, Any]:
    """Fill ``RUNS`` runs into the catalogue at ``url`` and time the queries."""
    catalogue = RunCatalogue(url)
    seconds = fill(catalogue, RUNS)
    assert len(catalogue.run_ids()) == RUNS, "the fill must write RUNS distinct runs"
    settings = load_settings(ml_storage_path=str(folder / "empty-aim"), ml_catalog_url=url)
    repo = get_sync_experiment_repository(settings)
    # The Aim side is empty here (100,000 tracked runs would take hours to write), so the
    # repository's own catch-up, which would drop runs Aim lacks, is timed on its own: the
    # catalogue's side of it, with Aim's list of runs equal to the catalogue's.
    repo._synced_at = float("inf")
    ids = catalogue.run_ids()
    catch_up = _ms(lambda: catalogue.sync(ids, lambda run_id: None, thorough=False))
    thorough = _ms(lambda: catalogue.sync(ids, lambda run_id: None), 3)
    return {
        "runs": RUNS,
        "fill_seconds": seconds,
        "fill_runs_per_second": round(RUNS / seconds),
        **queries(repo, catalogue.engine),
        "catch_up_check_ms": catch_up,
        "catch_up_id_by_id_ms": thorough,
    }


def tracked(folder: Path) -> dict[str, Any]:
    """``TRACKED`` real runs through the tracker: the catalogue against the Aim-only path."""
    settings = load_settings(ml_storage_path=str(folder / "aim"))
    _, seconds = fill_repository(settings, TRACKED)
    catalogue = get_sync_experiment_repository(settings)
    aim_only = get_sync_experiment_repository(
        settings.model_copy(update={"ml_catalog_url": "none"})
    )
    ours = queries(catalogue, None)
    reader = catalogue._reader
    ours["aim_run_ids_ms"] = _ms(lambda: (reader.refresh(), reader.run_ids()))
    catalogue._synced_at = 0.0  # a reader's first look: caught up with Aim, then the page
    ours["history_cold_first_render_ms"] = _ms(
        lambda: (setattr(catalogue, "_synced_at", 0.0), history_first_render(catalogue))
    )
    theirs = {
        "page_of_50_newest_ms": _ms(lambda: aim_only.list_runs(limit=50), 2),
        "page_of_50_by_sharpe_ms": _ms(
            lambda: aim_only.list_runs(order_by="-final_metrics.sharpe_ratio", limit=50), 2
        ),
        "list_experiments_ms": _ms(aim_only.list_experiments, 2),
        "history_first_render_ms": _ms(lambda: history_first_render(aim_only), 2),
    }
    return {
        "runs": TRACKED,
        "fill_seconds": round(seconds, 1),
        "ms_per_tracked_run": round(seconds / TRACKED * 1000, 1),
        "catalogue": ours,
        "aim_only": theirs,
        "speedup_page_of_50": round(
            theirs["page_of_50_newest_ms"] / max(ours["page_of_50_newest_ms"], 0.01), 1
        ),
    }


def writer_cost(folder: Path, points: int = 20_000, rounds: int = 3) -> dict[str, Any]:
    """Points per second reaching Aim with and without the catalogue, rounds interleaved."""
    rates: dict[str, list[float]] = {"none": [], "sqlite": []}
    for round_ in range(rounds):
        for kind in rates:
            path = folder / f"writer-{kind}-{round_}"
            settings = load_settings(
                ml_storage_path=str(path),
                ml_catalog_url="none" if kind == "none" else None,
                ml_queue_size=points * 2,
            )
            tracker = get_sync_tracker(settings)
            run = tracker.create_run("bench", {"kind": kind})
            tracker.flush()
            start = time.perf_counter()
            for step in range(points):
                tracker.log_metrics(run, {"reward": float(step), "loss": 0.1}, step=step)
            tracker.finish_run(run, "completed", {"total_reward": 1.0})
            tracker.flush()
            rates[kind].append(points / (time.perf_counter() - start))
            tracker.close()
    none, sqlite = statistics.median(rates["none"]), statistics.median(rates["sqlite"])
    return {
        "points": points,
        "points_per_second_without": round(none),
        "points_per_second_with": round(sqlite),
        "cost_fraction": round(1 - sqlite / none, 4),
    }


def run() -> dict[str, Any]:
    from tests import postgres

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        out: dict[str, Any] = {
            "sqlite": at_scale(f"sqlite:///{root / 'catalogue.db'}", root / "sqlite"),
        }
        if postgres.shared_available():
            with postgres.database() as url:
                out["postgresql"] = at_scale(url, root / "postgresql")
        out["tracked"] = tracked(root / "tracked")
        out["writer"] = writer_cost(root / "writer")
        return out
