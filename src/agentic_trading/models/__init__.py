"""Models in use: a registry of trained models (versions, aliases) and ``load_model``.

::

    from agentic_trading.models import load_model

    champion = load_model("EURUSD-PPO@champion")
    position = champion.act(last_closes, position=0.0)     # -1 short, 0 flat, 1 long
    champion.model.predict(observation)                    # the SB3 model itself

Register and promote with ``agentic-trading models register RUN_ID NAME`` and
``agentic-trading models promote NAME VERSION --alias champion`` (or the dashboard).
"""

from __future__ import annotations

from agentic_trading.config import Settings, get_settings
from agentic_trading.models.loading import LoadedModel, load_model
from agentic_trading.models.registry import (
    ModelRegistry,
    ModelVersion,
    RegisteredModel,
    RegistryError,
    check_alias,
)
from agentic_trading.tracking import SyncExperimentRepository
from agentic_trading.tracking.backends import backend_for
from agentic_trading.tracking.catalogue import RunCatalogue, open_catalogue

__all__ = [
    "LoadedModel",
    "ModelRegistry",
    "ModelVersion",
    "RegisteredModel",
    "RegistryError",
    "check_alias",
    "get_model_registry",
    "load_model",
    "registry_for",
]


def get_model_registry(
    settings: Settings | None = None, repository: SyncExperimentRepository | None = None
) -> ModelRegistry:
    """The registry in the run catalogue's database (``ML_CATALOG_URL``); with the MLflow
    backend it keeps MLflow's model registry in step. With ``repository``, its catalogue is
    caught up with the tracking store first (so a run tracked without it can be registered)."""
    settings = settings or get_settings()
    if repository is not None:
        catalogue = repository.current_catalogue()
    else:
        catalogue = open_catalogue(settings)
    if catalogue is None:
        raise RegistryError(
            "the model registry lives in the run catalogue, and there is none here: set "
            "ML_CATALOG_URL (with a tracking server, a shared database: postgresql://...)"
        )
    return registry_for(settings, catalogue)


def registry_for(settings: Settings, catalogue: RunCatalogue) -> ModelRegistry:
    """The registry over ``catalogue`` for these settings (MLflow's registry mirrored with the
    MLflow backend)."""
    backend = backend_for(settings)
    mirror = backend.load("registry_mirror")(settings) if backend.registry_mirror else None
    return ModelRegistry(catalogue, mirror)
