"""Validation of the values users hand us: numbers and JSON-able mappings."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from enum import Enum
from typing import Any

__all__ = ["check_json_mapping", "check_number", "to_float"]


def to_float(value: object, what: str) -> float:
    """``value`` as a float (NaN and infinity included), or ``ValueError`` naming ``what``.

    Real numbers, numpy scalars and one-element arrays or tensors are numbers; ``bool``, strings,
    ``None`` and containers are not.
    """
    if isinstance(value, bool | str | bytes):
        raise ValueError(f"{what} must be a number, got {type(value).__name__} {value!r}")
    if isinstance(value, int | float):
        return float(value)
    try:
        return float(value)  # type: ignore[arg-type]  # numpy scalars, Decimal, 0-d tensors
    except (TypeError, ValueError):
        raise ValueError(f"{what} must be a number, got {type(value).__name__} {value!r}") from None


def check_number(value: object, what: str) -> float:
    """``value`` as a finite float, or ``ValueError`` naming ``what``."""
    number = to_float(value, what)
    if not math.isfinite(number):
        raise ValueError(f"{what} must be finite, got {number!r}")
    return number


def check_json_mapping(
    value: Mapping[str, Any] | None, what: str, max_bytes: int
) -> dict[str, Any]:
    """``value`` as plain JSON data (enums become their values), or ``ValueError`` naming ``what``.

    Keys must be strings; values JSON types, finite numbers only; at most ``max_bytes`` as JSON.
    """
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise ValueError(f"{what} must be a mapping of names to values, got {type(value).__name__}")
    try:
        text = json.dumps(dict(value), allow_nan=False, default=_reject)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{what} is not JSON-serializable: {exc}") from None
    if len(text) > max_bytes:
        raise ValueError(f"{what} is {len(text)} bytes as JSON; at most {max_bytes}")
    result: dict[str, Any] = json.loads(text)
    if any(not isinstance(key, str) for key in value):
        raise ValueError(f"{what} keys must be strings")
    return result


def _reject(value: object) -> Any:
    if isinstance(value, Enum):
        return value.value
    raise TypeError(f"{type(value).__name__} value {value!r} cannot be stored as JSON")
