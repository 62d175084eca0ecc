"""Dashboard: first render of the landing and history pages with 1,000 runs in the repository,
and the server time of the live-update callback with 50 live experiments in Redis.

Times are server time through Dash's own HTTP endpoints (Flask's test client): every request a
browser makes to show the page. The anchor is raw redis-py reading the same 50 hashes in one
pipeline, measured in the same run.
"""

from __future__ import annotations

import json
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import redis

from agentic_trading.config import Settings, load_settings
from agentic_trading.dashboard.app import create_app
from agentic_trading.messaging.channels.sync import SyncTrainingChannel
from benchmarks.bench_tracking import fill_repository
from benchmarks.common import percentiles

RUNS = 1000
LIVE = 50
TICKS = 100
REDIS_URL = "redis://127.0.0.1:6379/0"


def _post(client: Any, outputs: list[tuple[str, str]], inputs: list[tuple[str, str, Any]],
          state: list[tuple[str, str, Any]] = ()) -> Any:  # type: ignore[assignment]  # fmt: skip
    key = "...".join(f"{i}.{p}" for i, p in outputs)
    body = {
        "output": f"..{key}.." if len(outputs) > 1 else key,
        "outputs": [{"id": i, "property": p} for i, p in outputs]
        if len(outputs) > 1
        else {"id": outputs[0][0], "property": outputs[0][1]},
        "inputs": [{"id": i, "property": p, "value": v} for i, p, v in inputs],
        "state": [{"id": i, "property": p, "value": v} for i, p, v in state],
        "changedPropIds": [f"{inputs[0][0]}.{inputs[0][1]}"],
    }
    response = client.post("/_dash-update-component", json=body)
    assert response.status_code in (200, 204), response.data[:300]
    return response.get_json() if response.status_code == 200 else None


def _page(client: Any, path: str) -> Any:
    return _post(
        client, [("page", "children")], [("url", "pathname", path)], [("url", "search", "")]
    )


def first_render(settings: Settings, path: str) -> float:
    """Milliseconds of every request a browser makes to show ``path`` on a fresh dashboard."""
    app = create_app(settings)
    client = app.server.test_client()
    start = time.perf_counter()
    assert client.get(path).status_code == 200
    client.get("/_dash-layout")
    client.get("/_dash-dependencies")
    page = _page(client, path)
    if path == "/runs":
        _post(
            client,
            [
                ("history-table", "children"),
                ("history-page-label", "children"),
                ("history-page", "data"),
            ],
            [
                ("history-experiment", "value", None),
                ("history-status", "value", []),
                ("history-since", "value", "all"),
                ("history-sort", "value", "-created_at"),
                ("history-prev", "n_clicks", 0),
                ("history-next", "n_clicks", 0),
            ],
            [("history-page", "data", 0)],
        )
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
    page = json.dumps(_page(client, "/"))
    view = _find(json.loads(page), "live-view")
    outputs = [
        ("live-table", "children"), ("live-reward", "figure"), ("banner", "children"),
        ("banner", "className"), ("live-view", "data"), ("live-tick", "disabled"),
        ("recent-runs", "children"),
    ]  # fmt: skip
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
        response = client.post(
            "/_dash-update-component",
            json={
                "output": "..{}..".format("...".join(f"{i}.{p}" for i, p in outputs)),
                "outputs": [{"id": i, "property": p} for i, p in outputs],
                "inputs": [{"id": "live-tick", "property": "n_intervals", "value": tick}],
                "state": [
                    {"id": "live-view", "property": "data", "value": view},
                    {"id": "banner", "property": "children", "value": ""},
                ],
                "changedPropIds": ["live-tick.n_intervals"],
            },
        )
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


def _find(node: Any, component_id: str) -> Any:
    if isinstance(node, dict):
        if node.get("props", {}).get("id") == component_id:
            return node["props"].get("data")
        for value in node.values():
            if (found := _find(value, component_id)) is not None:
                return found
    if isinstance(node, list):
        for value in node:
            if (found := _find(value, component_id)) is not None:
                return found
    return None


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
