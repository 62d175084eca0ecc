"""`make bench`: run every benchmark, print a table, write JSON under benchmarks/results/."""

from __future__ import annotations

import json
import sys

from rich.console import Console
from rich.table import Table

from benchmarks import (
    bench_catalogue,
    bench_dashboard,
    bench_evaluation,
    bench_messaging,
    bench_mlflow,
    bench_pbt,
    bench_remote,
    bench_runs,
    bench_studies,
    bench_tracking,
    bench_training,
)
from benchmarks.common import save


def main() -> int:
    """``python -m benchmarks.run [messaging] [tracking] [remote] [training] [dashboard]
    [evaluation] [studies] [catalogue] [mlflow] [runs] [pbt]``: those suites, default all."""
    wanted = set(sys.argv[1:]) or {
        "messaging", "tracking", "remote", "training", "dashboard", "evaluation", "studies",
        "catalogue", "mlflow", "runs", "pbt",
    }  # fmt: skip
    console = Console()
    if "messaging" in wanted:
        messaging(console)
    if "tracking" in wanted:
        tracking(console)
    if "remote" in wanted:
        remote(console)
    if "training" in wanted:
        training(console)
    if "dashboard" in wanted:
        dashboard(console)
    if "evaluation" in wanted:
        evaluation(console)
    if "studies" in wanted:
        studies(console)
    if "catalogue" in wanted:
        catalogue(console)
    if "mlflow" in wanted:
        mlflow(console)
    if "runs" in wanted:
        runs(console)
    if "pbt" in wanted:
        pbt(console)
    return 0


def pbt(console: Console) -> None:
    console.rule("pbt")
    result = bench_pbt.run()
    path = save("pbt", result)
    small, large = result["steps_per_member"]
    for mode in bench_pbt.MODES:
        table = Table(
            title=f"{mode} pbt run ({result['population']} members, {result['chunks']} chunks "
            "each) against plain SB3 of the same steps, interleaved"
        )
        for column in ("round", f"{small:,} steps: plain s", "pbt s", "steps trained",
                       "overhead", "per step", f"{large:,} steps: plain s", "pbt s",
                       "steps trained", "overhead", "per step", "share of training",
                       "s per run"):  # fmt: skip
            table.add_column(column)
        for n, row in enumerate(result["rounds"], 1):
            cells = [str(n)]
            for size in (small, large):
                one = row[mode][str(size)]
                cells += [str(one["plain_s"]), str(one["pbt_s"]), f"x{one['trained_x']:.2f}",
                          f"{one['overhead']:.0%}", f"{one['overhead_per_step']:.0%}"]  # fmt: skip
            cells += [f"{row[mode]['share_of_training']:.1%}", str(row[mode]["seconds_per_run"])]
            table.add_row(*cells)
        console.print(table)
        summary = result[mode]
        low, mid, high = summary["share_of_training_min_median_max"]
        console.print(
            f"{mode}: overhead on the training time (checkpoints, exploits, restores, records) "
            f"min/median/max {low:.1%} / {mid:.1%} / {high:.1%} (target < 10%); once per run: "
            + " / ".join(f"{v:.1f}" for v in summary["seconds_per_run_min_median_max"])
            + " s (Ray's start, the members' processes)"
        )
    console.print(f"written to {path}")


def runs(console: Console) -> None:
    console.rule("watching a run: console capture, system metrics, alerts")
    result = bench_runs.run()
    path = save("runs", result)
    capture, sample = result["console_capture"], result["system_sample"]
    low, mid, high = capture["extra_us_per_line_min_median_max"]
    console.print(
        f"console capture: +{mid} µs a printed line (min {low}, max {high}; a plain print "
        f"{capture['plain_us_per_line']} µs): {capture['share_at_1000_lines_per_second']:.3%} "
        "of a second at 1,000 lines/s (target < 1%)"
    )
    low, mid, high = sample["us_per_sample_min_median_max"]
    console.print(
        f"system sample: {mid} µs in the writer (min {low}, max {high}): "
        f"{sample['share_of_a_core_at_10s']:.5%} of a core at one every 10 s; calls on the "
        "training's path: 0 (target < 0.5%)"
    )
    low, mid, high = result["alert"]["us_per_notify_min_median_max"]
    console.print(
        f"an alert: {mid} µs its caller waits (min {low}, max {high}; target < 50 µs); a "
        "run's alerts are sent by its writer, off the training's path"
    )
    console.print(f"written to {path}")


def mlflow(console: Console) -> None:
    console.rule("mlflow")
    result = bench_mlflow.run()
    path = save("mlflow", result)
    table = Table(title="MLflow backend: caller cost (microseconds, p50) and points/s to the store")
    for column in ("store", "raw log_metric", "log_metrics", "cheaper", "raw log_batch pts/s",
                   "ours pts/s", "share"):  # fmt: skip
        table.add_column(column)
    for store in ("local_sqlite", "server_postgresql"):
        if store not in result:
            continue
        row = result[store]
        table.add_row(
            store,
            f"{row['raw']['log_metric_call']['p50_us']:.0f}",
            f"{row['ours']['log_metrics_call']['p50_us']:.1f}",
            f"{row['cheaper_at_p50']}x (>= 20x)",
            f"{row['raw']['log_batch_points_per_second']:,}",
            f"{row['ours']['points_per_second_to_store']:,}",
            f"{row['share_of_log_batch_throughput']:.0%} (>= 80%)",
        )
    console.print(table)
    console.print(f"written to {path}")


def catalogue(console: Console) -> None:
    console.rule("catalogue")
    result = bench_catalogue.run()
    path = save("catalogue", result)
    table = Table(
        title=f"run catalogue: milliseconds at {bench_catalogue.RUNS:,} runs (median of 5)"
    )
    databases = [name for name in ("sqlite", "postgresql") if name in result]
    for column in ("query", *databases, "target"):
        table.add_column(column)
    targets = {"page_of_50_newest_ms": "< 100", "page_of_50_by_sharpe_ms": "< 100",
               "page_of_50_filtered_by_config_ms": "< 100", "history_first_render_ms": "< 500"}  # fmt: skip
    for key in result["sqlite"]:
        if key.endswith("_ms"):
            cells = [str(result[name].get(key, "")) for name in databases]
            table.add_row(key.removesuffix("_ms"), *cells, targets.get(key, ""))
    console.print(table)
    tracked = result["tracked"]
    console.print(
        f"{tracked['runs']:,} tracked runs ({tracked['ms_per_tracked_run']} ms a run): page of 50 "
        f"{tracked['catalogue']['page_of_50_newest_ms']} ms from the catalogue, "
        f"{tracked['aim_only']['page_of_50_newest_ms']} ms from Aim alone "
        f"({tracked['speedup_page_of_50']}x); history first render "
        f"{tracked['catalogue']['history_first_render_ms']} vs "
        f"{tracked['aim_only']['history_first_render_ms']} ms"
    )
    writer = result["writer"]
    console.print(
        f"tracker points/s to Aim: {writer['points_per_second_without']:,} without the catalogue, "
        f"{writer['points_per_second_with']:,} with it: costs {writer['cost_fraction']:.1%} "
        "(target < 2%)"
    )
    console.print(f"written to {path}")


def training(console: Console) -> None:
    console.rule("training")
    result = bench_training.run()
    path = save("training", result)
    fresh = result["fresh_processes"]
    table = Table(
        title=f"ExperimentCallback, {result['timesteps']:,} PPO steps, each training in a fresh process"
    )
    for column in ("measure", "value", "target"):
        table.add_column(column)
    startup = fresh["startup_ms_median"]
    on_step = fresh["on_step_us_mean_median"]
    long = result["long_trainings"]
    spread = lambda f: f"{f['median']:.1%} ({f['min']:.1%} - {f['max']:.1%})" if f else "not run"  # noqa: E731
    rows = [
        ("start-up block, new repository", f"{startup['new_repository']} ms", "< 50 ms"),
        ("start-up block, existing repository", f"{startup['existing_repository']} ms", "< 50 ms"),
        ("whole learn kept of plain, seed cadence (median, min - max)", spread(fresh["kept_fraction_seed_cadence"]), ">= 90%"),
        ("whole learn kept of plain, every step", spread(fresh["kept_fraction_every_step"]), ">= 85%"),
        ("50,000 steps: kept of plain, seed cadence", spread(long["kept_fraction_seed_cadence"]), ">= 98%"),
        ("50,000 steps: kept of plain, every step", spread(long["kept_fraction_every_step"]), ">= 92%"),
        ("_on_step mean, seed cadence", f"{on_step['seed_cadence']} µs", "< 3 µs"),
        ("_on_step mean, every step", f"{on_step['every_step']} µs", "< 25 µs"),
        ("floor: an empty callback's _on_step, timed the same way", f"{on_step['empty']} µs", ""),
    ]  # fmt: skip
    for row in rows:
        table.add_row(*row)
    console.print(table)
    console.print(f"written to {path}")


def evaluation(console: Console) -> None:
    console.rule("evaluation")
    result = bench_evaluation.run()
    path = save("evaluation", result)
    stats = result["statistics_1000_trials"]
    table = Table(title=f"walk-forward: {result['folds']} folds x {result['seeds']} seeds")
    for column in ("measure", "value", "target"):
        table.add_column(column)
    table.add_row("the group, wall time", f"{result['group_seconds']} s", "")
    table.add_row("its train() calls one by one (anchor)", f"{result['trainings_seconds']} s", "")
    table.add_row(
        "added by the group (run, verdict, bootstrap)",
        f"{result['group_overhead_fraction']:.2%}",
        "< 5%",
    )
    table.add_row(
        "scoring and records inside train(), vs learn",
        f"{result['scoring_and_records_fraction_of_learn']:.2%}",
        "",
    )
    table.add_row(
        f"study verdict of {stats['trials']:,} trials (DSR + PBO, 12,870 splits)",
        f"{stats['study_verdict_seconds_median']} s",
        "",
    )
    table.add_row("PSR of one run", f"{stats['psr_of_one_run_us']} µs", "")
    console.print(table)
    console.print(f"written to {path}")


def studies(console: Console) -> None:
    console.rule("studies")
    result = bench_studies.run()
    path = save("studies", result)
    table = Table(
        title=f"study machinery per trial (a 2,000-step trial trains in {result['trial_2000_steps_seconds']} s)"
    )
    for column in (
        "storage",
        "machinery per trial",
        "of a trial",
        "raw SELECT 1",
        "raw INSERT+COMMIT",
        "target",
    ):
        table.add_column(column)
    for label in ("sqlite", "postgresql"):
        if label not in result:
            continue
        row = result[label]
        raw = row["raw_sqlalchemy"]
        table.add_row(
            label,
            f"{row['ms_per_trial']} ms",
            f"{row['fraction_of_2000_step_trial']:.2%}",
            f"{raw['select_us']} µs",
            f"{raw['insert_commit_us']} µs",
            "< 2%",
        )
    console.print(table)
    workers = result["workers"]
    table = Table(
        title=f"study run, {workers['trials']} equal trials of {workers['timesteps']:,} steps "
        "(SQLite): one worker against two, interleaved"
    )
    for column in ("round", "1 worker s", "cores busy", "2 workers s", "cores busy", "speed-up"):
        table.add_column(column)
    for n, row in enumerate(workers["rounds"], 1):
        one, two = row["1_worker"], row["2_workers"]
        table.add_row(
            str(n), str(one["seconds"]), str(one["cores_busy"]), str(two["seconds"]),
            str(two["cores_busy"]), f"{row['speedup']}x",
        )  # fmt: skip
    console.print(table)
    low, mid, high = workers["speedup_min_median_max"]
    console.print(f"speed-up min/median/max: {low} / {mid} / {high} (target >= 1.7)")
    for ray in result.get("ray_engine", {}).values():
        table = Table(
            title=f"the same study, {ray['trials']} trials of {ray['timesteps']:,} steps: two local "
            "workers against two Ray workers (a local Ray, its start-up included), interleaved"
        )
        for column in ("round", "local trials/min", "ray trials/min", "ray / local"):
            table.add_column(column)
        for n, row in enumerate(ray["rounds"], 1):
            table.add_row(
                str(n), str(row["local"]["trials_per_minute"]),
                str(row["ray"]["trials_per_minute"]), str(row["ratio"]),
            )  # fmt: skip
        console.print(table)
        low, mid, high = ray["ratio_min_median_max"]
        console.print(f"ray / local min/median/max: {low} / {mid} / {high} (target >= 0.9)")
    console.print(f"written to {path}")


def remote(console: Console) -> None:
    console.rule("tracking through aim server")
    result = bench_remote.run()
    path = save("remote", result)
    table = Table(title="tracking a step: local folder vs aim:// (same machine)")
    for column in ("", "caller p50 µs", "caller p99 µs", "points/s stored"):
        table.add_column(column)
    for key, label in (
        ("raw_aim_local", "raw Aim run.track, folder (anchor)"),
        ("raw_aim_remote", "raw Aim run.track, aim:// (anchor)"),
        ("tracker_local", "log_metrics, folder"),
        ("tracker_remote", "log_metrics, aim://"),
    ):
        row = result[key]
        table.add_row(
            label,
            f"{row['caller']['p50_us']:,.1f}",
            f"{row['caller']['p99_us']:,.1f}",
            f"{row['points_per_second_stored']:,}",
        )
    console.print(table)
    outage = result["catch_up"]
    console.print(
        f"outage: {outage['points_logged_during_outage']:,} points logged while the server was "
        f"down (caller p50 {outage['caller_during_outage']['p50_us']:.1f} µs); caught up in "
        f"{outage['seconds_to_catch_up']} s = {outage['points_per_second_catch_up']:,} points/s"
    )
    console.print(f"written to {path}")


def dashboard(console: Console) -> None:
    console.rule("dashboard")
    result = bench_dashboard.run()
    path = save("dashboard", result)
    live = result["live"]
    table = Table(title=f"dashboard with {result['runs']:,} runs (server time)")
    for column in ("measure", "value", "target"):
        table.add_column(column)
    for key, label in (
        ("landing_first_ms", "landing page, first render"),
        ("history_first_ms", "history page, first render"),
        ("landing_again_ms", "landing page, next dashboard"),
        ("history_again_ms", "history page, next dashboard"),
    ):
        table.add_row(label, f"{result[key]:,.0f} ms", "< 2,000 ms")
    table.add_row(
        f"live callback, {live['live_experiments']} live experiments, p50",
        f"{live['callback']['p50_us'] / 1000:.1f} ms",
        "< 50 ms",
    )
    table.add_row(
        "live callback p99",
        f"{live['callback']['p99_us'] / 1000:.1f} ms",
        "",
    )
    table.add_row(
        "raw redis-py pipeline HGETALL of the same hashes, p50",
        f"{live['raw_redis_pipeline_hgetall']['p50_us'] / 1000:.2f} ms",
        "anchor",
    )
    table.add_row("live response size, median", f"{live['response_bytes_median']:,} bytes", "")
    console.print(table)
    console.print(f"written to {path}")


def tracking(console: Console) -> None:
    console.rule("tracking")
    result = bench_tracking.run()
    path = save("tracking", result)
    caller = result["caller"]
    table = Table(title="tracking: cost to the training loop (microseconds)")
    for column in ("measure", "p50", "p99", "target"):
        table.add_column(column)
    table.add_row(
        "raw Aim run.track, 4 metrics",
        f"{caller['raw_run_track']['p50_us']:.1f}",
        f"{caller['raw_run_track']['p99_us']:.1f}",
        "anchor",
    )
    table.add_row(
        "SyncTracker.log_metrics(TrainingMetrics), 4 metrics",
        f"{caller['log_metrics_caller']['p50_us']:.1f}",
        f"{caller['log_metrics_caller']['p99_us']:.1f}",
        ">= 20x cheaper at p50",
    )
    console.print(table)
    console.print(
        f"log_metrics is {caller['cheaper_at_p50']}x cheaper at p50; points reach disk at "
        f"{caller['points_per_second_to_disk']}/s ({caller['values_per_second_to_disk']} values/s)"
        f", raw run.track inline: {caller['raw_points_per_second']}/s"
    )
    console.print("training (SB3 PPO, 4 metrics every step):", json.dumps(result["training"]))
    console.print("repository:", json.dumps(result["repository"]))
    console.print(f"written to {path}")


def messaging(console: Console) -> None:
    console.rule("messaging")
    result = bench_messaging.run()
    path = save("messaging", result)
    table = Table(title="messaging (microseconds)")
    for column in ("measure", "p50", "p99", "target"):
        table.add_column(column)
    raw = result["raw_redis"]
    rows = [
        ("raw redis-py PUBLISH round trip", raw["publish_round_trip"], ""),
        ("raw redis-py XADD round trip", raw["xadd_round_trip"], ""),
        ("raw XADD -> XREAD BLOCK (reader thread)", raw["xadd_to_xread_block"], "anchor"),
    ]
    for kind in ("memory", "redis"):
        r = result[kind]
        rows += [
            (
                f"{kind}: sync publish_progress (caller)",
                r["sync_publish_progress_caller"],
                "p50 <= 20",
            ),
            (f"{kind}: async publish_progress", r["async_publish_progress"], ""),
            (
                f"{kind}: publish -> subscriber"
                + (" (same loop)" if kind == "memory" else " (reader thread)"),
                r["publish_to_subscriber"],
                "p50 <= 60" if kind == "memory" else "<= 1.5x anchor",
            ),
        ]
    for name, stats, target in rows:
        table.add_row(name, f"{stats['p50_us']:.1f}", f"{stats['p99_us']:.1f}", target)
    console.print(table)
    console.print(f"redis publish->subscriber p50 vs raw: {result['redis_latency_vs_raw_p50']}x")
    console.print("training (SB3 PPO, progress every step):", json.dumps(result["training"]))
    console.print(f"written to {path}")


if __name__ == "__main__":
    sys.exit(main())
