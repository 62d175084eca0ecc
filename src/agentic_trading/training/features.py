"""What the agent sees: features of past bars, chosen by name and scaled once on the training bars.

A feature set is a comma-separated list of blocks, or a set's name (``TrainingConfig.features``):

- ``returns``: the last ``window_size`` log returns ``ln(close[j] / close[j - 1])`` for
  ``j = i - window_size + 1 .. i``, standardised with the mean and standard deviation of the
  training bars' log returns (one pair for all of them);
- ``horizons``: the log return over the last 1, 4, 24 and 120 bars, each divided by the trailing
  volatility times the square root of its length (a move in standard deviations);
- ``volatility``: the trailing volatility, the standard deviation of the last 24 log returns;
- ``macd``: MACD (12- and 26-bar exponential averages of the close) and its 9-bar signal line's
  gap, in units of the close times the trailing volatility;
- ``rsi``: Wilder's 14-bar relative strength index, as ``rsi / 100 - 0.5``;

(exponential averages are cut at a fixed number of bars, so a feature reads a fixed history);
- ``time``: hour of day and day of week of the bar, each as a sine/cosine pair;
- ``held``: the bars held in the current position (``min(bars, 120) / 120``).

Sets: ``returns`` (the default: ``returns``) and ``standard`` (``horizons, volatility, macd, rsi,
time, held``, after Zhang, Zohren & Roberts 2020 and Goluža et al. 2024).

The observation for the decision at ``close[i]`` (the position held over bar ``i + 1``) is the
blocks' columns for row ``i``, then the position held coming into the decision. Row ``i`` reads
only bars up to ``i``: nothing at or after ``close[i + 1]``. Every column but ``time`` and
``held`` is standardised with the mean and standard deviation it has over the *training* bars
(:class:`FeatureScaler`, fitted once and frozen; a saved model keeps it) and clipped to +-10.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

if TYPE_CHECKING:
    import pandas as pd

__all__ = [
    "CLIP",
    "FEATURE_BLOCKS",
    "FEATURE_SETS",
    "HELD_CAP",
    "HORIZONS",
    "FeatureScaler",
    "FeatureSet",
    "log_returns",
    "return_windows",
]

#: Standardised features are clipped to this many standard deviations (one bad tick stays small).
CLIP = 10.0
#: Horizons of the ``horizons`` block's returns, in bars.
HORIZONS = (1, 4, 24, 120)
#: Bars in the trailing volatility.
VOLATILITY_BARS = 24
#: Bars held are counted up to this many (then the feature stays at 1).
HELD_CAP = 120
#: Exponential averages are cut at this many bars (the weight left beyond is below 1e-4):
#: MACD's 12- and 26-bar averages, its 9-bar signal line, RSI's 14-bar (Wilder) averages.
MACD_BARS, SIGNAL_BARS, RSI_BARS = 120, 40, 120

#: Every block and the bars of history its columns need before their first row is whole.
FEATURE_BLOCKS: dict[str, int] = {
    "returns": 0,  # window_size bars
    "horizons": max(HORIZONS) + VOLATILITY_BARS,
    "volatility": VOLATILITY_BARS,
    "macd": MACD_BARS + SIGNAL_BARS,
    "rsi": RSI_BARS + 1,
    "time": 0,
    "held": 0,
}
#: Named feature sets.
FEATURE_SETS: dict[str, tuple[str, ...]] = {
    "returns": ("returns",),
    "standard": ("horizons", "volatility", "macd", "rsi", "time", "held"),
}
#: Blocks whose columns are not standardised (already in [-1, 1]) or not market data.
_UNSCALED = ("time", "held")


def log_returns(close: ArrayLike) -> NDArray[np.float64]:
    """``ln(close[j] / close[j - 1])`` for ``j = 1 .. n - 1``."""
    prices = np.asarray(close, dtype=float)
    return np.diff(np.log(prices))


@dataclass(frozen=True)
class FeatureScaler:
    """Frozen scaling fitted on training bars: the mean and standard deviation of their log
    returns (the ``returns`` block) and of every other standardised column (``columns``)."""

    mean: float
    std: float
    columns: Mapping[str, tuple[float, float]] = field(default_factory=dict)

    @classmethod
    def fit(
        cls, training_close: ArrayLike, columns: Mapping[str, NDArray[np.float64]] | None = None
    ) -> FeatureScaler:
        """Fit on the closes of the training bars only (and ``columns``' values on them)."""
        returns = log_returns(training_close)
        if len(returns) < 2:
            raise ValueError("need at least three training bars to scale features")
        fitted = {name: _mean_std(values) for name, values in (columns or {}).items()}
        mean, std = _mean_std(returns)
        return cls(mean=mean, std=std, columns=fitted)

    def as_config(self) -> dict[str, Any]:
        """What a saved model needs to see the market as it did in training."""
        out: dict[str, Any] = {"feature_mean": self.mean, "feature_std": self.std}
        if self.columns:
            out["feature_scaling"] = {name: list(pair) for name, pair in self.columns.items()}
        return out

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> FeatureScaler:
        """The scaler a run recorded with :meth:`as_config`."""
        columns = {
            str(name): (float(pair[0]), float(pair[1]))
            for name, pair in dict(config.get("feature_scaling") or {}).items()
        }
        return cls(float(config["feature_mean"]), float(config["feature_std"]), columns)

    def transform(self, returns: NDArray[np.float64]) -> NDArray[np.float64]:
        """Standardise and clip log returns."""
        return _standardised(returns, self.mean, self.std)

    def transform_column(self, name: str, values: NDArray[np.float64]) -> NDArray[np.float64]:
        """Standardise and clip one column with its training statistics."""
        if name not in self.columns:
            raise ValueError(f"this scaler was not fitted on feature column {name!r}")
        return _standardised(values, *self.columns[name])


def _mean_std(values: NDArray[np.float64]) -> tuple[float, float]:
    finite = values[np.isfinite(values)]
    if len(finite) < 2:
        raise ValueError("need at least two training bars with a value to scale a feature")
    std = float(finite.std())
    return float(finite.mean()), std if std > 1e-12 else 1.0


def _standardised(values: NDArray[np.float64], mean: float, std: float) -> NDArray[np.float64]:
    scaled: NDArray[np.float64] = np.clip((values - mean) / std, -CLIP, CLIP)
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


@dataclass(frozen=True)
class FeatureSet:
    """The blocks an agent sees (``names``), parsed from a name such as ``standard`` or a list
    such as ``returns,rsi,time``."""

    names: tuple[str, ...]
    window_size: int = 10

    @classmethod
    def parse(cls, text: str | Sequence[str], window_size: int = 10) -> FeatureSet:
        """``returns``, ``standard`` or a comma-separated list of sets and blocks; an unknown
        name is a ValueError naming what is allowed."""
        parts = text.split(",") if isinstance(text, str) else list(text)
        names: list[str] = []
        for part in (p.strip().lower() for p in parts):
            if not part:
                continue
            blocks = FEATURE_SETS.get(part, (part,) if part in FEATURE_BLOCKS else None)
            if blocks is None:
                raise ValueError(
                    f"unknown feature {part!r}: use a set ({', '.join(FEATURE_SETS)}) or blocks "
                    f"({', '.join(FEATURE_BLOCKS)}), comma-separated"
                )
            names.extend(b for b in blocks if b not in names)
        if not names or names == ["held"]:
            raise ValueError("a feature set needs at least one block of market data")
        return cls(tuple(names), window_size)

    @property
    def label(self) -> str:
        """The canonical text: a set's name when the blocks are exactly that set."""
        for name, blocks in FEATURE_SETS.items():
            if self.names == blocks:
                return name
        return ",".join(self.names)

    @property
    def history(self) -> int:
        """Bars of history before the first decision: enough for every column to be whole."""
        return max(self.window_size, *(FEATURE_BLOCKS[n] for n in self.names))

    @property
    def held(self) -> bool:
        """Whether the observation carries the bars held (it then depends on the path taken)."""
        return "held" in self.names

    def columns(self) -> list[str]:
        """The observation's columns, in order (the position last)."""
        out: list[str] = []
        for name in self.names:
            if name == "returns":
                out.extend(f"return_{k}" for k in range(self.window_size, 0, -1))
            elif name != "held":
                out.extend(_BLOCK_COLUMNS[name])
        return [*out, *(["bars_held"] if self.held else []), "position"]

    def raw(self, frame: pd.DataFrame) -> dict[str, NDArray[np.float64]]:
        """Every standardised column but the returns, unscaled, one value per bar of ``frame``
        (NaN where the history is too short). Row ``i`` reads bars up to ``i`` only."""
        close = frame["Close"].to_numpy(dtype=float)
        out: dict[str, NDArray[np.float64]] = {}
        for name in self.names:
            if name not in ("returns", *_UNSCALED):
                out.update(_BLOCKS[name](close))
        return out

    def fit(self, training: pd.DataFrame, start: int) -> FeatureScaler:
        """The scaler fitted on a training window: its closes, and its columns' values on the
        decisions' rows (``start`` onwards)."""
        close = training["Close"].to_numpy(dtype=float)
        columns = {name: v[start:-1] for name, v in self.raw(training).items()}
        return FeatureScaler.fit(close, columns)

    def market(self, frame: pd.DataFrame, scaler: FeatureScaler) -> NDArray[np.float32]:
        """The scaled columns that depend only on the market, one row per bar of ``frame``
        (everything of the observation but the bars held and the position)."""
        parts: list[NDArray[Any]] = []
        raw = self.raw(frame)
        for name in self.names:
            if name == "returns":
                close = frame["Close"].to_numpy(dtype=float)
                parts.append(return_windows(close, self.window_size, scaler))
            elif name == "time":
                parts.append(_time(frame.index))
            elif name != "held":
                for column in _BLOCK_COLUMNS[name]:
                    scaled = scaler.transform_column(column, raw[column])
                    parts.append(np.nan_to_num(scaled, nan=0.0)[:, None])
        return np.hstack(parts).astype(np.float32)


def _volatility(close: NDArray[np.float64]) -> NDArray[np.float64]:
    import pandas as pd

    returns = pd.Series(np.concatenate([[np.nan], log_returns(close)]))
    vol: NDArray[np.float64] = (
        returns.rolling(VOLATILITY_BARS).std(ddof=0).to_numpy(dtype=float, copy=True)
    )
    vol[vol <= 1e-12] = np.nan
    return vol


def _horizons(close: NDArray[np.float64]) -> dict[str, NDArray[np.float64]]:
    logs, vol = np.log(close), _volatility(close)
    out = {}
    for h in HORIZONS:
        moved = np.full(len(close), np.nan)
        moved[h:] = logs[h:] - logs[:-h]
        out[f"return_{h}_bars"] = moved / (vol * np.sqrt(h))
    return out


def _average(values: NDArray[np.float64], alpha: float, bars: int) -> NDArray[np.float64]:
    """An exponential average cut at ``bars`` bars (weights ``(1 - alpha) ** k``, normalised):
    row ``i`` reads exactly rows ``i - bars + 1 .. i``, so a model fed its history sees what it
    saw in training. NaN until ``bars`` values are there."""
    weights = (1 - alpha) ** np.arange(bars)[::-1]
    out = np.full(len(values), np.nan)
    if len(values) >= bars:
        windows = np.lib.stride_tricks.sliding_window_view(values, bars)
        out[bars - 1 :] = windows @ weights / weights.sum()
    return out


def _macd(close: NDArray[np.float64]) -> dict[str, NDArray[np.float64]]:
    line = _average(close, 2 / 13, MACD_BARS) - _average(close, 2 / 27, MACD_BARS)
    signal = _average(line, 2 / 10, SIGNAL_BARS)
    unit = close * _volatility(close)
    return {"macd": line / unit, "macd_minus_signal": (line - signal) / unit}


def _rsi(close: NDArray[np.float64]) -> dict[str, NDArray[np.float64]]:
    moves = np.concatenate([[np.nan], np.diff(close)])
    gains = _average(np.clip(moves, 0, None), 1 / 14, RSI_BARS)
    losses = _average(np.clip(-moves, 0, None), 1 / 14, RSI_BARS)
    total = gains + losses
    with np.errstate(invalid="ignore", divide="ignore"):
        rsi = np.where(total > 0, gains / total, 0.5)
    rsi[np.isnan(total)] = np.nan
    return {"rsi": rsi - 0.5}


def _time(index: Any) -> NDArray[np.float64]:
    import pandas as pd

    times = pd.DatetimeIndex(index)
    hour = 2 * np.pi * (times.hour.to_numpy() + times.minute.to_numpy() / 60) / 24
    day = 2 * np.pi * times.day_of_week.to_numpy() / 7
    return np.column_stack([np.sin(hour), np.cos(hour), np.sin(day), np.cos(day)])


_BLOCKS = {
    "horizons": _horizons,
    "volatility": lambda close: {"volatility": _volatility(close)},
    "macd": _macd,
    "rsi": _rsi,
}
_BLOCK_COLUMNS: dict[str, tuple[str, ...]] = {
    "horizons": tuple(f"return_{h}_bars" for h in HORIZONS),
    "volatility": ("volatility",),
    "macd": ("macd", "macd_minus_signal"),
    "rsi": ("rsi",),
    "time": ("hour_sin", "hour_cos", "weekday_sin", "weekday_cos"),
}
