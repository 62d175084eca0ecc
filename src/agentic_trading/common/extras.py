"""Optional dependencies, imported when first used, with an error that names the extra."""

from __future__ import annotations

import importlib
from types import ModuleType

__all__ = ["require"]


def require(module: str, extra: str, what: str, error: type[Exception] = ImportError) -> ModuleType:
    """``import module``, or raise ``error`` saying ``what`` needs it and which extra installs it
    (``pip install 'agentic-trading[extra]'``)."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:  # pragma: no cover - depends on the installed extras
        raise error(f"{what}: pip install 'agentic-trading[{extra}]'") from exc
