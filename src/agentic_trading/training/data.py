"""Price data: EUR/USD hourly bars from gym-anytrading, or a user's CSV, split in time order."""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["PAIRS", "DataError", "PriceSplit", "load_prices", "split_prices"]

#: The data sets that ship with gym-anytrading, by pair name.
PAIRS = {"EUR_USD": "FOREX_EURUSD_1H_ASK"}
COLUMNS = ("Open", "High", "Low", "Close")


class DataError(ValueError):
    """Price data that cannot be used; the message names the problem and the file."""


@dataclass(frozen=True)
class PriceSplit:
    """Training bars, then the later held-out bars for evaluation (no overlap, no look-ahead).

    ``evaluation`` starts with the last ``window_size`` training bars as context: the agent's
    first held-out decision may look back at them, never forward.
    """

    training: pd.DataFrame
    evaluation: pd.DataFrame
    window_size: int

    def describe(self) -> dict[str, str | int]:
        held_out = self.evaluation.iloc[self.window_size :]
        return {
            "training_bars": len(self.training),
            "training_from": str(self.training.index[0]),
            "training_to": str(self.training.index[-1]),
            "evaluation_bars": len(held_out),
            "evaluation_from": str(held_out.index[0]),
            "evaluation_to": str(held_out.index[-1]),
        }


def load_prices(pair: str = "EUR_USD", path: str | Path | None = None) -> pd.DataFrame:
    """Bars with a sorted ``DatetimeIndex`` and ``Open``, ``High``, ``Low``, ``Close`` columns.

    Without ``path``: the data set gym-anytrading ships for ``pair`` (EUR_USD: hourly ask bars,
    2017-2020). With ``path``: a CSV with a date/time column (``datetime``, ``date``, ``time``
    or ``timestamp``) and open, high, low, close columns (any letter case).
    """
    import pandas as pd

    if path is None:
        if pair not in PAIRS:
            raise DataError(
                f"pair {pair!r} has no bundled data; bundled: {', '.join(PAIRS)}; "
                "or pass a CSV with --data"
            )
        from gym_anytrading import datasets

        frame = getattr(datasets, PAIRS[pair]).copy()
        frame.index = pd.to_datetime(frame.index, format="%d.%m.%Y %H:%M:%S.%f")
        return _checked(frame[list(COLUMNS)].astype(float), f"bundled {pair}")
    return _read_csv(Path(path))


def _read_csv(path: Path) -> pd.DataFrame:
    import pandas as pd

    if not path.is_file():
        raise DataError(f"{path}: no such file")
    try:
        raw = pd.read_csv(path)
    except (ValueError, UnicodeDecodeError, pd.errors.ParserError) as exc:
        raise DataError(f"{path}: not a readable CSV file ({exc})") from None
    names = {str(c).strip().lower(): c for c in raw.columns}
    time_column = next(
        (names[n] for n in ("datetime", "date", "time", "timestamp") if n in names), None
    )
    if time_column is None:
        raise DataError(
            f"{path}: no date/time column; name one datetime, date, time or timestamp "
            f"(columns found: {', '.join(map(str, raw.columns))})"
        )
    missing = [c for c in COLUMNS if c.lower() not in names]
    if missing:
        raise DataError(
            f"{path}: missing column(s) {', '.join(missing)}; "
            "expected datetime, open, high, low, close"
        )
    try:
        with warnings.catch_warnings():  # odd formats are parsed one by one; we check the result
            warnings.filterwarnings("ignore", "Could not infer format", UserWarning)
            index = pd.to_datetime(raw[time_column], utc=False)
    except (ValueError, TypeError) as exc:
        raise DataError(
            f"{path}: column {time_column!r} has values that are not dates ({exc})"
        ) from None
    frame = pd.DataFrame({c: raw[names[c.lower()]] for c in COLUMNS})
    frame.index = pd.DatetimeIndex(index)
    try:
        frame = frame.astype(float)
    except ValueError as exc:
        raise DataError(f"{path}: prices must be numbers ({exc})") from None
    return _checked(frame, str(path))


def _checked(frame: pd.DataFrame, source: str) -> pd.DataFrame:
    if frame.index.hasnans:
        missing = frame.index.isna()
        raise DataError(
            f"{source}: {int(missing.sum())} row(s) without a date/time, first at data row "
            f"{int(missing.argmax()) + 1}"
        )
    if frame.index.has_duplicates:
        dup = frame.index[frame.index.duplicated()][0]
        raise DataError(f"{source}: duplicate timestamp {dup}; each bar needs its own time")
    if not frame.index.is_monotonic_increasing:
        position = int((frame.index[1:] < frame.index[:-1]).argmax()) + 1
        raise DataError(
            f"{source}: timestamps are not in increasing order (row {position + 1}: "
            f"{frame.index[position]} comes after {frame.index[position - 1]}); sort the file"
        )
    bad = frame.isna().any(axis=1) | (frame <= 0).any(axis=1)
    if bad.any():
        raise DataError(
            f"{source}: {int(bad.sum())} bar(s) with missing or non-positive prices, "
            f"first at {frame.index[bad.argmax()]}"
        )
    return frame


def split_prices(frame: pd.DataFrame, window_size: int, train_fraction: float = 0.8) -> PriceSplit:
    """Split ``frame`` in time order: the first ``train_fraction`` for training, the rest held out."""
    if not 0.1 <= train_fraction <= 0.95:
        raise DataError(f"train_fraction must be between 0.1 and 0.95, got {train_fraction}")
    cut = int(len(frame) * train_fraction)
    needed = 2 * (window_size + 1)
    if cut < needed or len(frame) - cut < window_size + 1:
        raise DataError(
            f"{len(frame)} bars are too few for a window of {window_size}: training needs at "
            f"least {needed} bars and the held-out part at least {window_size + 1} "
            f"(with train_fraction {train_fraction})"
        )
    return PriceSplit(
        training=frame.iloc[:cut],
        evaluation=frame.iloc[cut - window_size :],
        window_size=window_size,
    )
