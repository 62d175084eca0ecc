"""The run catalogue: one SQL row per tracked run, beside the tracking store, for lists, sorts
and filters that stay fast at 100,000 runs; and the model registry's tables.

Aim (or another tracking backend) stays the home of metric series, artifacts and its own UI;
the catalogue is derived data, kept current by the tracker's writer and rebuilt from the store
by ``agentic-trading experiments reindex``. ``ML_CATALOG_URL`` says where it is: by default
``catalogue.db`` (SQLite) beside a local Aim repository; ``postgresql://...`` for one shared by
every host; ``none`` for no catalogue.
"""

from __future__ import annotations

import shutil
import tempfile
import threading
import weakref

from agentic_trading.config import Settings
from agentic_trading.tracking.catalogue.database import CatalogueUnavailableError, catalogue_url
from agentic_trading.tracking.catalogue.query import (
    Condition,
    RunQuery,
    StatusFilter,
    check_order_by,
    parse_condition,
)
from agentic_trading.tracking.catalogue.runs import RunCatalogue, SyncReport

__all__ = [
    "CatalogueUnavailableError",
    "Condition",
    "RunCatalogue",
    "RunQuery",
    "StatusFilter",
    "SyncReport",
    "catalogue_url",
    "check_order_by",
    "open_catalogue",
    "parse_condition",
    "scratch_catalogue",
]


def open_catalogue(settings: Settings) -> RunCatalogue | None:
    """The catalogue for these settings (set up or upgraded on first use), or ``None`` when
    there is none (``ML_CATALOG_URL=none``, or ``aim://`` without ``ML_CATALOG_URL``)."""
    url = catalogue_url(settings)
    if url is None:
        return None
    return RunCatalogue(url, settings.ml_heartbeat_timeout)


_scratch: dict[tuple[str, float], RunCatalogue] = {}
_scratch_lock = threading.Lock()


def scratch_catalogue(location: str, heartbeat_timeout: float) -> RunCatalogue:
    """The private catalogue of the tracking store at ``location``, in a temporary folder
    removed when the process ends: where a repository without a catalogue of its own answers
    its queries. One per store and process, so repositories made again and again share it."""
    key = (location, heartbeat_timeout)
    with _scratch_lock:
        catalogue = _scratch.get(key)
        if catalogue is None:
            folder = tempfile.mkdtemp(prefix="agentic-trading-catalogue-")
            catalogue = RunCatalogue(f"sqlite:///{folder}/catalogue.db", heartbeat_timeout)
            weakref.finalize(catalogue, shutil.rmtree, folder, ignore_errors=True)
            _scratch[key] = catalogue
        return catalogue
