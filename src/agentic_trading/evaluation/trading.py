"""What a series of positions earns on a series of prices, after costs; and the buy-and-hold baseline.

Positions are -1 (short), 0 (flat) or +1 (long) and may be fractional. ``positions[i]`` is held
over bar ``i + 1``, from ``close[i]`` to ``close[i + 1]``: it was decided at ``close[i]`` from
what was known then. Changing the position by ``d`` units at ``close[i]`` costs
``|d| * cost_pips * pip_size / close[i]`` of equity (``cost_pips`` = fee + spread in pips), so
reversing from long to short trades two units and pays twice. The per-bar return is::

    r[i] = positions[i] * (close[i + 1] / close[i] - 1) - cost[i]

and equity starts at 1.0 and compounds: ``E[i + 1] = E[i] * (1 + r[i])``. The open position is
marked to market at the last bar, not closed.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray

from agentic_trading.evaluation import statistics as st

__all__ = [
    "DEFAULT_FEE_PIPS",
    "PIP_SIZE",
    "TradingRecord",
    "break_even_cost_pips",
    "trade_positions",
]

#: gym-anytrading's fee of 0.0003 price units, in pips, charged per unit of position traded.
DEFAULT_FEE_PIPS = 3.0
#: Price units in one pip for EUR/USD and most pairs (0.01 for JPY pairs).
PIP_SIZE = 0.0001


@dataclass(frozen=True)
class TradingRecord:
    """Positions on prices, after costs: per-bar returns, equity and the trading metrics."""

    close: NDArray[np.float64]
    positions: NDArray[np.float64]
    returns: NDArray[np.float64]
    costs: NDArray[np.float64]
    cost_pips: float
    pip_size: float

    @property
    def bars(self) -> int:
        """Bars traded (returns)."""
        return len(self.returns)

    @property
    def equity(self) -> NDArray[np.float64]:
        """Equity before the first bar (1.0) and after each bar."""
        return np.concatenate([[1.0], np.cumprod(1.0 + self.returns)])

    def trades(self) -> list[float]:
        """The return of each trade: a stretch of one non-zero position, entry cost included."""
        changes = np.flatnonzero(np.diff(np.concatenate([[0.0], self.positions])) != 0)
        if len(changes) == 0:
            return []  # never in the market
        ends = np.append(changes[1:], len(self.positions))
        return [
            float(np.prod(1.0 + self.returns[start:end]) - 1.0)
            for start, end in zip(changes, ends, strict=True)
            if self.positions[start] != 0
        ]

    def metrics(self) -> dict[str, float]:
        """Profit, risk and activity of the record (annualised ratios for hourly FX bars).

        ``total_reward`` P&L in pips after costs; ``total_profit`` final equity - 1;
        ``sharpe_ratio``, ``sortino_ratio`` annualised by ``sqrt(6240)``; ``calmar_ratio``;
        ``max_drawdown``; ``n_trades`` and ``win_rate`` (share of trades that made money);
        ``turnover`` units traded per bar; ``exposure`` share of bars with a position.
        """
        trades = self.trades()
        moves = np.diff(self.close) / self.pip_size
        traded = np.abs(np.diff(np.concatenate([[0.0], self.positions])))
        equity = self.equity
        return {
            "total_reward": float((self.positions * moves).sum() - traded.sum() * self.cost_pips),
            "total_profit": float(equity[-1] - 1.0),
            "sharpe_ratio": st.annualise(st.sharpe_ratio(self.returns)),
            "sortino_ratio": st.annualise(st.sortino_ratio(self.returns)),
            "calmar_ratio": st.calmar_ratio(self.returns),
            "max_drawdown": st.max_drawdown(equity),
            "n_trades": float(len(trades)),
            "win_rate": sum(t > 0 for t in trades) / len(trades) if trades else 0.0,
            "turnover": float(traded.sum()) / self.bars,
            "exposure": float(np.mean(self.positions != 0)),
        }


def trade_positions(
    close: ArrayLike,
    positions: ArrayLike,
    cost_pips: float = DEFAULT_FEE_PIPS,
    pip_size: float = PIP_SIZE,
) -> TradingRecord:
    """The record of holding ``positions[i]`` over ``close[i] -> close[i + 1]``.

    ``len(positions) == len(close) - 1``; the position before the first bar is flat.
    """
    prices = np.asarray(close, dtype=float)
    held = np.asarray(positions, dtype=float)
    if len(prices) < 2 or len(held) != len(prices) - 1:
        raise ValueError(
            f"need one position per bar and at least two prices, got {len(held)} positions "
            f"for {len(prices)} prices"
        )
    if not (np.isfinite(prices).all() and (prices > 0).all()):
        raise ValueError("prices must be positive finite numbers")
    if not np.isfinite(held).all():
        raise ValueError("positions must be finite numbers")
    if cost_pips < 0 or pip_size <= 0:
        raise ValueError(f"cost_pips must be >= 0 and pip_size > 0, got {cost_pips}, {pip_size}")
    traded = np.abs(np.diff(np.concatenate([[0.0], held])))
    costs = traded * cost_pips * pip_size / prices[:-1]
    returns = held * (prices[1:] / prices[:-1] - 1.0) - costs
    return TradingRecord(prices, held, returns, costs, float(cost_pips), float(pip_size))


def buy_and_hold(
    close: ArrayLike, cost_pips: float = DEFAULT_FEE_PIPS, pip_size: float = PIP_SIZE
) -> TradingRecord:
    """The baseline: long from the first bar to the last (one unit bought at the start)."""
    prices = np.asarray(close, dtype=float)
    return trade_positions(prices, np.ones(len(prices) - 1), cost_pips, pip_size)


def break_even_cost_pips(
    agent: TradingRecord, baseline: TradingRecord, upper: float = 1_000.0
) -> float | None:
    """The cost per unit traded, in pips, at which the agent's profit equals the baseline's.

    Both records are re-priced at each candidate cost with their positions unchanged. ``0.0``
    when the agent trails even without costs; ``None`` when it stays ahead at any cost up to
    ``upper`` pips (it trades no more than the baseline).
    """

    def excess(cost: float) -> float:
        ours = trade_positions(agent.close, agent.positions, cost, agent.pip_size)
        theirs = trade_positions(baseline.close, baseline.positions, cost, baseline.pip_size)
        return float(ours.equity[-1] - theirs.equity[-1])

    if excess(0.0) <= 0:
        return 0.0
    if excess(upper) > 0:
        return None
    low, high = 0.0, upper
    for _ in range(60):  # bisection to well below a hundredth of a pip
        middle = (low + high) / 2
        if excess(middle) > 0:
            low = middle
        else:
            high = middle
    return (low + high) / 2
