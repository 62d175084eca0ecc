"""How a writer waits for a server that stopped answering: back-off through one outage, bounded."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

__all__ = ["ServerRetry"]


class ServerRetry:
    """Exponential backoff (``base`` doubling up to ``cap`` seconds) through one outage of a
    server, for at most ``timeout`` seconds (a setting such as ``ML_RETRY_TIMEOUT``); after
    that each operation is tried once until the server answers again.

    ``server`` names it in the log lines (one when the outage starts, one when it gives up, one
    when the server answers again); ``held`` says what waits meanwhile.
    """

    def __init__(
        self,
        timeout: float,
        *,
        server: str = "the tracking server",
        held: str = "tracking data is held and retried",
        setting: str = "ML_RETRY_TIMEOUT",
        logger: logging.Logger | None = None,
        base: float = 0.1,
        cap: float = 2.0,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.timeout = timeout
        self._server, self._held, self._setting = server, held, setting
        self._log = logger or logging.getLogger("agentic_trading.tracking")
        self._base = base
        self._cap = cap
        self._sleep = sleep
        self._clock = clock
        self._since: float | None = None
        self._attempt = 0
        self._gave_up = False

    @property
    def in_outage(self) -> bool:
        """Whether the last operation found the server unreachable."""
        return self._since is not None

    def wait(self, error: Exception) -> bool:
        """After a failed attempt: sleep and return True to try again, or False to give up."""
        now = self._clock()
        if self._since is None:
            self._since, self._attempt, self._gave_up = now, 0, False
            self._log.warning(
                "%s; %s for up to %g s (%s)", error, self._held, self.timeout, self._setting
            )
        if now - self._since >= self.timeout:
            if not self._gave_up:
                self._gave_up = True
                self._log.error(
                    "%s has not answered for %.0f s; operations now fail until it answers again",
                    self._server,
                    now - self._since,
                )
            return False
        self._sleep(min(self._cap, self._base * 2**self._attempt))
        self._attempt += 1
        return True

    def reached(self) -> None:
        """After a successful operation: end the outage, if there was one."""
        if self._since is not None:
            self._log.warning(
                "%s answers again after %.1f s; catching up",
                self._server,
                self._clock() - self._since,
            )
            self._since = None
