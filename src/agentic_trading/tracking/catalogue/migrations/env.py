"""Alembic's environment for the catalogue: migrations run on the connection the catalogue
hands over (``config.attributes["connection"]``), never from a URL in a file."""

from __future__ import annotations

from alembic import context

from agentic_trading.tracking.catalogue.schema import metadata

connection = context.config.attributes["connection"]
context.configure(connection=connection, target_metadata=metadata, render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()
