"""How the tracking writer waits for a tracking server that stopped answering."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

__all__ = ["ServerRetry"]

logger = logging.getLogger("agentic_trading.tracking")


class ServerRetry:
    """Exponential backoff (``base`` doubling up to ``cap`` seconds) through one outage of the
    tracking server, for at most ``timeout`` seconds (``ML_RETRY_TIMEOUT``); after that each
    operation is tried once until the server answers again."""

    def __init__(
        self,
        timeout: float,
        *,
        base: float = 0.1,
        cap: float = 2.0,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.timeout = timeout
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
            logger.warning(
                "%s; tracking data is held and retried for up to %g s (ML_RETRY_TIMEOUT)",
                error,
                self.timeout,
            )
        if now - self._since >= self.timeout:
            if not self._gave_up:
                self._gave_up = True
                logger.error(
                    "the tracking server has not answered for %.0f s; operations now fail "
                    "until it answers again",
                    now - self._since,
                )
            return False
        self._sleep(min(self._cap, self._base * 2**self._attempt))
        self._attempt += 1
        return True

    def reached(self) -> None:
        """After a successful operation: end the outage, if there was one."""
        if self._since is not None:
            logger.warning(
                "the tracking server answers again after %.1f s; catching up",
                self._clock() - self._since,
            )
            self._since = None
