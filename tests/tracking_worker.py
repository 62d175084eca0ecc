"""A separate process that writes one tracking run, for tests across processes.

    python -m tests.tracking_worker MODE EXPERIMENT POINTS

MODE ``finish`` finishes the run; ``exit`` returns without finishing (interpreter exit must
flush); ``hang`` flushes, prints ``flushed`` and sleeps until killed; ``sent`` waits until every
operation is in the writer process's pipe (not necessarily read by it), prints ``sent`` and how
many the writer had taken, and sleeps until killed. The run id is printed first. Settings come from the environment (``ML_STORAGE_PATH``, ...).
"""

from __future__ import annotations

import sys
import time

from agentic_trading.tracking import TrainingMetrics, get_sync_tracker


def main(mode: str, experiment: str, points: int) -> None:
    tracker = get_sync_tracker()
    run = tracker.create_run(experiment, {"mode": mode, "points": points})
    print(run.run_id, flush=True)
    for step in range(points):
        tracker.log_metrics(run, TrainingMetrics(step=step, reward=float(step), loss=1.0))
    if mode == "finish":
        tracker.finish_run(run, "completed", {"total_reward": float(points)})
    elif mode == "hang":
        tracker.flush()
        print("flushed", flush=True)
        time.sleep(600)
    elif mode == "sent":
        writer = tracker._writer
        deadline = time.monotonic() + 30
        while writer._sent < writer._accepted and time.monotonic() < deadline:
            time.sleep(0.001)
        print("sent", writer._taken, flush=True)
        time.sleep(600)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], int(sys.argv[3]))
