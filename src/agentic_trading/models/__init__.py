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
from agentic_trading.tracking.catalogue import open_catalogue

__all__ = [
    "LoadedModel",
    "ModelRegistry",
    "ModelVersion",
    "RegisteredModel",
    "RegistryError",
    "check_alias",
    "get_model_registry",
    "load_model",
]


def get_model_registry(settings: Settings | None = None) -> ModelRegistry:
    """The registry in the run catalogue's database (``ML_CATALOG_URL``)."""
    settings = settings or get_settings()
    catalogue = open_catalogue(settings)
    if catalogue is None:
        raise RegistryError(
            "the model registry lives in the run catalogue, and there is none here: set "
            "ML_CATALOG_URL (with aim:// a shared database, e.g. postgresql://...)"
        )
    return ModelRegistry(catalogue)
