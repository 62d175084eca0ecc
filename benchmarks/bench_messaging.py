"""Messaging: caller cost and publish-to-subscriber latency, against raw redis-py in the same run.

Targets (issue 2): sync-facade caller cost p50 <= 20 us; Redis publish-to-subscriber p50 within
1.5x of raw XADD -> XREAD BLOCK; memory publish-to-subscriber p50 <= 60 us; a training loop that
publishes progress on every step keeps >= 95% of its steps/s.
"""

from __future__ import annotations

import asyncio
import os
import threading
import time
import uuid
from typing import Any

import redis.asyncio as aioredis

from agentic_trading.config import Settings
from agentic_trading.messaging import SyncTrainingChannel, TrainingChannel, create_broker
from benchmarks.common import percentiles, ppo_steps_per_second

REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")
N = 2000


def settings(kind: str, namespace: str) -> Settings:
    return Settings(  # type: ignore[call-arg]
        _env_file=None, message_broker_type=kind, redis_url=REDIS_URL, message_namespace=namespace
    )


async def _cleanup(namespace: str) -> None:
    client = aioredis.Redis.from_url(REDIS_URL)
    keys = [k async for k in client.scan_iter(match=f"at:{{{namespace}}}:*")]
    if keys:
        await client.delete(*keys)
    await client.aclose()


def sync_caller_cost(kind: str) -> dict[str, float]:
    namespace = f"bench-{uuid.uuid4().hex[:8]}"
    s = settings(kind, namespace)
    channel = SyncTrainingChannel(settings=s, broker=lambda: create_broker(s))
    channel.create_experiment("bench", {})
    samples = []
    for step in range(1, 20 * N + 1):
        start = time.perf_counter()
        channel.publish_progress("bench", step, 20 * N)
        samples.append(time.perf_counter() - start)
    channel.close()
    asyncio.run(_cleanup(namespace))
    return percentiles(samples)


async def async_caller_cost(kind: str) -> dict[str, float]:
    namespace = f"bench-{uuid.uuid4().hex[:8]}"
    s = settings(kind, namespace)
    broker = create_broker(s)
    channel = TrainingChannel(settings=s, broker=broker, heartbeats=False)
    await channel.create_experiment("bench", {})
    samples = []
    for step in range(1, N + 1):
        start = time.perf_counter()
        await channel.publish_progress("bench", step, N)
        samples.append(time.perf_counter() - start)
    await broker.close()
    await _cleanup(namespace)
    return percentiles(samples)


def _latency(read: Any, publish: Any, ready: threading.Event, n: int = N) -> dict[str, float]:
    """Publish-to-subscriber latency with the reader on its own thread and event loop.

    ``read(sent, received, ready)`` runs in the reader thread until ``n`` messages arrived,
    recording ``received[i] = perf_counter()``; ``publish(i)`` sends message ``i``. Messages are
    spaced out so that each one meets a reader already blocked in its read, as in production.
    """
    received: dict[int, float] = {}
    sent: dict[int, float] = {}
    reader = threading.Thread(target=lambda: asyncio.run(read(received, ready, n)), daemon=True)
    reader.start()
    ready.wait(10)

    async def send_all() -> None:
        for i in range(1, n + 1):
            sent[i] = time.perf_counter()
            await publish(i)
            await asyncio.sleep(0.001)

    asyncio.run(send_all())
    reader.join(30)
    return percentiles([received[i] - sent[i] for i in sent if i in received])


def channel_latency(kind: str) -> dict[str, float]:
    """From calling publish_progress to a subscriber (another thread and loop) holding the event."""
    namespace = f"bench-{uuid.uuid4().hex[:8]}"
    s = settings(kind, namespace)
    ready = threading.Event()

    async def read(received: dict[int, float], ready: threading.Event, n: int) -> None:
        broker = create_broker(s)
        channel = TrainingChannel(settings=s, broker=broker, heartbeats=False)
        events = channel.subscribe("bench", last_event_id=await channel.last_event_id())
        ready.set()
        async for event in events:
            if event.state is not None and event.state.current_step > 0:
                received[event.state.current_step] = time.perf_counter()
                if event.state.current_step >= n:
                    break
        await broker.close()

    holder: dict[str, Any] = {}

    async def publish(i: int) -> None:
        if "channel" not in holder:
            holder["broker"] = create_broker(s)
            holder["channel"] = TrainingChannel(
                settings=s, broker=holder["broker"], heartbeats=False
            )
        await holder["channel"].publish_progress("bench", i, N)

    result = _latency(read, publish, ready)
    asyncio.run(_cleanup(namespace))
    return result


async def same_loop_latency(kind: str) -> dict[str, float]:
    """Publisher and subscriber on one event loop (how the memory broker is used in-process)."""
    namespace = f"bench-{uuid.uuid4().hex[:8]}"
    s = settings(kind, namespace)
    broker = create_broker(s)
    publisher = TrainingChannel(settings=s, broker=broker, heartbeats=False)
    subscriber = TrainingChannel(settings=s, broker=broker, heartbeats=False)
    await publisher.create_experiment("bench", {})
    events = subscriber.subscribe("bench", last_event_id=await subscriber.last_event_id())
    samples = []
    for step in range(1, N + 1):
        receive = asyncio.ensure_future(events.__anext__())
        await asyncio.sleep(0)  # let the subscriber wait for the next event
        start = time.perf_counter()
        await publisher.publish_progress("bench", step, N)
        await receive
        samples.append(time.perf_counter() - start)
    await events.aclose()
    await broker.close()
    return percentiles(samples)


def raw_latency() -> dict[str, float]:
    """The anchor: raw redis-py XADD, read by XREAD BLOCK in another thread and loop."""
    key = f"bench-raw-{uuid.uuid4().hex[:8]}"
    payload = _real_event()
    ready = threading.Event()

    async def read(received: dict[int, float], ready: threading.Event, n: int) -> None:
        client = aioredis.Redis.from_url(REDIS_URL, decode_responses=True)
        last, count = "$", 0
        ready.set()
        while count < n:
            reply = await client.xread({key: last}, block=1000, count=100)
            now = time.perf_counter()
            for _, entries in reply:
                for entry_id, fields in entries:
                    last = entry_id
                    received[int(fields["i"])] = now
                    count += 1
        await client.aclose()

    clients: dict[str, aioredis.Redis] = {}

    async def publish(i: int) -> None:
        if "pub" not in clients:
            clients["pub"] = aioredis.Redis.from_url(REDIS_URL, decode_responses=True)
        await clients["pub"].xadd(key, {"data": payload, "i": i}, maxlen=10_000, approximate=True)

    result = _latency(read, publish, ready)

    async def cleanup() -> None:
        client = aioredis.Redis.from_url(REDIS_URL)
        await client.delete(key)
        await client.aclose()

    asyncio.run(cleanup())
    return result


def _real_event() -> str:
    """A progress event as TrainingChannel encodes it (about 450 bytes)."""
    from agentic_trading.messaging.messages import EventType, encode_event_around
    from agentic_trading.messaging.state import apply_progress, new_state

    now = time.time()
    state = apply_progress(new_state("bench", "bench", {}, now), 1000, 50_000, 2.0, now, 1650.0)
    state_json = state.model_dump_json(exclude={"config", "stop_requested"})
    return encode_event_around(EventType.PROGRESS, "bench", "bench", now, state_json)


async def raw_redis() -> dict[str, Any]:
    """The anchors: raw redis-py round trips and XADD -> XREAD BLOCK end to end."""
    key = f"bench-raw-{uuid.uuid4().hex[:8]}"
    pub = aioredis.Redis.from_url(REDIS_URL, decode_responses=True)
    sub = aioredis.Redis.from_url(REDIS_URL, decode_responses=True)
    payload = _real_event()  # the same message the channel sends, so the anchor does the same work
    publish, xadd = [], []
    for _ in range(N):
        start = time.perf_counter()
        await pub.publish(key, payload)
        publish.append(time.perf_counter() - start)
        start = time.perf_counter()
        await pub.xadd(key, {"data": payload}, maxlen=10_000, approximate=True)
        xadd.append(time.perf_counter() - start)
    await pub.delete(key)
    await pub.aclose()
    await sub.aclose()
    return {
        "publish_round_trip": percentiles(publish),
        "xadd_round_trip": percentiles(xadd),
    }


def training_overhead(rounds: int = 3, timesteps: int = 4096) -> dict[str, Any]:
    """SB3 PPO on our TradingEnv, plain vs publishing progress on every step."""
    from stable_baselines3.common.callbacks import BaseCallback

    class EveryStep(BaseCallback):
        def __init__(self, channel: SyncTrainingChannel) -> None:
            super().__init__()
            self.channel = channel

        def _on_step(self) -> bool:
            self.channel.publish_progress("bench", self.num_timesteps, timesteps)
            return not self.channel.stop_requested("bench")

    def train(callback: BaseCallback | None) -> float:
        return ppo_steps_per_second(callback, timesteps)

    results: dict[str, list[float]] = {"plain": [], "redis": [], "memory": []}
    channels = {}
    for kind in ("redis", "memory"):
        namespace = f"bench-{uuid.uuid4().hex[:8]}"
        s = settings(kind, namespace)
        channels[kind] = (
            SyncTrainingChannel(settings=s, broker=lambda s=s: create_broker(s)),
            namespace,
        )
    train(None)  # warm-up
    for _ in range(rounds):  # interleaved, so drift hits every variant alike
        results["plain"].append(train(None))
        for kind, (channel, _) in channels.items():
            channel.create_experiment("bench", {})
            results[kind].append(train(EveryStep(channel)))
            channel.publish_status("bench", "completed")
            channel.flush()
            channel.delete_experiment("bench")
    for channel, namespace in channels.values():
        channel.close()
        asyncio.run(_cleanup(namespace))
    return {
        "steps_per_second": {k: [round(x) for x in v] for k, v in results.items()},
        "kept_fraction_redis": kept_fraction(results["redis"], results["plain"]),
        "kept_fraction_memory": kept_fraction(results["memory"], results["plain"]),
    }


def kept_fraction(ours: list[float], plain: list[float]) -> float:
    """Median over rounds of ours/plain: each round's pair ran back to back, under the same load."""
    ratios = sorted(o / p for o, p in zip(ours, plain, strict=True))
    return round(ratios[len(ratios) // 2], 3)


def run(rounds: int = 5) -> dict[str, Any]:
    """Every measure, in interleaved rounds so that machine drift hits anchor and ours alike."""
    per_round: list[dict[str, Any]] = []
    for _ in range(rounds):
        one: dict[str, Any] = {"raw_redis": asyncio.run(raw_redis())}
        one["raw_redis"]["xadd_to_xread_block"] = raw_latency()
        for kind in ("memory", "redis"):
            one[kind] = {
                "sync_publish_progress_caller": sync_caller_cost(kind),
                "async_publish_progress": asyncio.run(async_caller_cost(kind)),
                "publish_to_subscriber": (
                    asyncio.run(same_loop_latency(kind))
                    if kind == "memory"
                    else channel_latency(kind)
                ),
            }
        per_round.append(one)
    out = _median_round(per_round)
    ratios = [
        r["redis"]["publish_to_subscriber"]["p50_us"]
        / r["raw_redis"]["xadd_to_xread_block"]["p50_us"]
        for r in per_round
    ]
    out["redis_latency_vs_raw_p50_by_round"] = [round(x, 2) for x in ratios]
    out["redis_latency_vs_raw_p50"] = round(sorted(ratios)[len(ratios) // 2], 2)
    out["training"] = training_overhead()
    return out


def _median_round(rounds: list[dict[str, Any]]) -> dict[str, Any]:
    """Per measure, the statistics of the round with the median p50."""
    first = rounds[0]
    out: dict[str, Any] = {}
    for group, measures in first.items():
        out[group] = {}
        for name in measures:
            candidates = sorted((r[group][name] for r in rounds), key=lambda m: m["p50_us"])
            out[group][name] = candidates[len(candidates) // 2]
    return out
