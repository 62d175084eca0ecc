"""What watching a run costs the training: console capture per printed line against the same
prints uncaptured, and a system sample (taken by the writer, never by the training), each
expressed at the issue's rates: 1,000 lines a second, one sample every 10 s; and what queueing
an alert costs its caller (a run's alerts are sent by its writer, off the training's path)."""

from __future__ import annotations

import io
import os
import time
from typing import Any

from agentic_trading.alerts import Alerter, AlertEvent, Backoff, run_alert
from agentic_trading.tracking.output import OutputCapture
from agentic_trading.tracking.system_metrics import SystemSampler

LINES = 50_000
ROUNDS = 7


def _print_lines(stream: Any, lines: int) -> float:
    """Seconds to print ``lines`` lines through ``print`` to ``stream``."""
    began = time.perf_counter()
    for n in range(lines):
        print(f"step {n}: reward {n * 0.5:.3f} loss {n * 1e-4:.5f}", file=stream)
    return time.perf_counter() - began


def capture_cost(lines: int = LINES, rounds: int = ROUNDS) -> dict[str, Any]:
    """Microseconds a printed line costs with capture on, beside the same prints without it
    (both to an in-memory stream standing for the terminal), interleaved rounds."""
    import sys

    plain: list[float] = []
    captured: list[float] = []
    for _ in range(rounds):
        sink = io.StringIO()
        saved = sys.stdout
        sys.stdout = sink
        try:
            plain.append(_print_lines(sys.stdout, lines))
            capture = OutputCapture()
            capture.start()
            try:
                captured.append(_print_lines(sys.stdout, lines))
                taken = len(capture.take())
            finally:
                capture.stop()
        finally:
            sys.stdout = saved
        assert taken == lines
    extra = sorted((c - p) / lines * 1e6 for c, p in zip(captured, plain, strict=True))
    median = extra[len(extra) // 2]
    return {
        "lines": lines,
        "rounds": rounds,
        "plain_us_per_line": round(sorted(plain)[rounds // 2] / lines * 1e6, 3),
        "extra_us_per_line_min_median_max": [
            round(extra[0], 3),
            round(median, 3),
            round(extra[-1], 3),
        ],
        "share_at_1000_lines_per_second": round(median * 1000 / 1e6, 5),
        "target_share": 0.01,
    }


def sample_cost(samples: int = 200) -> dict[str, Any]:
    """Microseconds one system sample takes in the writer, and its share of a core at one
    sample every 10 s (the training itself makes no call)."""
    sampler = SystemSampler(os.getpid())
    times = []
    for _ in range(samples):
        began = time.perf_counter()
        sampler.sample()
        times.append(time.perf_counter() - began)
    times.sort()
    median_us = times[len(times) // 2] * 1e6
    return {
        "samples": samples,
        "us_per_sample_min_median_max": [
            round(times[0] * 1e6, 1),
            round(median_us, 1),
            round(times[-1] * 1e6, 1),
        ],
        "share_of_a_core_at_10s": round(median_us / 10e6, 7),
        "calls_on_the_training_path": 0,
        "target_share": 0.005,
    }


def alert_cost(alerts: int = 2_000, rounds: int = ROUNDS) -> dict[str, Any]:
    """Microseconds :meth:`Alerter.notify` takes its caller, the alert sent in the background
    (to a port that refuses it, given up at once: the sending thread is busy meanwhile)."""
    made = [
        run_alert(AlertEvent.FAILED, f"run-{n}", "bench", status="failed") for n in range(alerts)
    ]
    import logging

    logging.getLogger("agentic_trading.alerts").setLevel(logging.CRITICAL)  # 14,000 give-ups
    costs = []
    for _ in range(rounds):
        alerter = Alerter(["json://127.0.0.1:9/hook"], backoff=Backoff(give_up_after=0))
        began = time.perf_counter()
        for alert in made:
            alerter.notify(alert)
        costs.append((time.perf_counter() - began) / alerts * 1e6)
        alerter.flush(120)
    costs.sort()
    return {
        "alerts": alerts,
        "us_per_notify_min_median_max": [
            round(costs[0], 2),
            round(costs[len(costs) // 2], 2),
            round(costs[-1], 2),
        ],
        "target_us": 50,
    }


def run() -> dict[str, Any]:
    """The three figures."""
    return {
        "console_capture": capture_cost(),
        "system_sample": sample_cost(),
        "alert": alert_cost(),
    }
