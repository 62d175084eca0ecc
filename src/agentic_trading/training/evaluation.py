"""Trading results of a position series: profit, Sharpe, drawdown, trades; and buy-and-hold.

Positions are +1 (long) or -1 (short) held from one bar's close to the next. Per-bar return:
``position * (close[t+1] / close[t] - 1)``, minus a fee of ``fee`` price units (gym-anytrading's
0.0003, 3 pips) as a fraction of the price each time the position changes. ``total_profit`` is
the final equity minus 1 (0.012 = +1.2 %); ``total_reward`` the same P&L in pips.
``sharpe_ratio`` is the mean per-bar return over its standard deviation, annualised with
``sqrt(6240)``: hourly FX bars trade 24 hours a day, 5 days a week, 52 weeks a year.
"""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import NDArray

__all__ = ["HOURS_PER_YEAR", "TradingResult", "buy_and_hold", "trading_result"]

HOURS_PER_YEAR = 24 * 5 * 52
FEE = 0.0003

TradingResult = dict[str, float]


def trading_result(
    close: NDArray[np.float64], positions: NDArray[np.float64], fee: float = FEE
) -> tuple[TradingResult, NDArray[np.float64]]:
    """Metrics and the equity curve (one value per bar, starting at 1.0) of holding
    ``positions[t]`` over bar ``t -> t + 1``; ``len(positions) == len(close) - 1``."""
    close = np.asarray(close, dtype=float)
    positions = np.asarray(positions, dtype=float)
    if len(close) < 2 or len(positions) != len(close) - 1:
        raise ValueError("need one position per bar transition and at least two prices")
    changes = np.diff(np.concatenate([[0.0], positions])) != 0
    costs = np.where(changes, fee / close[:-1], 0.0)
    returns = positions * (close[1:] / close[:-1] - 1.0) - costs
    equity = np.concatenate([[1.0], np.cumprod(1.0 + returns)])
    pips = positions * np.diff(close) * 10_000 - np.where(changes, fee * 10_000, 0.0)
    std = float(returns.std())
    sharpe = float(returns.mean()) / std * math.sqrt(HOURS_PER_YEAR) if std > 0 else 0.0
    peak = np.maximum.accumulate(equity)
    starts = np.flatnonzero(changes)
    ends = np.append(starts[1:], len(returns))
    trade_returns = [
        float(np.prod(1.0 + returns[s:e]) - 1.0) for s, e in zip(starts, ends, strict=True)
    ]
    wins = sum(r > 0 for r in trade_returns)
    return (
        {
            "total_reward": float(pips.sum()),
            "total_profit": float(equity[-1] - 1.0),
            "win_rate": wins / len(trade_returns) if trade_returns else 0.0,
            "sharpe_ratio": sharpe,
            "max_drawdown": float((1.0 - equity / peak).max()),
            "n_trades": float(len(trade_returns)),
        },
        equity,
    )


def buy_and_hold(
    close: NDArray[np.float64], fee: float = FEE
) -> tuple[TradingResult, NDArray[np.float64]]:
    """The baseline: long from the first bar to the last."""
    return trading_result(close, np.ones(len(close) - 1), fee)
