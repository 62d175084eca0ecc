"""The writer's side of the catalogue: every change the writer applies to the tracking store is
applied to the catalogue too, in the same order, right after.

The catalogue never holds a training up: when its database does not answer (PostgreSQL down),
its changes wait in order in memory (up to ``BACKLOG`` of them) and are applied when it answers
again; beyond that they are dropped and the log says to run ``agentic-trading experiments
reindex``, which rebuilds the catalogue from the store. Readers also catch up on their own.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Callable

from agentic_trading.tracking.catalogue.runs import RunCatalogue
from agentic_trading.tracking.errors import describe

__all__ = ["BACKLOG", "CatalogueMirror", "Change"]

#: One change to the catalogue: a call on it.
Change = Callable[[RunCatalogue], None]

logger = logging.getLogger("agentic_trading.tracking")

#: Catalogue changes kept while its database does not answer.
BACKLOG = 100_000
#: Seconds between two attempts to reach a database that did not answer.
RETRY_SECONDS = 2.0


class CatalogueMirror:
    """Applies the writer's changes to a catalogue, riding out its outages.

    :param opener: makes the :class:`RunCatalogue` (connecting, upgrading); called again after
        a failure until it works.
    """

    def __init__(self, opener: Callable[[], RunCatalogue], location: str) -> None:
        self._opener = opener
        self.location = location
        self._catalogue: RunCatalogue | None = None
        self._backlog: deque[Change] = deque()
        self._down_since: float | None = None
        self._next_try = 0.0
        self._dropped = 0

    @property
    def behind(self) -> int:
        """Changes waiting for the database."""
        return len(self._backlog)

    def apply(self, change: Change) -> None:
        """Queue one change (a call on the catalogue) and apply what can be."""
        if len(self._backlog) >= BACKLOG:
            self._backlog.popleft()
            self._dropped += 1
            if self._dropped == 1:
                logger.error(
                    "the run catalogue at %s is %d changes behind; older ones are dropped: run "
                    "agentic-trading experiments reindex when it answers again",
                    self.location,
                    BACKLOG,
                )
        self._backlog.append(change)
        self.flush()

    def open(self) -> None:
        """Open the catalogue now (a new one is created), so that the first change is quick;
        a catalogue that does not answer is left to the first change to report."""
        if self._catalogue is None:
            try:
                self._catalogue = self._opener()
            except Exception as exc:
                logger.debug("the run catalogue at %s did not open yet: %s", self.location, exc)

    def flush(self) -> None:
        """Apply waiting changes in order; stop at the first failure (retried later)."""
        if not self._backlog or time.monotonic() < self._next_try:
            return
        while self._backlog:
            try:
                if self._catalogue is None:
                    self._catalogue = self._opener()
                self._backlog[0](self._catalogue)
            except Exception as exc:
                self._failed(exc)
                return
            self._backlog.popleft()
        if self._down_since is not None:
            logger.warning(
                "the run catalogue at %s answers again after %.0f s; it is current",
                self.location,
                time.monotonic() - self._down_since,
            )
            self._down_since = None

    def _failed(self, exc: Exception) -> None:
        self._next_try = time.monotonic() + RETRY_SECONDS
        if self._down_since is None:
            self._down_since = time.monotonic()
            logger.warning(
                "the run catalogue at %s did not take a change (%s); the training goes on, "
                "changes wait and are retried",
                self.location,
                describe(exc),
            )
