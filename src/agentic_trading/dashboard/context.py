"""What every page of the dashboard reads from and acts through."""

from __future__ import annotations

import shutil
import tempfile
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

from agentic_trading.config import Settings
from agentic_trading.dashboard.control import DashboardControl
from agentic_trading.dashboard.live import LiveFeed
from agentic_trading.models import registry_for
from agentic_trading.models.registry import ModelRegistry
from agentic_trading.tracking import SyncExperimentRepository, get_sync_experiment_repository
from agentic_trading.tracking.backends import backend_for

__all__ = ["DashboardContext"]


@dataclass
class DashboardContext:
    """Settings, the live feed (messaging), the run repository (tracking) and control."""

    settings: Settings
    feed: LiveFeed
    control: DashboardControl
    ui_name: str = field(init=False)
    ui_url: str = field(init=False)

    def __post_init__(self) -> None:
        # The tracking backend's own UI (agentic-trading tracking-ui, or a tracking server).
        backend = backend_for(self.settings)
        self.ui_name = f"{backend.title} UI"
        self.ui_url = self.run_ui_url(None)

    def run_ui_url(self, run_id: str | None) -> str:
        """Where the backend's UI shows run ``run_id`` (its home page for ``None``)."""
        url: str = backend_for(self.settings).load("ui_url")(self.settings, run_id)
        return url

    @cached_property
    def repository(self) -> SyncExperimentRepository:
        """The tracking repository (``ML_STORAGE_PATH``), opened on first use."""
        return get_sync_experiment_repository(self.settings)

    @property
    def registry(self) -> ModelRegistry | None:
        """The model registry in the run catalogue (caught up with tracking), if there is one."""
        catalogue = self.repository.current_catalogue()
        return None if catalogue is None else registry_for(self.settings, catalogue)

    def alerts(self, run_id: str) -> list[dict[str, Any]]:
        """The alerts claimed for run ``run_id`` (``ALERT_URLS``), from the catalogue; none
        without one, or when it does not answer."""
        from agentic_trading.alerts.ledger import CatalogueLedger
        from agentic_trading.tracking.catalogue import catalogue_url

        url = catalogue_url(self.settings)
        if url is None:
            return []
        try:
            return CatalogueLedger(url).history(f"run:{run_id}:")
        except Exception:
            return []

    def read_artifact(self, run_id: str, name: str) -> bytes | None:
        """The bytes of artifact ``name`` of run ``run_id``: a local file under this store's
        artifact folder (nothing outside it is ever read), or fetched from the tracking
        server; ``None`` when there is none or it cannot be read."""
        try:
            uri = self.repository.get_run(run_id).artifacts.get(name)
        except Exception:
            return None
        if uri is None:
            return None
        parsed = urlparse(uri)
        if parsed.scheme != "file":
            return self._from_server(uri)
        path = Path(unquote(parsed.path)).resolve()
        root = self._artifacts_root()
        if root is None or not path.is_relative_to(root) or not path.is_file():
            return None
        return path.read_bytes()

    def _from_server(self, uri: str) -> bytes | None:
        from agentic_trading.tracking.backends import download_artifact

        folder = tempfile.mkdtemp(prefix="agentic-trading-artifact-")
        try:
            return download_artifact(uri, self.settings, Path(folder)).read_bytes()
        except Exception:
            return None
        finally:
            shutil.rmtree(folder, ignore_errors=True)

    def _artifacts_root(self) -> Path | None:
        from agentic_trading.tracking.backends import artifacts_root

        uri = artifacts_root(self.settings)
        if uri is None or urlparse(uri).scheme != "file":
            return None
        return Path(unquote(urlparse(uri).path)).resolve()
