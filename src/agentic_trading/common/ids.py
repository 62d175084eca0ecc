"""Validation of the names that become keys: experiment ids and namespaces."""

from __future__ import annotations

import re

__all__ = ["MAX_NAME_LENGTH", "NAME_PATTERN", "validate_name"]

MAX_NAME_LENGTH = 128
NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.\-]*")


_KNOWN: set[str] = set()  # names already checked: a training sends the same ids every step


def validate_name(value: object, what: str = "experiment_id") -> str:
    """Return ``value`` if it is a safe name, else raise ``ValueError`` naming it.

    A safe name is 1-128 characters of letters, digits, ``_``, ``.`` and ``-``, starting with a
    letter or digit, so it can never reach a key outside its namespace (no ``:``, ``*``, ``{``,
    spaces or control characters).
    """
    if value.__class__ is str and value in _KNOWN:
        return value
    if not isinstance(value, str):
        raise ValueError(f"{what} must be a string, got {type(value).__name__} {value!r}")
    if not value:
        raise ValueError(f"{what} must not be empty")
    if len(value) > MAX_NAME_LENGTH:
        raise ValueError(
            f"{what} {value[:40]!r}... is {len(value)} characters long; "
            f"at most {MAX_NAME_LENGTH} are allowed"
        )
    if NAME_PATTERN.fullmatch(value) is None:
        raise ValueError(
            f"{what} {value!r} is not allowed: use letters, digits, '_', '.' and '-', "
            "starting with a letter or digit"
        )
    if len(_KNOWN) < 100_000:
        _KNOWN.add(value)
    return value
