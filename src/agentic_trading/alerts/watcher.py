"""``agentic-trading watch``: alerts for runs whose training and writer both died.

A run's own writer alerts when the run ends, and when its training dies. When both die (the
whole process group killed, the machine lost) the run's heartbeat goes stale; a watcher reads
the run catalogue every ``interval`` seconds, finds runs that ended or read ``crashed`` and
whose alert no one claimed, and sends it. It also takes over alerts whose sender died before
sending them. Any number of watchers may run: the catalogue gives each event to one.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass

from agentic_trading.alerts.message import AlertEvent, run_alert
from agentic_trading.alerts.sender import Alerter
from agentic_trading.config import Settings, SettingsError
from agentic_trading.tracking.catalogue import open_catalogue
from agentic_trading.tracking.catalogue.database import catalogue_url
from agentic_trading.tracking.catalogue.runs import RunCatalogue

__all__ = ["AlertWatcher", "WatchReport"]

logger = logging.getLogger("agentic_trading.alerts")


@dataclass
class WatchReport:
    """What one look found: alerts queued, and lapsed ones taken over."""

    queued: int = 0
    taken_over: int = 0


class AlertWatcher:
    """Watches the run catalogue of ``settings`` for ends no one alerted on.

    :param since: Unix seconds; runs whose last change is older are left alone (a watcher
        started on an old catalogue does not alert on its history). Default: an hour ago.
    """

    def __init__(
        self, settings: Settings, *, alerter: Alerter | None = None, since: float | None = None
    ) -> None:
        url = catalogue_url(settings)
        catalogue = open_catalogue(settings)
        if url is None or catalogue is None:
            raise SettingsError(
                "watching runs needs the run catalogue, which the processes share: set "
                "ML_CATALOG_URL (postgresql://... for several hosts), or use a local "
                "ML_STORAGE_PATH"
            )
        made = alerter or Alerter.for_settings(settings, url)
        if made is None:
            raise SettingsError(
                "ALERT_URLS is empty: set it to one or more Apprise URLs (slack://..., "
                "json://host:port/path, mailto://...) to receive alerts"
            )
        self.alerter = made
        self.catalogue: RunCatalogue = catalogue
        self.since = time.time() - 3600 if since is None else since
        self._handled: set[str] = set()

    def poll(self) -> WatchReport:
        """One look at the catalogue; the alerts it queued."""
        report = WatchReport()
        for alert in self.alerter.ledger.overdue():
            if self.alerter.ledger.claim(alert):
                self.alerter.resend(alert)
                report.taken_over += 1
        candidates = []
        for run in self.catalogue.ended_since(self.since, self.catalogue.dead_here()):
            try:
                event = AlertEvent(run.status.value)
            except ValueError:
                continue
            if not self.alerter.wants(event):
                continue
            alert = run_alert(
                event, run.run_id, run.experiment, status=run.status.value, host=run.host,
                verdict=run.params.get("verdict"), detail=run.error or _why_crashed(run.status),
                dashboard_url=self.alerter.dashboard_url,
            )  # fmt: skip
            if alert.key not in self._handled:
                candidates.append(alert)
        known = self.alerter.ledger.known(a.key for a in candidates)
        for alert in candidates:
            self._handled.add(alert.key)
            if alert.key not in known:
                self.alerter.notify(alert)  # the claim decides who sends it
                report.queued += 1
        return report

    def run(self, interval: float, stop: threading.Event) -> None:
        """Look every ``interval`` seconds until ``stop`` is set; a failed look is logged and
        tried again at the next."""
        while not stop.is_set():
            try:
                self.poll()
            except Exception as exc:
                logger.warning("the alert watcher could not read the catalogue: %s", exc)
            stop.wait(interval)

    def start(self, interval: float) -> threading.Event:
        """Watch in a daemon thread (the dashboard's); set the returned event to stop it."""
        stop = threading.Event()
        threading.Thread(
            target=self.run, args=(interval, stop), name="agentic-trading-watch", daemon=True
        ).start()
        return stop


def _why_crashed(status: object) -> str | None:
    if getattr(status, "value", None) == "crashed":
        return "its training and writer stopped (no heartbeat, or the process is gone)"
    return None
