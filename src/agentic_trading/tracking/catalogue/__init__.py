"""The run catalogue: one SQL row per tracked run, beside the tracking store, for lists, sorts
and filters that stay fast at 100,000 runs; and the model registry's tables.

Aim (or another tracking backend) stays the home of metric series, artifacts and its own UI;
the catalogue is derived data, kept current by the tracker's writer and rebuilt from the store
by ``agentic-trading experiments reindex``. ``ML_CATALOG_URL`` says where it is: by default
``catalogue.db`` (SQLite) beside a local Aim repository; ``postgresql://...`` for one shared by
every host; ``none`` for no catalogue.
"""

from __future__ import annotations

from agentic_trading.config import Settings
from agentic_trading.tracking.catalogue.database import CatalogueUnavailableError, catalogue_url
from agentic_trading.tracking.catalogue.runs import (
    Condition,
    RunCatalogue,
    RunQuery,
    SyncReport,
    check_order_by,
    parse_condition,
)

__all__ = [
    "CatalogueUnavailableError",
    "Condition",
    "RunCatalogue",
    "RunQuery",
    "SyncReport",
    "catalogue_url",
    "check_order_by",
    "open_catalogue",
    "parse_condition",
]


def open_catalogue(settings: Settings) -> RunCatalogue | None:
    """The catalogue for these settings (set up or upgraded on first use), or ``None`` when
    there is none (``ML_CATALOG_URL=none``, or ``aim://`` without ``ML_CATALOG_URL``)."""
    url = catalogue_url(settings)
    if url is None:
        return None
    return RunCatalogue(url, settings.ml_heartbeat_timeout)
