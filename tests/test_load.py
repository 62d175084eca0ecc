"""The load run in short (10 s): 100 simulated experiments through Redis at 10 Hz progress and
1 Hz metrics, with a subscriber, the dashboard's live callback and ``monitor`` reading.

``make stress`` runs the 60-second version (``python -m tests.load``)."""

from __future__ import annotations

import json

import pytest

from tests.conftest import delete_namespace
from tests.load import run_load

# Heavy tests share one pytest-xdist worker (make test runs --dist loadgroup), so none of them
# runs beside another: this one's heartbeats must not starve behind a PBT's members.
pytestmark = [pytest.mark.redis, pytest.mark.xdist_group("heavy")]


def test_hundred_experiments_lose_no_status_change(redis_url: str, namespace: str) -> None:
    try:
        report = run_load(redis_url, namespace, experiments=100, seconds=10)
    finally:
        delete_namespace(redis_url, namespace)
    print(json.dumps(report, indent=2))  # shown with -s and in the stress log
    assert report["experiments_missing_a_status_change"] == 0, report["examples_missing"]
    assert report["status_changes_received"] == report["status_changes_expected"] == 300
    assert report["final_completed_in_redis"] == 100
    assert report["latency_ms"]["n"] > 1000  # progress flowed to the subscriber all along
    assert report["dashboard_callback_ms"]["n"] >= 5
    assert report["monitor_reads"] >= 2 and report["monitor_saw_all"]
