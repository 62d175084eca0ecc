"""The dashboard's window on messaging: which experiments to show, and waiting for one to start."""

from __future__ import annotations

import asyncio
import time

from agentic_trading.common.loop_thread import BackgroundLoop
from agentic_trading.config import Settings
from agentic_trading.dashboard.data import LIVE_STATUSES
from agentic_trading.messaging.channels.training import TrainingChannel
from agentic_trading.messaging.messages import ExperimentState

__all__ = ["LiveFeed"]

#: Finished experiments stay on the live view this long, so a stop or a crash is seen happen.
RECENT_SECONDS = 600.0


def is_live(state: ExperimentState) -> bool:
    """Pending or running."""
    return state.status.value in LIVE_STATUSES


class LiveFeed:
    """Experiments from one messaging channel, for synchronous callers (Dash callbacks).

    Raises :class:`~agentic_trading.messaging.brokers.BrokerError` when messaging is unreachable.
    """

    def __init__(self, settings: Settings) -> None:
        self.channel = TrainingChannel(settings=settings)
        self._background = BackgroundLoop.get()
        self._timeout = settings.redis_socket_timeout + settings.redis_connect_timeout + 1

    def states(self) -> list[ExperimentState]:
        """Live experiments and those that finished in the last ten minutes, newest first."""
        states = self._background.run(self.channel.list_experiments(), timeout=self._timeout)
        cutoff = time.time() - RECENT_SECONDS
        return [s for s in states if is_live(s) or (s.finished_at or s.updated_at) >= cutoff]

    def wait_until_live(self, timeout: float) -> bool:
        """True as soon as an experiment is pending or running (at once if one is), False
        after ``timeout`` seconds without one. Waits on the event log, it does not poll."""
        return self._background.run(self._wait(seconds=timeout), timeout=timeout + self._timeout)

    async def _wait(self, seconds: float) -> bool:
        cursor = await self.channel.last_event_id()
        if any(is_live(s) for s in await self.channel.list_experiments()):
            return True

        async def first_live() -> bool:
            async for event in self.channel.subscribe(last_event_id=cursor, poll_interval=seconds):
                if event.state is not None and is_live(event.state):
                    return True
            return False

        try:
            return await asyncio.wait_for(first_live(), seconds)
        except TimeoutError:
            return False

    def close(self) -> None:
        """Close the channel's connections."""
        self._background.run(self.channel.close(), timeout=self._timeout)
