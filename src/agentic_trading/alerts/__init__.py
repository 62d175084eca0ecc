"""Alerts in your chat: a run ended, crashed or broke a threshold rule; a study finished or
found a new best trial. Sent through Apprise to ``ALERT_URLS``, once per event however many
processes learn of it (the run catalogue says who sends it).

    from agentic_trading.alerts import Alerter, AlertWatcher
"""

from agentic_trading.alerts.message import Alert, AlertEvent, parse_events, run_alert, study_alert
from agentic_trading.alerts.rules import AlertRule, parse_rules
from agentic_trading.alerts.sender import Alerter, Backoff
from agentic_trading.alerts.watcher import AlertWatcher, WatchReport

__all__ = [
    "Alert",
    "AlertEvent",
    "AlertRule",
    "AlertWatcher",
    "Alerter",
    "Backoff",
    "WatchReport",
    "parse_events",
    "parse_rules",
    "run_alert",
    "study_alert",
]
