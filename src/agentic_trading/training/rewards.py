"""What the agent is paid each bar, chosen by name (``TrainingConfig.reward``) and recorded
with the run. Every reward starts from the bar's net return: the position's return minus the
cost of changing it, so costs stay in all of them.

- ``net``: the net return (in percent of equity, :data:`REWARD_SCALE`).
- ``dsr``: the differential Sharpe ratio (Moody & Saffell 2001): the bar's contribution to an
  exponentially weighted Sharpe ratio of the net returns, so the agent is paid for return per
  unit of risk, bar by bar.
- ``drawdown``: the net return minus ``drawdown_penalty`` times the rise of the drawdown
  (equity below its running peak) that the bar caused.
"""

from __future__ import annotations

import math
from typing import Literal, Protocol

__all__ = [
    "DSR_ETA",
    "REWARDS",
    "REWARD_SCALE",
    "DifferentialSharpeReward",
    "DrawdownPenalisedReward",
    "NetReward",
    "Reward",
    "RewardName",
    "make_reward",
]

#: Net returns are paid in percent of equity (about +-0.1 a bar on hourly EUR/USD).
REWARD_SCALE = 100.0
#: The differential Sharpe ratio's adaptation rate (about a 100-bar memory).
DSR_ETA = 0.01

RewardName = Literal["net", "dsr", "drawdown"]
REWARDS: tuple[RewardName, ...] = ("net", "dsr", "drawdown")


class Reward(Protocol):
    """A reward: the bar's pay from its net return and the equity after it."""

    def reset(self) -> None:
        """Forget the episode so far."""

    def __call__(self, net: float, equity: float) -> float:
        """The pay for one bar."""


class NetReward:
    """The net return, in percent of equity."""

    def reset(self) -> None:
        pass

    def __call__(self, net: float, equity: float) -> float:
        return net * REWARD_SCALE


class DifferentialSharpeReward:
    """Moody & Saffell's differential Sharpe ratio of the net returns ``R``:

    ``A_t = A_{t-1} + eta (R_t - A_{t-1})``, ``B_t = B_{t-1} + eta (R_t^2 - B_{t-1})``, and
    ``D_t = (B_{t-1} dA_t - A_{t-1} dB_t / 2) / (B_{t-1} - A_{t-1}^2)^{3/2}`` with
    ``dA_t = R_t - A_{t-1}``, ``dB_t = R_t^2 - B_{t-1}``. While the moving variance is still
    zero (the first bars) ``D_t`` is 0.
    """

    def __init__(self, eta: float = DSR_ETA) -> None:
        if not 0 < eta < 1:
            raise ValueError(f"eta={eta} is not allowed: expected a rate between 0 and 1")
        self.eta = eta
        self.a = 0.0
        self.b = 0.0

    def reset(self) -> None:
        self.a = self.b = 0.0

    def __call__(self, net: float, equity: float) -> float:
        d_a = net - self.a
        d_b = net * net - self.b
        variance = self.b - self.a * self.a
        value = (self.b * d_a - 0.5 * self.a * d_b) / variance**1.5 if variance > 1e-18 else 0.0
        self.a += self.eta * d_a
        self.b += self.eta * d_b
        return value if math.isfinite(value) else 0.0


class DrawdownPenalisedReward:
    """The net return minus ``penalty`` times the rise of the drawdown this bar, in percent."""

    def __init__(self, penalty: float = 1.0) -> None:
        self.penalty = penalty
        self.reset()

    def reset(self) -> None:
        self.peak = 1.0
        self.drawdown = 0.0

    def __call__(self, net: float, equity: float) -> float:
        self.peak = max(self.peak, equity)
        drawdown = 1.0 - equity / self.peak
        rise = max(0.0, drawdown - self.drawdown)
        self.drawdown = drawdown
        return (net - self.penalty * rise) * REWARD_SCALE


def make_reward(name: str, *, drawdown_penalty: float = 1.0) -> Reward:
    """The reward called ``name`` (one of :data:`REWARDS`)."""
    if name == "net":
        return NetReward()
    if name == "dsr":
        return DifferentialSharpeReward()
    if name == "drawdown":
        return DrawdownPenalisedReward(drawdown_penalty)
    raise ValueError(f"reward {name!r} is not allowed: expected one of {', '.join(REWARDS)}")
