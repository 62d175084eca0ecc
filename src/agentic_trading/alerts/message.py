"""What an alert says: its event, the run or study it is about, and a link to the dashboard."""

from __future__ import annotations

import socket
from dataclasses import dataclass, field
from enum import Enum
from typing import Any
from urllib.parse import quote

__all__ = ["Alert", "AlertEvent", "parse_events", "run_alert", "study_alert"]


class AlertEvent(str, Enum):
    """What happened. Run events are named after the run's final status."""

    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"
    CRASHED = "crashed"
    PRUNED = "pruned"
    RULE = "rule"
    STUDY_FINISHED = "study_finished"
    NEW_BEST = "new_best"


def parse_events(text: str) -> frozenset[AlertEvent]:
    """``completed,crashed,...`` as events (``all`` for every one); ``ValueError`` naming an
    unknown one and the allowed names."""
    names = {part.strip().lower() for part in text.split(",") if part.strip()}
    if names == {"all"}:
        return frozenset(AlertEvent)
    known = {e.value: e for e in AlertEvent}
    unknown = sorted(names - set(known))
    if unknown:
        raise ValueError(
            f"a comma-separated list of {', '.join(known)} (or all); {unknown[0]!r} is not "
            "an alert event"
        )
    return frozenset(known[name] for name in names)


@dataclass(frozen=True)
class Alert:
    """One alert. ``key`` names the event once for all processes (``run:<id>:crashed``): the
    catalogue lets one process claim it, so it is sent once."""

    event: AlertEvent
    key: str
    title: str
    facts: dict[str, str] = field(default_factory=dict)

    @property
    def body(self) -> str:
        """The facts, one ``name: value`` per line."""
        return "\n".join(f"{name}: {value}" for name, value in self.facts.items())

    @property
    def failure(self) -> bool:
        """Whether the event is bad news (sent as an Apprise failure)."""
        return self.event in (AlertEvent.FAILED, AlertEvent.CRASHED, AlertEvent.RULE)

    def as_data(self) -> dict[str, Any]:
        """As JSON data (kept with the claim, so another process can send it)."""
        return {
            "event": self.event.value,
            "key": self.key,
            "title": self.title,
            "facts": self.facts,
        }

    @classmethod
    def from_data(cls, data: dict[str, Any]) -> Alert:
        """The alert :meth:`as_data` gave."""
        return cls(AlertEvent(data["event"]), data["key"], data["title"], dict(data["facts"]))


def run_alert(
    event: AlertEvent,
    run_id: str,
    experiment: str,
    *,
    status: str,
    host: str | None = None,
    verdict: str | None = None,
    detail: str | None = None,
    dashboard_url: str | None = None,
    rule: str | None = None,
) -> Alert:
    """An alert about one run: ``detail`` is its error or the breached value."""
    what = f"broke the rule {rule}" if rule else event.value
    facts = {
        "event": event.value,
        "run": run_id,
        "experiment": experiment,
        "status": status,
        "host": host or socket.gethostname(),
    }
    if verdict:
        facts["verdict"] = verdict
    if detail:
        facts["detail"] = detail[:2000]
    if dashboard_url:
        facts["link"] = f"{dashboard_url.rstrip('/')}/runs/{quote(run_id)}"
    key = f"run:{run_id}:rule:{rule}" if rule else f"run:{run_id}:{event.value}"
    return Alert(event, key, f"agentic-trading: run {run_id} ({experiment}) {what}", facts)


def study_alert(
    event: AlertEvent,
    study: str,
    *,
    summary: str,
    trial: int | None = None,
    run_id: str | None = None,
    dashboard_url: str | None = None,
) -> Alert:
    """An alert about a study: finished, or a new best ``trial``."""
    facts = {"event": event.value, "study": study, "host": socket.gethostname()}
    if trial is not None:
        facts["trial"] = str(trial)
    if run_id:
        facts["run"] = run_id
    facts["summary"] = summary
    if dashboard_url:
        facts["link"] = f"{dashboard_url.rstrip('/')}/studies/{quote(study)}"
    if event is AlertEvent.NEW_BEST:
        key, what = f"study:{study}:best:{trial}", f"has a new best trial #{trial}"
    else:
        key, what = f"study:{study}:{event.value}", "finished"
    return Alert(event, key, f"agentic-trading: study {study} {what}", facts)
