"""The Gymnasium trading environment: one FX pair, short / flat / long (or any position in
[-1, 1] for continuous-action agents), costs in the reward.

Why not gym-anytrading's ``ForexEnv``: it pays a reward only when a trade closes, cannot be
flat, and shows raw prices, so agents learn "buy and hold" and nothing else. Here every bar is
marked to market, every position change pays its cost in the reward, and observations are
normalised features of past bars plus the current position
(:mod:`agentic_trading.training.features`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import gymnasium as gym
import numpy as np

from agentic_trading.evaluation.trading import DEFAULT_FEE_PIPS, PIP_SIZE
from agentic_trading.training.features import HELD_CAP, FeatureScaler, return_windows
from agentic_trading.training.rewards import REWARD_SCALE, NetReward, Reward

if TYPE_CHECKING:
    import pandas as pd

    from agentic_trading.training.data import Window

__all__ = ["ACTION_POSITIONS", "REWARD_SCALE", "TradingEnv", "make_env"]

#: Action ``a`` holds position ``ACTION_POSITIONS[a]``: 0 short, 1 flat, 2 long.
ACTION_POSITIONS = (-1.0, 0.0, 1.0)


class TradingEnv(gym.Env):
    """Trades ``prices[start:]`` (closes) bar by bar; the bars before ``start`` are history only.

    ``step(action)`` sets the position for the next bar at the current close, pays
    ``|change| * cost_pips * pip_size / close`` and earns ``position * (next / close - 1)``; the
    reward is ``reward`` of that net return (:mod:`agentic_trading.training.rewards`; by default
    the net return in percent). An episode runs from ``start`` to the last bar. ``info`` carries
    ``equity``, ``total_profit`` (equity - 1) and ``position``.

    The observation of bar ``i`` is ``market[i]`` (by default the last ``window_size`` scaled
    log returns), the bars held in the position when ``held``, then the position. With
    ``continuous`` the action is the position itself, a number in [-1, 1] (SAC, TD3).
    """

    metadata = {"render_modes": []}  # noqa: RUF012 - Gymnasium declares it this way

    def __init__(
        self,
        close: Any,
        window_size: int,
        scaler: FeatureScaler,
        *,
        start: int | None = None,
        cost_pips: float = DEFAULT_FEE_PIPS,
        pip_size: float = PIP_SIZE,
        reward: Reward | None = None,
        market: np.ndarray | None = None,
        held: bool = False,
        continuous: bool = False,
    ) -> None:
        super().__init__()
        self.reward = reward or NetReward()
        self.prices = np.asarray(close, dtype=float)
        self.window_size = window_size
        self.start = window_size if start is None else start
        if self.start < window_size or self.start >= len(self.prices) - 1:
            raise ValueError(
                f"{len(self.prices)} bars leave nothing to trade after a history of "
                f"{window_size} bars (start {self.start})"
            )
        self.cost_fraction = cost_pips * pip_size / self.prices
        self._features = (
            return_windows(self.prices, window_size, scaler) if market is None else market
        )
        if len(self._features) != len(self.prices):
            raise ValueError(f"{len(self._features)} rows of features for {len(self.prices)} bars")
        self.held = held
        self.continuous = continuous
        self.width = self._features.shape[1] + held + 1
        self.action_space: gym.spaces.Space[Any] = (
            gym.spaces.Box(-1.0, 1.0, shape=(1,), dtype=np.float32)
            if continuous
            else gym.spaces.Discrete(len(ACTION_POSITIONS))
        )
        self.observation_space = gym.spaces.Box(
            low=-np.inf, high=np.inf, shape=(self.width,), dtype=np.float32
        )
        self._t = self.start
        self._held = 0
        self._position = 0.0
        self._equity = 1.0
        self.positions: list[float] = []

    @property
    def decisions(self) -> int:
        """Decisions in an episode: one per traded bar."""
        return len(self.prices) - 1 - self.start

    @property
    def path_independent(self) -> bool:
        """Whether a decision's observation depends only on the bar and the position held (three
        of them): then a policy can be asked about every bar at once
        (:meth:`observations`)."""
        return not (self.held or self.continuous)

    def observations(self, position: float) -> np.ndarray:
        """Every decision's observation in one array, as if ``position`` were held coming in
        (only for a :attr:`path_independent` environment)."""
        if not self.path_independent:
            raise ValueError("observations depend on the path taken: step the environment")
        rows = np.empty((self.decisions, self.width), dtype=np.float32)
        rows[:, :-1] = self._features[self.start : len(self.prices) - 1]
        rows[:, -1] = position
        return rows

    def position_of(self, action: Any) -> float:
        """The position an action holds: -1, 0 or 1, or the number in [-1, 1]."""
        if self.continuous:
            return float(np.clip(np.asarray(action, dtype=float).reshape(-1)[0], -1.0, 1.0))
        return ACTION_POSITIONS[int(action)]

    def _observation(self) -> np.ndarray:
        row = np.empty(self.width, dtype=np.float32)
        row[: self._features.shape[1]] = self._features[self._t]
        if self.held:
            row[-2] = min(self._held, HELD_CAP) / HELD_CAP
        row[-1] = self._position
        return row

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        super().reset(seed=seed)
        self._t = self.start
        self._held = 0
        self._position = 0.0
        self._equity = 1.0
        self.positions = []
        self.reward.reset()
        return self._observation(), self._info()

    def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        t = self._t
        position = self.position_of(action)
        cost = abs(position - self._position) * self.cost_fraction[t]
        net = position * (self.prices[t + 1] / self.prices[t] - 1.0) - cost
        self._equity *= 1.0 + net
        self._held = self._held + 1 if position == self._position else 1
        self._position = position
        self.positions.append(position)
        self._t = t + 1
        terminated = self._t >= len(self.prices) - 1
        paid = self.reward(float(net), float(self._equity))
        return self._observation(), float(paid), terminated, False, self._info()

    def _info(self) -> dict[str, Any]:
        return {
            "equity": self._equity,
            "total_profit": self._equity - 1.0,
            "position": self._position,
        }


def make_env(
    bars: Window | pd.DataFrame,
    window_size: int | None = None,
    scaler: FeatureScaler | None = None,
    *,
    cost_pips: float = DEFAULT_FEE_PIPS,
    pip_size: float = PIP_SIZE,
) -> TradingEnv:
    """A :class:`TradingEnv` over a split's window (``split.training``) or a frame of bars.

    A frame trades every bar after its first ``window_size``. Without ``scaler`` the features
    are scaled on these bars themselves: right for training bars, never for evaluation (pass the
    training bars' scaler there).
    """
    from agentic_trading.training.data import Window

    if isinstance(bars, Window):
        close, start = bars.close, bars.start
        window_size = window_size or bars.start
    else:
        if window_size is None:
            raise ValueError("window_size is needed with a frame of bars")
        close, start = bars["Close"].to_numpy(dtype=float), window_size
    return TradingEnv(
        close,
        window_size,
        scaler or FeatureScaler.fit(close),
        start=start,
        cost_pips=cost_pips,
        pip_size=pip_size,
    )
