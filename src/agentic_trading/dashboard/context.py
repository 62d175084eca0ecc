"""What every page of the dashboard reads from and acts through."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property

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
