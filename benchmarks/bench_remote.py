"""Tracking through Aim's server (``aim://``) against a local folder: what a logged step costs
the training loop, how fast points reach the repository, and how fast a trainer catches up
after the server was away. Anchor: raw Aim SDK ``run.track`` to the same server."""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Any

from tests.aim_server import AimServer

from agentic_trading.config import load_settings
from agentic_trading.tracking import TrainingMetrics, get_sync_tracker
from benchmarks.common import percentiles

POINTS = 3000
OUTAGE_POINTS = 20_000
VALUES = {"loss": 0.045, "reward": 1250.5, "episode_length": 100.0, "entropy": 0.69}


def raw_track(location: str) -> dict[str, Any]:
    import aim

    run = aim.Run(
        repo=location, experiment="bench-raw", system_tracking_interval=None,
        log_system_params=False, capture_terminal_logs=False,
    )  # fmt: skip
    samples = []
    for step in range(POINTS):
        start = time.perf_counter()
        run.track(VALUES, step=step)
        samples.append(time.perf_counter() - start)
    begun = time.perf_counter()
    run.close()
    closing = time.perf_counter() - begun
    return {
        "caller": percentiles(samples),
        "points_per_second_stored": round(POINTS / (sum(samples) + closing)),
    }


def tracked(location: str) -> dict[str, Any]:
    tracker = get_sync_tracker(load_settings(ml_storage_path=location))
    run = tracker.create_run("bench-ours", {})
    tracker.flush()
    samples = []
    begun = time.perf_counter()
    for step in range(POINTS):
        start = time.perf_counter()
        tracker.log_metrics(run, TrainingMetrics(step=step, **VALUES))
        samples.append(time.perf_counter() - start)
    tracker.finish_run(run)
    stored = time.perf_counter() - begun
    tracker.close()
    return {"caller": percentiles(samples), "points_per_second_stored": round(POINTS / stored)}


def catch_up(server: AimServer) -> dict[str, Any]:
    """The server stops; the trainer logs OUTAGE_POINTS points; the server comes back."""
    tracker = get_sync_tracker(load_settings(ml_storage_path=server.url))
    run = tracker.create_run("bench-outage", {})
    tracker.flush()
    server.stop()
    samples = []
    for step in range(OUTAGE_POINTS):
        start = time.perf_counter()
        tracker.log_metrics(run, TrainingMetrics(step=step, **VALUES))
        samples.append(time.perf_counter() - start)
    server.start()
    back = time.perf_counter()
    tracker.finish_run(run)  # returns once everything logged is on the server
    caught_up = time.perf_counter() - back
    tracker.close()
    return {
        "points_logged_during_outage": OUTAGE_POINTS,
        "caller_during_outage": percentiles(samples),
        "seconds_to_catch_up": round(caught_up, 2),
        "points_per_second_catch_up": round(OUTAGE_POINTS / caught_up),
    }


def run() -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        server = AimServer(root / "server").start()
        try:
            result = {
                "raw_aim_local": raw_track(str(root / "raw-local")),
                "raw_aim_remote": raw_track(server.url),
                "tracker_local": tracked(str(root / "local")),
                "tracker_remote": tracked(server.url),
            }
            result["catch_up"] = catch_up(server)
        finally:
            server.stop()
    remote, local = result["tracker_remote"], result["tracker_local"]
    result["remote_vs_local_caller_p50"] = round(
        remote["caller"]["p50_us"] / local["caller"]["p50_us"], 2
    )
    result["remote_vs_local_stored_rate"] = round(
        remote["points_per_second_stored"] / local["points_per_second_stored"], 2
    )
    result["tracker_vs_raw_remote_caller_p50"] = round(
        result["raw_aim_remote"]["caller"]["p50_us"] / remote["caller"]["p50_us"], 1
    )
    return result


if __name__ == "__main__":
    import json

    print(json.dumps(run(), indent=2))
