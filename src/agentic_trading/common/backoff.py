"""Reconnection back-off strategies: small objects injected where reconnection happens."""

from __future__ import annotations

import random
from typing import Protocol

__all__ = ["Backoff", "ExponentialBackoff"]


class Backoff(Protocol):
    """How long to wait before the ``failures``-th retry (``failures`` >= 1)."""

    def delay(self, failures: int) -> float: ...


class ExponentialBackoff:
    """``base * 2**(failures-1)`` seconds, capped, with up to ``jitter`` of it added at random."""

    def __init__(self, base: float = 0.2, cap: float = 5.0, jitter: float = 0.1) -> None:
        if base <= 0 or cap < base or not 0 <= jitter <= 1:
            raise ValueError(f"bad back-off: base={base}, cap={cap}, jitter={jitter}")
        self.base, self.cap, self.jitter = base, cap, jitter

    def delay(self, failures: int) -> float:
        raw: float = min(self.cap, self.base * 2.0 ** max(0, failures - 1))
        return raw * (1 + self.jitter * random.random())
