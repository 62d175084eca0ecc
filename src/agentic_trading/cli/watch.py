"""``agentic-trading watch``: alerts for runs that died with their writer."""

from __future__ import annotations

import threading
from typing import Annotated

import typer

from agentic_trading.cli._common import (
    JsonOption,
    errors,
    expected_errors,
    parse_since,
    print_json,
    settings_with,
)
from agentic_trading.common import signals


def watch_command(
    interval: Annotated[
        float, typer.Option(min=0.5, help="Seconds between two looks at the run catalogue.")
    ] = 10.0,
    since: Annotated[
        str,
        typer.Option(
            help="Leave alone runs whose last change is older: an age (30m, 12h, 7d) or an "
            "ISO date or time."
        ),
    ] = "1h",
    once: Annotated[
        bool, typer.Option("--once", help="Look once, send what it found, and exit.")
    ] = False,
    as_json: JsonOption = False,
) -> None:
    """Send the alerts no one else can: runs whose training and writer both died.

    A run's writer alerts when the run ends or its training dies (ALERT_URLS, ALERT_EVENTS,
    ALERT_RULES). When the writer dies too (the process group killed, the host lost) the run's
    heartbeat goes stale; this watcher finds it in the run catalogue and sends "crashed". It
    also sends alerts whose sender died before it could. Run one anywhere the catalogue is
    reachable, or several: each event is sent once. The dashboard runs one too.

    Example:

    \b
      ALERT_URLS=slack://TokenA/TokenB/TokenC agentic-trading watch
    """
    from agentic_trading.alerts import AlertWatcher
    from agentic_trading.alerts.sender import EXIT_WAIT

    with expected_errors():
        watcher = AlertWatcher(settings_with(), since=parse_since(since).timestamp())
    if once:
        report = watcher.poll()
        sent = watcher.alerter.flush(EXIT_WAIT * 6)
        if as_json:
            print_json({**report.__dict__, "all_sent": sent})
        else:
            errors.print(
                f"{report.queued} alert(s) for runs no one alerted on, {report.taken_over} "
                f"taken over from a sender that died; {'all sent' if sent else 'some not sent yet'}"
            )
        return
    stop = threading.Event()
    signals.watch(lambda _reason: stop.set(), "the watcher")
    errors.print(
        f"watching the run catalogue every {interval:g} s; alerts go to "
        f"{len(watcher.alerter.urls)} address(es) (Ctrl-C stops)"
    )
    try:
        watcher.run(interval, stop)
    except KeyboardInterrupt:
        pass
    finally:
        watcher.alerter.flush(EXIT_WAIT)
