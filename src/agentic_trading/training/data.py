"""Price data: EUR/USD hourly bars from gym-anytrading, or a user's CSV, split in time order."""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd

__all__ = [
    "PAIRS",
    "DataError",
    "PriceSplit",
    "Window",
    "data_file",
    "default_test_fraction",
    "load_prices",
    "split_prices",
    "walk_forward",
]

#: The data sets that ship with gym-anytrading, by pair name.
PAIRS = {"EUR_USD": "FOREX_EURUSD_1H_ASK"}
COLUMNS = ("Open", "High", "Low", "Close")


class DataError(ValueError):
    """Price data that cannot be used; the message names the problem and the file."""


@dataclass(frozen=True)
class Window:
    """The bars one phase trades (``bars``), after ``start`` bars of history it may only look at.

    The agent decides at ``frame.Close[i]`` for ``i >= start`` what to hold over the next bar,
    so the first traded bar's return is ``Close[start] -> Close[start + 1]``.
    """

    name: str
    frame: pd.DataFrame
    start: int

    @property
    def close(self) -> Any:
        """The closes, history included, as a float array."""
        return self.frame["Close"].to_numpy(dtype=float)

    @property
    def bars(self) -> int:
        """How many bars' returns this window trades."""
        return len(self.frame) - 1 - self.start

    def describe(self) -> dict[str, str | int]:
        traded = self.frame.index[self.start + 1 :]
        return {
            f"{self.name}_bars": self.bars,
            f"{self.name}_from": str(traded[0]),
            f"{self.name}_to": str(traded[-1]),
        }


@dataclass(frozen=True)
class PriceSplit:
    """Training, validation and test windows, in time order, without overlap or look-ahead.

    Each bar's return belongs to one window at most. Validation bars choose and prune (studies);
    test bars are scored once per run for the verdict. ``fold`` is this split's place in a
    walk-forward evaluation (0 for a single split).
    """

    training: Window
    validation: Window
    test: Window
    window_size: int
    fold: int = 0
    folds: int = 1

    def describe(self) -> dict[str, str | int]:
        out: dict[str, str | int] = {}
        for window in (self.training, self.validation, self.test):
            out.update(window.describe())
        return out


def data_file(pair: str = "EUR_USD", path: str | Path | None = None) -> Path:
    """The file :func:`load_prices` reads: ``path``, or the CSV gym-anytrading ships for
    ``pair``."""
    if path is not None:
        return Path(path).expanduser().resolve()
    import importlib.util

    spec = importlib.util.find_spec("gym_anytrading")
    if spec is None or spec.origin is None or pair not in PAIRS:
        raise DataError(f"pair {pair!r} has no bundled data; bundled: {', '.join(PAIRS)}")
    return Path(spec.origin).parent / "datasets" / "data" / f"{PAIRS[pair]}.csv"


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


def _window(frame: pd.DataFrame, name: str, first: int, end: int, window_size: int) -> Window:
    # Bars first..end-1 are traded: the decision for bar i is taken at close i-1 from the
    # window_size returns before it, so the frame starts window_size + 1 bars before ``first``.
    begin = first - 1 - window_size
    return Window(name, frame.iloc[begin:end], window_size)


def walk_forward(
    frame: pd.DataFrame,
    window_size: int,
    folds: int = 1,
    validation_fraction: float = 0.2,
    test_fraction: float | None = None,
) -> list[PriceSplit]:
    """Anchored walk-forward splits: fold ``k`` trains on every bar before its test block.

    The last ``test_fraction`` of the bars (default 0.2 for one fold, 0.5 for several) is cut
    into ``folds`` consecutive test blocks. Fold ``k`` tests on block ``k``; the bars before it
    form an expanding window anchored at the first bar, whose last ``validation_fraction``
    is fold ``k``'s validation window and the rest its training window.
    """
    if isinstance(folds, bool) or not isinstance(folds, int) or not 1 <= folds <= 50:
        raise DataError(f"folds must be a whole number from 1 to 50, got {folds!r}")
    if not 0.05 <= validation_fraction <= 0.5:
        raise DataError(
            f"validation_fraction must be between 0.05 and 0.5, got {validation_fraction}"
        )
    share = default_test_fraction(folds) if test_fraction is None else test_fraction
    if not 0.05 <= share <= 0.9:
        raise DataError(f"test_fraction must be between 0.05 and 0.9, got {share}")
    n = len(frame)
    tested = round(n * share)
    first_test = n - tested
    edges = [first_test + (tested * k) // folds for k in range(folds + 1)]
    least = max(window_size + 1, 10)
    splits = []
    for k in range(folds):
        test_start, test_end = edges[k], edges[k + 1]
        validation_bars = round(test_start * validation_fraction)
        train_end = test_start - validation_bars
        train_bars = train_end - (window_size + 1)
        if min(train_bars, validation_bars, test_end - test_start) < least:
            raise DataError(
                f"{n} bars are too few for a window of {window_size} with {folds} fold(s): "
                f"fold {k} would train on {max(train_bars, 0)}, validate on {validation_bars} "
                f"and test on {test_end - test_start} bars; each needs at least {least} "
                f"(validation_fraction {validation_fraction}, test_fraction {share})"
            )
        splits.append(
            PriceSplit(
                training=_window(frame, "training", window_size + 1, train_end, window_size),
                validation=_window(frame, "validation", train_end, test_start, window_size),
                test=_window(frame, "test", test_start, test_end, window_size),
                window_size=window_size,
                fold=k,
                folds=folds,
            )
        )
    return splits


def default_test_fraction(folds: int) -> float:
    """The share of bars tested when none is given: 0.2 for one fold, 0.5 for several."""
    return 0.2 if folds == 1 else 0.5


def split_prices(
    frame: pd.DataFrame,
    window_size: int,
    validation_fraction: float = 0.2,
    test_fraction: float = 0.2,
) -> PriceSplit:
    """One split in time order: training, then validation, then the last ``test_fraction`` held
    out for the test (``walk_forward`` with one fold)."""
    return walk_forward(frame, window_size, 1, validation_fraction, test_fraction)[0]
