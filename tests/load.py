"""Load: many simulated experiments publishing through Redis while a subscriber, the dashboard's
live callback and ``monitor --once --json`` read.

    python -m tests.load [--experiments 100] [--seconds 60] [--redis-url URL]

prints a JSON report (and ``make stress`` writes it to benchmarks/results/load.json). The
short version runs in ``make test`` (tests/test_load.py).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path
from typing import Any

from agentic_trading.config import load_settings
from agentic_trading.messaging import SyncTrainingChannel, TrainingChannel
from tests.dash_requests import UPDATE_PATH, refresh_body

PROGRESS_HZ = 10
METRICS_HZ = 1


def _pct(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


def run_load(
    redis_url: str, namespace: str, experiments: int = 100, seconds: float = 60.0
) -> dict[str, Any]:
    """Publish from ``experiments`` simulated trainings for ``seconds``; report what readers saw."""
    settings = load_settings(
        message_broker_type="redis", redis_url=redis_url, message_namespace=namespace
    )
    ids = [f"load-{i:03d}" for i in range(experiments)]
    received: dict[str, list[str]] = {eid: [] for eid in ids}
    latencies: list[float] = []
    events = 0
    done = threading.Event()
    ready = threading.Event()

    async def subscribe() -> None:
        nonlocal events
        channel = TrainingChannel(settings=settings, heartbeats=False)
        cursor = await channel.last_event_id()
        ready.set()
        finished = 0
        async for event in channel.subscribe(last_event_id=cursor, poll_interval=0.5):
            events += 1
            if event.state is None or event.experiment_id not in received:
                continue
            now = time.time()
            if event.type.value == "progress":
                latencies.append(now - event.ts)
            elif event.type.value in ("created", "status"):
                received[event.experiment_id].append(event.state.status.value)
                if event.state.status.is_finished:
                    finished += 1
                    if finished == experiments:
                        break
        await channel.close()
        done.set()

    subscriber = threading.Thread(
        target=lambda: asyncio.run(subscribe()), name="load-subscriber", daemon=True
    )
    subscriber.start()
    ready.wait(10)

    dashboard_ms: list[float] = []
    monitor_counts: list[int] = []
    stop_readers = threading.Event()

    def read_dashboard() -> None:
        from agentic_trading.dashboard.app import create_app

        app = create_app(settings)
        client = app.server.test_client()
        view = None
        while not stop_readers.wait(1.0):
            start = time.perf_counter()
            response = client.post(
                UPDATE_PATH,
                json=refresh_body(view),
            )
            if view is not None:  # the first call renders every row: not a refresh
                dashboard_ms.append((time.perf_counter() - start) * 1000)
            if response.status_code == 200:
                data = response.get_json()["response"].get("live-view")
                view = data["data"] if data else view
        app.context.feed.close()

    def read_monitor() -> None:
        env = {
            **os.environ,
            "MESSAGE_BROKER_TYPE": "redis",
            "REDIS_URL": redis_url,
            "MESSAGE_NAMESPACE": namespace,
        }
        while not stop_readers.wait(2.0):
            result = subprocess.run(
                [sys.executable, "-m", "agentic_trading.cli.app", "monitor", "--once", "--json"],
                env=env,
                capture_output=True,
                text=True,
                timeout=60,
                check=False,
            )
            if result.returncode == 0:
                monitor_counts.append(len(json.loads(result.stdout)))

    readers = [
        threading.Thread(target=read_dashboard, name="load-dashboard", daemon=True),
        threading.Thread(target=read_monitor, name="load-monitor", daemon=True),
    ]
    for reader in readers:
        reader.start()

    publisher = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tests.load",
            "--publish",
            "--redis-url",
            redis_url,
            "--namespace",
            namespace,
            "--experiments",
            str(experiments),
            "--seconds",
            str(seconds),
        ],
        stdout=subprocess.PIPE,
        text=True,
        cwd=Path(__file__).resolve().parents[1],
    )
    out, _ = publisher.communicate(timeout=seconds + 120)
    published_for = float(out.strip() or "nan")
    done.wait(60)
    stop_readers.set()
    for reader in readers:
        reader.join(90)
    checker = SyncTrainingChannel(settings=settings)
    final = {s.experiment_id: s.status.value for s in checker.list_experiments()}
    checker.close()

    lost = {
        eid: statuses
        for eid, statuses in received.items()
        if statuses != ["pending", "running", "completed"]
    }
    return {
        "experiments": experiments,
        "seconds": round(published_for, 1),
        "progress_hz": PROGRESS_HZ,
        "metrics_hz": METRICS_HZ,
        "events_received": events,
        "status_changes_expected": 3 * experiments,
        "status_changes_received": sum(len(v) for v in received.values()),
        "experiments_missing_a_status_change": len(lost),
        "examples_missing": dict(list(lost.items())[:3]),
        "final_completed_in_redis": sum(1 for eid in ids if final.get(eid) == "completed"),
        "latency_ms": {
            "p50": round(_pct(latencies, 0.5) * 1000, 2),
            "p99": round(_pct(latencies, 0.99) * 1000, 2),
            "n": len(latencies),
        },
        "dashboard_callback_ms": {
            "p50": round(_pct(dashboard_ms, 0.5), 1),
            "p99": round(_pct(dashboard_ms, 0.99), 1),
            "mean": round(statistics.fmean(dashboard_ms), 1) if dashboard_ms else None,
            "n": len(dashboard_ms),
        },
        "monitor_reads": len(monitor_counts),
        "monitor_saw_all": bool(monitor_counts) and min(monitor_counts) >= experiments,
    }


def publish(redis_url: str, namespace: str, experiments: int, seconds: float) -> float:
    """Be ``experiments`` simulated trainings: running, progress at 10 Hz and metrics at 1 Hz
    for ``seconds``, then completed. Returns the seconds it published for."""
    settings = load_settings(
        message_broker_type="redis", redis_url=redis_url, message_namespace=namespace
    )
    ids = [f"load-{i:03d}" for i in range(experiments)]
    channel = SyncTrainingChannel(settings=settings)
    total = int(seconds * PROGRESS_HZ)
    for eid in ids:
        channel.create_experiment(eid, {"agent_type": "PPO", "simulated": True})
        channel.publish_status(eid, "running", "simulated training")
    started = time.monotonic()
    for tick in range(1, total + 1):
        for eid in ids:
            channel.publish_progress(eid, tick, total)
            if tick % (PROGRESS_HZ // METRICS_HZ) == 0:
                channel.publish_metrics(eid, tick, {"reward": float(tick), "loss": 1.0 / tick})
        delay = started + tick / PROGRESS_HZ - time.monotonic()
        if delay > 0:
            time.sleep(delay)
    for eid in ids:
        channel.publish_status(eid, "completed", "simulated training done")
    channel.close(60)
    return time.monotonic() - started


def _cleanup(redis_url: str, namespace: str) -> None:
    import redis

    client = redis.Redis.from_url(redis_url)
    for key in client.scan_iter(match=f"at:{{{namespace}}}:*", count=500):
        client.delete(key)
    client.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--experiments", type=int, default=100)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/0")
    parser.add_argument("--output", help="also write the report to this JSON file")
    parser.add_argument("--publish", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--namespace", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.publish:
        print(publish(args.redis_url, args.namespace, args.experiments, args.seconds))
        return 0
    namespace = f"load-{uuid.uuid4().hex[:8]}"
    try:
        report = run_load(args.redis_url, namespace, args.experiments, args.seconds)
    finally:
        _cleanup(args.redis_url, namespace)
    text = json.dumps(report, indent=2)
    print(text)
    if args.output:
        with open(args.output, "w") as handle:
            handle.write(text + "\n")
    return 0 if report["experiments_missing_a_status_change"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
