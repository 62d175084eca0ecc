"""Aim's database migrations run in this process, not in a new interpreter.

Aim sets a new repository's database up by running ``python -m alembic upgrade head`` in a
subprocess: a second interpreter that imports Alembic, SQLAlchemy and Aim again, about 2 s of
CPU on two cores a training keeps busy. The same Alembic migrations (Aim's own ``alembic.ini``,
``env.py`` and versions) run here in about 0.2 s and leave the same database. Should they fail
here, Aim's subprocess runs them instead (Alembic goes on from the revision reached).

SQLite runs Alembic's steps without a transaction, so a set-up killed midway (a writer stopped
during its start-up) leaves a database half migrated, on which the same steps fail ("duplicate
column"): :func:`discard_unfinished_database` removes such a database, which holds no run, so
that the next set-up starts afresh.
"""

from __future__ import annotations

import logging
import logging.config
import os
import sqlite3
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

logger = logging.getLogger("agentic_trading.tracking")

_URL_VARIABLE = "AIM_RUN_META_DATA_DB_URL"  # where Aim's env.py reads the database from
_lock = threading.Lock()  # one set-up at a time: the swaps below are process-wide


def _alembic_ini(create_migration_cmd: Callable[[], list[str]]) -> str:
    command = create_migration_cmd()
    return command[command.index("-c") + 1]


def _upgrade_here(db_url: str, aim_upgrade: Callable[[str], None]) -> None:
    from aim.storage.migrations.utils import create_migration_cmd
    from alembic import command
    from alembic.config import Config

    # Aim's env.py configures logging from its alembic.ini, which would disable every logger
    # this process has; the subprocess had no loggers to lose.
    file_config, previous = logging.config.fileConfig, os.environ.get(_URL_VARIABLE)
    logging.config.fileConfig = lambda *args, **kwargs: None
    os.environ[_URL_VARIABLE] = db_url
    try:
        command.upgrade(Config(_alembic_ini(create_migration_cmd)), "head")
    except Exception as exc:
        logger.debug("Aim's migrations failed in process, running Aim's own: %s", exc)
        aim_upgrade(db_url)
    finally:
        logging.config.fileConfig = file_config
        if previous is None:
            os.environ.pop(_URL_VARIABLE, None)
        else:
            os.environ[_URL_VARIABLE] = previous


@contextmanager
def migrations_in_process() -> Iterator[None]:
    """Within this block, Aim upgrades a repository's database in this process."""
    with _lock:
        try:
            from aim.storage.structured import db
        except ImportError:  # pragma: no cover - Aim's layout changed: its own way then
            yield
            return
        aim_upgrade = db.upgrade_database  # type: ignore[attr-defined]
        db.upgrade_database = lambda url: _upgrade_here(url, aim_upgrade)  # type: ignore[attr-defined]
        try:
            yield
        finally:
            db.upgrade_database = aim_upgrade  # type: ignore[attr-defined]


def discard_unfinished_database(repository: Path) -> None:
    """Remove the database of a repository whose set-up did not finish (Aim writes ``VERSION``
    last; the caller checked it is missing), unless it holds runs (an Aim 2 repository, say)."""
    database = repository / "run_metadata.sqlite"
    if not database.is_file():
        return
    try:
        connection = sqlite3.connect(database)
        try:
            runs = connection.execute("SELECT count(*) FROM run").fetchone()[0]
        except sqlite3.OperationalError:  # no run table: not even the first step was done
            runs = 0
        finally:
            connection.close()
    except sqlite3.Error as exc:
        logger.debug("cannot read %s, leaving it: %s", database, exc)
        return
    if runs == 0:
        logger.debug("removing %s, left by a set-up that did not finish", database)
        database.unlink()
