"""Database URLs as SQLAlchemy takes them, shared by the run catalogue and study storage."""

from __future__ import annotations

import importlib.util

__all__ = ["sqlalchemy_url"]


def sqlalchemy_url(url: str) -> str:
    """``url`` as SQLAlchemy takes it: ``postgresql://`` uses psycopg (3) unless psycopg2 is
    installed."""
    if url.startswith("postgresql://") and importlib.util.find_spec("psycopg2") is None:
        return "postgresql+psycopg://" + url.removeprefix("postgresql://")
    return url
