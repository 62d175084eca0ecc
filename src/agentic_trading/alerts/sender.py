"""Sending alerts through Apprise, off the caller's path.

:meth:`Alerter.notify` only queues the alert (a few microseconds). A background thread claims
it in the ledger (so no other process sends it too), sends it to every ``ALERT_URLS`` address,
and retries an address that fails with back-off for up to an hour, never blocking the caller.
Log lines name an address with its secrets masked.
"""

from __future__ import annotations

import atexit
import heapq
import itertools
import logging
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from agentic_trading.alerts.ledger import AlertLedger, CatalogueLedger, LocalLedger
from agentic_trading.alerts.message import Alert, AlertEvent, parse_events
from agentic_trading.alerts.rules import AlertRule, parse_rules
from agentic_trading.common.extras import require
from agentic_trading.config import Settings, mask_alert_url, split_alert_urls

__all__ = ["EXIT_WAIT", "Alerter", "Backoff"]

logger = logging.getLogger("agentic_trading.alerts")

#: Seconds a process that ends waits for its alerts still being sent; what is left is sent by
#: a watcher (``agentic-trading watch``) once the claim lapses.
EXIT_WAIT = 5.0


@dataclass(frozen=True)
class Backoff:
    """Seconds before retry ``attempt`` (1, 2, 4, ... up to ``cap``), for ``give_up_after``
    seconds after the first attempt."""

    base: float = 1.0
    cap: float = 30.0
    give_up_after: float = 3600.0

    def delay(self, attempt: int) -> float:
        return float(min(self.cap, self.base * 2 ** max(0, attempt - 1)))


@dataclass(order=True)
class _Pending:
    due: float
    order: int
    alert: Alert = field(compare=False)
    claimed: bool = field(default=False, compare=False)
    attempts: int = field(default=0, compare=False)
    first: float = field(default_factory=time.monotonic, compare=False)
    delivered: set[int] = field(default_factory=set, compare=False)


class Alerter:
    """Sends alerts to ``urls`` (Apprise URLs) for the ``events`` chosen, one process per
    event through ``ledger``.

    :param rules: threshold rules the caller checks (:meth:`breaches`).
    :param dashboard_url: the dashboard's address, for links to a run's page.
    """

    def __init__(
        self,
        urls: Sequence[str],
        *,
        events: frozenset[AlertEvent] = frozenset(AlertEvent),
        rules: Sequence[AlertRule] = (),
        ledger: AlertLedger | None = None,
        dashboard_url: str | None = None,
        backoff: Backoff = Backoff(),
    ) -> None:
        self.urls = list(urls)
        self.events = events
        self.rules = tuple(rules)
        self.ledger: AlertLedger = ledger or LocalLedger()
        self.dashboard_url = dashboard_url
        self.backoff = backoff
        self._targets: list[Any] | None = None
        self._heap: list[_Pending] = []
        self._order = itertools.count()
        self._wake = threading.Condition()
        self._busy = 0
        self._thread: threading.Thread | None = None
        self._closed = False

    @classmethod
    def for_settings(cls, settings: Settings, catalogue_url: str | None = None) -> Alerter | None:
        """The alerter of ``ALERT_URLS`` (``None`` when it is empty), claiming in the catalogue
        at ``catalogue_url`` when there is one."""
        urls = split_alert_urls(settings.alert_urls)
        if not urls:
            return None
        ledger = CatalogueLedger(catalogue_url) if catalogue_url else LocalLedger()
        return cls(
            urls,
            events=parse_events(settings.alert_events),
            rules=parse_rules(settings.alert_rules),
            ledger=ledger,
            dashboard_url=settings.dashboard_url,
        )

    def wants(self, event: AlertEvent) -> bool:
        """Whether ``event`` is among ``ALERT_EVENTS``."""
        return event in self.events

    def breaches(self, values: dict[str, float]) -> list[tuple[AlertRule, float]]:
        """The rules that ``values`` (metric name -> value) break, with the value."""
        return [
            (rule, values[rule.metric])
            for rule in self.rules
            if rule.metric in values and rule.breached(values[rule.metric])
        ]

    def notify(self, alert: Alert) -> None:
        """Send ``alert`` in the background, if its event is wanted; never blocks or raises."""
        if alert.event not in self.events or self._closed:
            return
        self._schedule(_Pending(time.monotonic(), next(self._order), alert))

    def resend(self, alert: Alert) -> None:
        """Send ``alert`` whose claim this process already holds (a lapsed one taken over)."""
        self._schedule(_Pending(time.monotonic(), next(self._order), alert, claimed=True))

    def _schedule(self, item: _Pending) -> None:
        with self._wake:
            heapq.heappush(self._heap, item)
            self._busy += 1
            if self._thread is None:
                # Loaded here, not in the thread: a process that ends right after its alert
                # would be importing Apprise while shutting down (once per process, a fraction
                # of a second; for a run, in its writer, off the training's path).
                self._load_targets_quietly()
                self._thread = threading.Thread(
                    target=self._run, name="agentic-trading-alerts", daemon=True
                )
                self._thread.start()
                atexit.register(self.flush, EXIT_WAIT)
            self._wake.notify()

    def flush(self, timeout: float) -> bool:
        """Wait up to ``timeout`` seconds for every queued alert to be sent or given up;
        whether all were."""
        deadline = time.monotonic() + timeout
        with self._wake:
            while self._busy:
                left = deadline - time.monotonic()
                if left <= 0:
                    logger.warning(
                        "%d alert(s) not sent yet at exit; a watcher (agentic-trading watch) "
                        "sends them once their claim lapses",
                        self._busy,
                    )
                    return False
                self._wake.wait(min(left, 0.1))
        return True

    def close(self, timeout: float = EXIT_WAIT) -> None:
        """Send what is queued (up to ``timeout`` seconds), then take no more."""
        self.flush(timeout)
        self._closed = True

    # --- the sending thread ---------------------------------------------------------------------

    def _run(self) -> None:
        while True:
            with self._wake:
                while not self._heap or self._heap[0].due > time.monotonic():
                    wait = self._heap[0].due - time.monotonic() if self._heap else None
                    self._wake.wait(wait)
                item = heapq.heappop(self._heap)
            done = self._attempt(item)
            with self._wake:
                if done:
                    self._busy -= 1
                else:
                    item.due = time.monotonic() + self.backoff.delay(item.attempts)
                    heapq.heappush(self._heap, item)
                self._wake.notify_all()

    def _attempt(self, item: _Pending) -> bool:
        """One try at ``item``; whether it is finished with (sent, someone else's, given up)."""
        item.attempts += 1
        alert = item.alert
        if not item.claimed:
            try:
                if not self.ledger.claim(alert):
                    return True  # another process sends it
            except Exception as exc:
                return self._retry_or_give_up(item, f"the catalogue did not answer: {exc}")
            item.claimed = True
        errors = self._send(item)
        try:
            self.ledger.attempted(alert, "; ".join(errors) or None)
        except Exception as exc:  # the alert went out; only its record waits
            logger.warning("alert %s: its delivery could not be recorded: %s", alert.key, exc)
        if not errors:
            logger.info("alert sent: %s", alert.title)
            return True
        return self._retry_or_give_up(item, "; ".join(errors))

    def _retry_or_give_up(self, item: _Pending, error: str) -> bool:
        if time.monotonic() - item.first >= self.backoff.give_up_after:
            logger.error(
                "alert %s given up after %d attempts: %s", item.alert.key, item.attempts, error
            )
            return True
        if item.attempts == 1:
            logger.warning(
                "alert %s not sent yet (%s); retrying with back-off", item.alert.key, error
            )
        return False

    def _send(self, item: _Pending) -> list[str]:
        """Send to every address not yet reached; the failures, named with masked secrets."""
        try:
            targets = self._load_targets()
        except Exception as exc:
            return [str(exc)]
        errors = []
        alert = item.alert
        for index, target in enumerate(targets):
            if index in item.delivered:
                continue
            if target is None:
                errors.append(f"{mask_alert_url(self.urls[index])} is not an Apprise URL")
                continue
            try:
                ok = bool(target.notify(body=alert.body, title=alert.title,
                                        notify_type=_notify_type(alert)))  # fmt: skip
            except Exception as exc:  # a plugin's own failure
                ok = False
                logger.debug("alert %s: %s", alert.key, exc)
            if ok:
                item.delivered.add(index)
            else:
                errors.append(f"{mask_alert_url(self.urls[index])} did not take it")
        return errors

    def _load_targets_quietly(self) -> None:
        try:
            self._load_targets()
        except Exception as exc:  # Apprise missing: each attempt says so
            logger.debug("Apprise not loaded: %s", exc)

    def _load_targets(self) -> list[Any]:
        if self._targets is None:
            apprise = require("apprise", "alerts", "alerts (ALERT_URLS) need Apprise")
            logging.getLogger("apprise").setLevel(logging.CRITICAL)  # we log, secrets masked
            # Each address's plugin itself (its notify sends in this thread): an Apprise
            # object would send through a thread pool, which refuses work once the process
            # is shutting down, when a process that ends sends its last alerts.
            self._targets = [apprise.Apprise.instantiate(url) or None for url in self.urls]
        return self._targets


def _notify_type(alert: Alert) -> str:
    if alert.failure:
        return "failure"
    return "success" if alert.event in (AlertEvent.COMPLETED, AlertEvent.NEW_BEST) else "info"
