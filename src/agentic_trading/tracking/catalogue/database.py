"""The catalogue's database: where it is (``ML_CATALOG_URL``), its engine, its migrations.

By default a local Aim repository keeps its catalogue in ``catalogue.db`` (SQLite, WAL mode:
several writer processes on one machine) beside ``.aim``; ``ML_CATALOG_URL=postgresql://...``
gives every host one shared catalogue; ``ML_CATALOG_URL=none`` turns it off (every query then
reads Aim, as before). A catalogue older than the code is upgraded by Alembic when opened.
"""

from __future__ import annotations

import fcntl
import logging
import threading
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from agentic_trading.common.extras import require
from agentic_trading.config import Settings, mask_url
from agentic_trading.tracking.catalogue.schema import SCHEMA_VERSION, metadata
from agentic_trading.tracking.errors import TrackingUnavailableError, describe

__all__ = ["CatalogueUnavailableError", "catalogue_url", "connect", "upgrade"]

logger = logging.getLogger("agentic_trading.tracking.catalogue")

MIGRATIONS = Path(__file__).with_name("migrations")


class CatalogueUnavailableError(TrackingUnavailableError):
    """The catalogue's database cannot be reached or set up; the message names it (no
    password)."""


def catalogue_url(settings: Settings) -> str | None:
    """The SQLAlchemy URL of the catalogue for these settings, or ``None`` for no catalogue."""
    url = settings.ml_catalog_url
    if url == "none":
        return None
    if url:
        from agentic_trading.common.databases import sqlalchemy_url

        return sqlalchemy_url(url)
    if settings.is_remote_tracking():
        return None  # hosts share no folder: a shared catalogue needs ML_CATALOG_URL
    folder = Path(settings.ml_storage_path).expanduser().resolve()
    return f"sqlite:///{folder / 'catalogue.db'}"


_engines: dict[str, Engine] = {}
_engines_lock = threading.Lock()


def connect(url: str) -> Engine:
    """One engine per URL and process, set up to the current schema."""
    with _engines_lock:
        engine = _engines.get(url)
        if engine is None:
            engine = _engines[url] = _engine(url)
            try:
                upgrade(engine)
            except Exception:
                del _engines[url]
                raise
        return engine


def _engine(url: str) -> Engine:
    if url.startswith("sqlite"):
        path = Path(url.removeprefix("sqlite:///"))
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise CatalogueUnavailableError(
                f"the run catalogue at {path} cannot be created: {describe(exc)}"
            ) from None
        engine = sa.create_engine(url, connect_args={"timeout": 30})

        @sa.event.listens_for(engine, "connect")
        def _pragmas(connection: Any, _record: Any) -> None:
            cursor = connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")  # readers never block the writers
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.close()

        return engine
    if url.startswith("postgresql+psycopg:"):
        require("psycopg", "studies", "a PostgreSQL run catalogue needs psycopg",
                CatalogueUnavailableError)  # fmt: skip
    return sa.create_engine(
        url,
        pool_pre_ping=True,
        pool_size=5,
        max_overflow=5,
        pool_timeout=30,
        connect_args={"connect_timeout": 5},
    )


def _version(engine: Engine) -> str | None:
    """The catalogue's schema revision, or ``None`` (new, or unreadable: Alembic decides)."""
    try:
        with engine.connect() as db:
            return db.execute(sa.text("SELECT version_num FROM alembic_version")).scalar()
    except sa.exc.DBAPIError:
        return None


def upgrade(engine: Engine) -> None:
    """Bring the catalogue to the current schema (Alembic), one process at a time."""
    if _version(engine) == SCHEMA_VERSION:
        return  # current: no need to load Alembic (a writer's first change waits for this)
    where = mask_url(str(engine.url.render_as_string(hide_password=False)))
    try:
        with _exclusive(engine) as connection:
            if not sa.inspect(connection).get_table_names():
                _create(connection)  # a new catalogue: today's schema at once
            elif _version(engine) != SCHEMA_VERSION:  # another process may have just made it
                _migrate(connection)
    except Exception as exc:
        problem = (
            "does not answer" if isinstance(exc, sa.exc.OperationalError) else "cannot be opened"
        )
        raise CatalogueUnavailableError(
            f"the run catalogue at {where} {problem}: {describe(exc)}"
        ) from None


def _create(connection: sa.Connection) -> None:
    """Today's tables, stamped with today's revision: what the migrations would build, as
    Alembic's cookbook does for a database built from scratch (tests check they agree)."""
    metadata.create_all(connection)
    version = sa.Table(
        "alembic_version",
        sa.MetaData(),
        sa.Column("version_num", sa.String(32), primary_key=True),
    )
    version.create(connection)
    connection.execute(sa.insert(version).values(version_num=SCHEMA_VERSION))


def _migrate(connection: sa.Connection) -> None:
    """Alembic's upgrade to head on this connection."""
    from alembic import command
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["connection"] = connection
    command.upgrade(config, "head")


class _exclusive:
    """A connection holding the migration lock: a file lock beside an SQLite file, an
    advisory lock on PostgreSQL."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.lock_file: Any = None
        self.connection: Any = None

    def __enter__(self) -> Any:
        if self.engine.dialect.name == "sqlite":
            database = self.engine.url.database or ""
            self.lock_file = open(f"{database}.lock", "a")
            fcntl.flock(self.lock_file, fcntl.LOCK_EX)
        self.connection = self.engine.connect()
        if self.engine.dialect.name == "postgresql":
            self.connection.execute(sa.text("SELECT pg_advisory_lock(72657467)"))
        return self.connection

    def __exit__(self, kind: type[BaseException] | None, *exc_info: object) -> None:
        try:
            # Commit before the lock goes: the next process must see the tables this one made
            # (unlocked first, it found none and raced to create them too).
            if kind is None:
                self.connection.commit()
            else:
                self.connection.rollback()
            if self.engine.dialect.name == "postgresql":
                self.connection.execute(sa.text("SELECT pg_advisory_unlock(72657467)"))
                self.connection.commit()
            self.connection.close()
        finally:
            if self.lock_file is not None:
                fcntl.flock(self.lock_file, fcntl.LOCK_UN)
                self.lock_file.close()
