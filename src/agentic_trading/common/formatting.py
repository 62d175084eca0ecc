"""Human formatting of durations and rates, shared by the terminal and the dashboard."""

from __future__ import annotations

__all__ = ["duration", "rate"]


def duration(seconds: float | None) -> str:
    """``1h02m``, ``3m05s``, ``42s``; ``-`` for unknown."""
    if seconds is None:
        return "-"
    seconds = max(0, round(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h{minutes:02d}m"
    if minutes:
        return f"{minutes}m{secs:02d}s"
    return f"{secs}s"


def rate(steps_per_second: float | None) -> str:
    """``1,234/s``; ``-`` for unknown."""
    return "-" if steps_per_second is None else f"{steps_per_second:,.0f}/s"
