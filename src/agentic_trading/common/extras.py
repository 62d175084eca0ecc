"""Optional dependencies, imported when first used, with an error that names the extra."""

from __future__ import annotations

import importlib
import shutil
import sys
from pathlib import Path
from types import ModuleType

__all__ = ["executable", "require"]


def require(module: str, extra: str, what: str, error: type[Exception] = ImportError) -> ModuleType:
    """``import module``, or raise ``error`` saying ``what`` needs it and which extra installs it
    (``pip install 'agentic-trading[extra]'``)."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:  # pragma: no cover - depends on the installed extras
        raise error(f"{what}: pip install 'agentic-trading[{extra}]'") from exc


def executable(name: str, extra: str, error: type[Exception] = ImportError) -> str:
    """The ``name`` command next to this Python, else the one on PATH; ``error`` naming the
    extra that installs it when there is none."""
    beside = Path(sys.executable).with_name(name)
    if beside.exists():
        return str(beside)
    found = shutil.which(name)
    if found is None:
        raise error(f"the {name} command is not installed: pip install 'agentic-trading[{extra}]'")
    return found
