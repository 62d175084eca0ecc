"""Dashboard: first render of the landing and history pages with 1,000 runs in the repository,
and the server time of the live-update callback with 50 live experiments in Redis.

Times are server time through Dash's own HTTP endpoints (Flask's test client): every request a
browser makes to show the page. The anchor is raw redis-py reading the same 50 hashes in one
pipeline, measured in the same run.
"""

from __future__ import annotations

import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import redis
from tests.dash_requests import UPDATE_PATH, find_data, history_body, page_body, refresh_body

from agentic_trading.config import Settings, load_settings
from agentic_trading.dashboard.app import create_app
from agentic_trading.messaging.channels.sync import SyncTrainingChannel
from benchmarks.bench_tracking import fill_repository
from benchmarks.common import percentiles

RUNS = 1000
LIVE = 50
TICKS = 100
REDIS_URL = "redis://127.0.0.1:6379/0"


def _post(client: Any, body: dict[str, Any]) -> Any:
    response = client.post(UPDATE_PATH, json=body)
    assert response.status_code in (200, 204), response.data[:300]
    return response.get_json() if response.status_code == 200 else None


def first_render(settings: Settings, path: str) -> float:
    """Milliseconds of every request a browser makes to show ``path`` on a fresh dashboard."""
    app = create_app(settings)
    client = app.server.test_client()
    start = time.perf_counter()
    assert client.get(path).status_code == 200
    client.get("/_dash-layout")
    client.get("/_dash-dependencies")
    page = _post(client, page_body(path))
    if path == "/runs":
        _post(client, history_body())
    elapsed = (time.perf_counter() - start) * 1000
    assert page is not None
    app.context.feed.close()
    return round(elapsed, 1)


def live_callback(settings: Settings) -> dict[str, Any]:
    """Server time of the live refresh with ``LIVE`` experiments whose progress moves every
    tick, against raw redis-py reading the same hashes."""
    channel = SyncTrainingChannel(settings=settings)
    ids = [f"bench-live-{i:02d}" for i in range(LIVE)]
    for eid in ids:
        channel.create_experiment(eid, {"agent_type": "PPO"})
        channel.publish_status(eid, "running")
    channel.flush()
    app = create_app(settings)
    client = app.server.test_client()
    view = find_data(_post(client, page_body("/")), "live-view")
    samples: list[float] = []
    raw: list[float] = []
    sizes: list[int] = []
    r = redis.Redis.from_url(REDIS_URL)
    keys = [f"at:{{{settings.message_namespace}}}:exp:{eid}" for eid in ids]
    for tick in range(TICKS):
        for eid in ids:
            channel.publish_progress(eid, (tick + 1) * 100, TICKS * 100)
            if tick % 10 == 0:
                channel.publish_metrics(eid, (tick + 1) * 100, {"reward": float(tick)})
        channel.flush()
        start = time.perf_counter()
        response = client.post(UPDATE_PATH, json=refresh_body(view, tick))
        samples.append(time.perf_counter() - start)
        sizes.append(len(response.data))
        body = response.get_json()["response"]
        view = body.get("live-view", {}).get("data", view)
        start = time.perf_counter()
        pipe = r.pipeline(transaction=False)
        for key in keys:
            pipe.hgetall(key)
        pipe.execute()
        raw.append(time.perf_counter() - start)
    for eid in ids:
        channel.delete_experiment(eid)
    channel.close()
    app.context.feed.close()
    ours, anchor = percentiles(samples), percentiles(raw)
    return {
        "live_experiments": LIVE,
        "ticks": TICKS,
        "callback": ours,
        "raw_redis_pipeline_hgetall": anchor,
        "ratio_at_p50": round(ours["p50_us"] / anchor["p50_us"], 1),
        "response_bytes_median": sorted(sizes)[len(sizes) // 2],
    }


def run() -> dict[str, Any]:
    """Fill a repository, then time first renders (cold and warm) and the live callback."""
    namespace = f"bench-dash-{uuid.uuid4().hex[:8]}"
    with tempfile.TemporaryDirectory() as folder:
        settings = load_settings(
            ml_storage_path=str(Path(folder) / "aim"),
            message_broker_type="redis",
            redis_url=REDIS_URL,
            message_namespace=namespace,
        )
        _, fill = fill_repository(settings, RUNS)
        renders = {
            "landing_first_ms": first_render(settings, "/"),
            "history_first_ms": first_render(settings, "/runs"),
            "landing_again_ms": first_render(settings, "/"),
            "history_again_ms": first_render(settings, "/runs"),
        }
        try:
            live = live_callback(settings)
        finally:
            client = redis.Redis.from_url(REDIS_URL)
            for key in client.scan_iter(match=f"at:{{{namespace}}}:*", count=500):
                client.delete(key)
    return {"runs": RUNS, "fill_seconds": round(fill, 1), **renders, "live": live}
