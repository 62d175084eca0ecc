"""Load a registered model ready to trade: the SB3 model, the config it was trained with (its
features' frozen scaling included) and its verdict."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

import numpy as np
from numpy.typing import ArrayLike

from agentic_trading.common.extras import require
from agentic_trading.config import Settings, get_settings
from agentic_trading.models.registry import ModelVersion, RegistryError

__all__ = ["LoadedModel", "load_model"]


@dataclass
class LoadedModel:
    """A registered model version, loaded: ``model`` is the Stable-Baselines3 model."""

    version: ModelVersion
    model: Any

    @property
    def config(self) -> dict[str, Any]:
        """The training's config (agent, window size, costs, the features' frozen scaling)."""
        return self.version.config

    @property
    def verdict(self) -> dict[str, Any]:
        """What the run's verdict said: its words and figures."""
        return self.version.verdict

    def observation(self, closes: ArrayLike, position: float = 0.0) -> np.ndarray:
        """What the model sees after the last of ``closes`` (at least ``window_size + 1``
        of them, oldest first) holding ``position``: the training's own features."""
        from agentic_trading.training.features import FeatureScaler, log_returns

        window = int(self.config.get("window_size", 10))
        prices = np.asarray(closes, dtype=float)
        if prices.ndim != 1 or len(prices) < window + 1 or not (prices > 0).all():
            raise ValueError(f"need at least {window + 1} positive closes, oldest first")
        scaler = FeatureScaler.from_config(self.config)
        row = np.empty(window + 1, dtype=np.float32)
        row[:-1] = scaler.transform(log_returns(prices[-(window + 1) :]))
        row[-1] = position
        return row

    def act(self, closes: ArrayLike, position: float = 0.0) -> float:
        """The position to hold over the next bar: -1 short, 0 flat, 1 long."""
        from agentic_trading.training.env import ACTION_POSITIONS

        action, _ = self.model.predict(self.observation(closes, position), deterministic=True)
        return ACTION_POSITIONS[int(action)]


def _local_file(version: ModelVersion, settings: Settings) -> Path:
    """The model file on this host: a ``file://`` URI as is; an MLflow artifact (an MLflow
    server's ``mlflow-artifacts:/``, say) downloaded through MLflow's client."""
    parsed = urlparse(version.artifact_uri)
    if parsed.scheme == "file":
        path = Path(unquote(parsed.path))
    else:
        import tempfile

        from agentic_trading.tracking.backends import download_artifact

        folder = Path(tempfile.mkdtemp(prefix="agentic-trading-model-"))
        try:
            path = download_artifact(version.artifact_uri, settings, folder)
        except Exception as exc:
            raise RegistryError(
                f"{version.reference} is stored at {version.artifact_uri} and could not be "
                f"fetched: {type(exc).__name__}: {exc}"
            ) from None
    if not path.is_file():
        raise RegistryError(f"{version.reference}: its model file {path} is missing")
    return path


def load_model(reference: str, settings: Settings | None = None) -> LoadedModel:
    """``NAME@alias``, ``NAME/VERSION`` or ``NAME`` (latest), loaded from the registry."""
    from agentic_trading.models import get_model_registry

    settings = settings or get_settings()
    version = get_model_registry(settings).resolve(reference)
    path = _local_file(version, settings)
    agent = str(version.config.get("agent_type", "PPO")).upper()
    stable_baselines3 = require(
        "stable_baselines3", "training", "loading a model needs Stable-Baselines3"
    )
    cls = getattr(stable_baselines3, agent, None)
    if cls is None:
        raise RegistryError(f"{version.reference} was trained by {agent!r}, not an SB3 agent")
    return LoadedModel(version, cls.load(path, device="cpu"))
