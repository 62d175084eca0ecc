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

    def observation(
        self,
        closes: ArrayLike,
        position: float = 0.0,
        *,
        times: ArrayLike | None = None,
        bars_held: int = 0,
    ) -> np.ndarray:
        """What the model sees after the last of ``closes`` (oldest first) holding ``position``
        for ``bars_held`` bars: the training's own features, scaled as in training.

        Pass enough closes for the features' history (``window_size + 1`` for ``returns``
        features, 161 for ``standard``; the error says how many), and the bars' ``times`` when
        the features include the time of day."""
        import pandas as pd

        from agentic_trading.training.features import HELD_CAP, FeatureScaler, FeatureSet

        window = int(self.config.get("window_size", 10))
        features = FeatureSet.parse(str(self.config.get("features", "returns")), window)
        prices = np.asarray(closes, dtype=float)
        needed = features.history + 1
        if prices.ndim != 1 or len(prices) < needed or not (prices > 0).all():
            raise ValueError(f"need at least {needed} positive closes, oldest first")
        if "time" in features.names and times is None:
            raise ValueError("this model's features include the time of day: pass the bars' times")
        index = (
            pd.DatetimeIndex(np.asarray(times)[-needed:])
            if times is not None
            else pd.RangeIndex(needed)
        )
        frame = pd.DataFrame({"Close": prices[-needed:]}, index=index)
        market = features.market(frame, FeatureScaler.from_config(self.config))[-1]
        held = [min(bars_held, HELD_CAP) / HELD_CAP] if features.held else []
        return np.concatenate([market, held, [position]]).astype(np.float32)

    def act(
        self,
        closes: ArrayLike,
        position: float = 0.0,
        *,
        times: ArrayLike | None = None,
        bars_held: int = 0,
    ) -> float:
        """The position to hold over the next bar: -1 short, 0 flat, 1 long (any number in
        [-1, 1] for a continuous-action agent such as SAC or TD3)."""
        from agentic_trading.training.config import CONTINUOUS_AGENTS
        from agentic_trading.training.env import ACTION_POSITIONS

        observation = self.observation(closes, position, times=times, bars_held=bars_held)
        action, _ = self.model.predict(observation, deterministic=True)
        if str(self.config.get("agent_type", "PPO")).upper() in CONTINUOUS_AGENTS:
            return float(np.clip(np.asarray(action, dtype=float).reshape(-1)[0], -1.0, 1.0))
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
