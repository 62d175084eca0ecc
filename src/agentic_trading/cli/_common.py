"""What every CLI command shares: settings, clean errors, JSON output."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, NoReturn

import typer
from pydantic import ValidationError
from rich.console import Console
from rich.markup import escape
from typer.core import TyperArgument

from agentic_trading.config import Settings, SettingsError, load_settings
from agentic_trading.messaging.brokers import BrokerError
from agentic_trading.studies.storage import StudyStorageError
from agentic_trading.tracking.errors import TrackingError

console = Console()
errors = Console(stderr=True)
# In a pipe or a file, prose is not broken into lines of the default 80 columns: each line
# stays whole for grep and friends (tables there are plain columns, cli/tables.py).
console.soft_wrap = not console.is_terminal

#: ``--json``: machine-readable output on stdout for scripts.
JsonOption = Annotated[bool, typer.Option("--json", help="JSON for scripts.")]
#: ``--namespace``: whose live experiments.
NamespaceOption = Annotated[
    str | None,
    typer.Option(
        "--namespace",
        "-n",
        help="Messaging namespace (default: MESSAGE_NAMESPACE, else 'default').",
    ),
]
#: ``--broker``: the messaging broker.
BrokerOption = Annotated[
    str | None,
    typer.Option("--broker", help="'memory' or 'redis' (default: MESSAGE_BROKER_TYPE)."),
]

#: Exit codes, the same for every command: 2 when the command must be fixed (a malformed
#: value, a setting, a run, model or study that does not exist), 1 when the work failed (a
#: service down, a training that failed or was stopped).
EXIT_USAGE = 2
EXIT_FAILURE = 1
#: The training completed and its results were printed, but tracking could not record all of it.
EXIT_INCOMPLETE_RECORD = 3


def fail(message: str, code: int = EXIT_FAILURE) -> NoReturn:
    """Print one clear line on stderr and exit, without a traceback."""
    errors.print(f"[bold red]error:[/] {escape(message)}", highlight=False, soft_wrap=True)
    raise typer.Exit(code)


@contextmanager
def expected_errors() -> Iterator[None]:
    """Turn the failures a user can fix into one line and an exit code."""
    try:
        yield
    except SettingsError as exc:
        fail(f"bad setting: {exc}", EXIT_USAGE)
    except ValidationError as exc:
        fail("; ".join(_describe(e) for e in exc.errors()), EXIT_USAGE)
    except (LookupError, ValueError) as exc:  # no such run, model, study; a malformed value
        fail(str(exc).strip("'\""), EXIT_USAGE)
    except (BrokerError, TrackingError, StudyStorageError) as exc:  # a service failed the work
        fail(str(exc))


def _describe(error: Any) -> str:
    reason = str(error.get("msg", "invalid")).removeprefix("Value error, ")
    field = ".".join(str(part) for part in error.get("loc", ()))
    if not field:  # a check of the whole: its message names the values
        return reason
    return f"{field}={error.get('input')!r} is not allowed: {reason}"


def settings_with(**overrides: Any) -> Settings:
    """The settings in force, with command-line options (those not None) on top."""
    given = {k: v for k, v in overrides.items() if v is not None}
    return load_settings(**given)


def repository() -> Any:
    """The tracking repository of the settings in force."""
    from agentic_trading.tracking import get_sync_experiment_repository

    return get_sync_experiment_repository(settings_with())


def start_writer(settings: Settings) -> None:
    """Start the process's tracking writer now, before a command imports torch: the two
    imports overlap on a machine's cores."""
    from agentic_trading.tracking import start_writer as start

    start(settings)


def print_json(data: Any) -> None:
    """Machine-readable output on stdout, nothing else."""
    sys.stdout.write(json.dumps(data, indent=2, default=str) + "\n")
    sys.stdout.flush()


_AGO = {"m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def parse_since(text: str) -> datetime:
    """``--since``: an ISO date or time (``2026-11-28``, ``2026-11-28T09:30``, UTC unless it
    says otherwise) or an age such as ``30m``, ``12h``, ``7d``, ``2w``."""
    value = text.strip()
    if value[:-1].isdigit() and value[-1:] in _AGO:
        return datetime.now(UTC) - timedelta(seconds=int(value[:-1]) * _AGO[value[-1]])
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise ValueError(
            f"--since {text!r} is not allowed: give an ISO date or time (2026-11-28, "
            "2026-11-28T09:30) or an age (30m, 12h, 7d, 2w)"
        ) from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _usage_name(self: Any) -> str:
    # Typer writes a required argument as {name} in the usage line; the convention every
    # other tool follows (and our help texts use) is NAME, and [NAME] when optional.
    name = str(self.metavar or self.name).upper()
    name = name if self.required else f"[{name}]"
    return name + ("..." if self.nargs != 1 else "")


TyperArgument._usage_display_name = _usage_name  # type: ignore[method-assign]
