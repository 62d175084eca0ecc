"""Threshold rules (``ALERT_RULES``): ``max_drawdown > 0.2; reward < -100``.

A rule names a metric, a comparison and a number. It is checked on the run's final metrics
when the run ends, and on each live value of a tracked series of that name while it trains;
the first breach of a rule alerts once per run.
"""

from __future__ import annotations

import math
import operator
import re
from collections.abc import Callable
from dataclasses import dataclass

__all__ = ["AlertRule", "parse_rules"]

_COMPARE: dict[str, Callable[[float, float], bool]] = {
    ">=": operator.ge,
    "<=": operator.le,
    ">": operator.gt,
    "<": operator.lt,
    "==": operator.eq,
    "!=": operator.ne,
}
_RULE = re.compile(r"^([A-Za-z_][\w./-]*)\s*(>=|<=|==|!=|>|<)\s*(\S+)$")


@dataclass(frozen=True)
class AlertRule:
    """``metric`` compared (``op``) with ``threshold``."""

    metric: str
    op: str
    threshold: float

    @property
    def text(self) -> str:
        """The rule as written, e.g. ``max_drawdown > 0.2``."""
        return f"{self.metric} {self.op} {self.threshold:g}"

    def breached(self, value: float) -> bool:
        """Whether ``value`` breaks the rule (a non-finite value never does)."""
        return math.isfinite(value) and _COMPARE[self.op](value, self.threshold)


def parse_rules(text: str | None) -> tuple[AlertRule, ...]:
    """The rules in ``text`` (separated by ``;`` or new lines); ``ValueError`` naming the first
    one that is not ``metric OP number`` with OP one of > >= < <= == !=."""
    rules = []
    for part in re.split(r"[;\n]", text or ""):
        written = part.strip()
        if not written:
            continue
        match = _RULE.match(written)
        threshold = _number(match.group(3)) if match else None
        if match is None or threshold is None:
            raise ValueError(
                f"rules 'metric OP number' separated by ';', with OP one of "
                f"{' '.join(_COMPARE)} (for example 'max_drawdown > 0.2; reward < -100'); "
                f"{written!r} is not one"
            )
        rules.append(AlertRule(match.group(1), match.group(2), threshold))
    return tuple(rules)


def _number(text: str) -> float | None:
    try:
        value = float(text)
    except ValueError:
        return None
    return value if math.isfinite(value) else None
