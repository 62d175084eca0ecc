"""What the agent sees: normalised log returns of past bars, scaled once on the training bars.

The observation for the decision at ``close[i]`` (the position held over bar ``i + 1``) is the
last ``window_size`` log returns ``ln(close[j] / close[j - 1])`` for ``j = i - window_size + 1
.. i``, each standardised with the mean and standard deviation of the *training* bars' log
returns (:class:`FeatureScaler`, fitted once and frozen), clipped to +-10, then the position
held coming into the decision. Nothing at or after ``close[i + 1]`` is read.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

__all__ = ["CLIP", "FeatureScaler", "log_returns", "return_windows"]

#: Standardised returns are clipped to this many standard deviations (one bad tick stays small).
CLIP = 10.0


def log_returns(close: ArrayLike) -> NDArray[np.float64]:
    """``ln(close[j] / close[j - 1])`` for ``j = 1 .. n - 1``."""
    prices = np.asarray(close, dtype=float)
    return np.diff(np.log(prices))


@dataclass(frozen=True)
class FeatureScaler:
    """Mean and standard deviation of the training bars' log returns, frozen after fitting."""

    mean: float
    std: float

    @classmethod
    def fit(cls, training_close: ArrayLike) -> FeatureScaler:
        """Fit on the closes of the training bars only."""
        returns = log_returns(training_close)
        if len(returns) < 2:
            raise ValueError("need at least three training bars to scale features")
        std = float(returns.std())
        return cls(mean=float(returns.mean()), std=std if std > 1e-12 else 1.0)

    def as_config(self) -> dict[str, Any]:
        """What a saved model needs to see the market as it did in training."""
        return {"feature_mean": self.mean, "feature_std": self.std}

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> FeatureScaler:
        """The scaler a run recorded with :meth:`as_config`."""
        return cls(mean=float(config["feature_mean"]), std=float(config["feature_std"]))

    def transform(self, returns: NDArray[np.float64]) -> NDArray[np.float64]:
        """Standardise and clip log returns."""
        scaled: NDArray[np.float64] = np.clip((returns - self.mean) / self.std, -CLIP, CLIP)
        return scaled


def return_windows(
    close: ArrayLike, window_size: int, scaler: FeatureScaler
) -> NDArray[np.float32]:
    """Row ``i`` holds the ``window_size`` scaled log returns up to ``close[i]``, for every
    ``i >= window_size`` (rows before that are zero: not enough history)."""
    scaled = scaler.transform(log_returns(close))
    rows = np.zeros((len(scaled) + 1, window_size), dtype=np.float32)
    if len(scaled) >= window_size:
        windows = np.lib.stride_tricks.sliding_window_view(scaled, window_size)
        rows[window_size:] = windows
    return rows
