"""The Gymnasium FX environment: gym-anytrading's ``ForexEnv`` over our price frame."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["make_env"]


def make_env(frame: pd.DataFrame, window_size: int) -> Any:
    """A ``ForexEnv`` trading every bar of ``frame`` after the first ``window_size``.

    Actions: 0 = sell (go short), 1 = buy (go long); observations are the last ``window_size``
    closes and their differences; the reward is the P&L in pips of each closed trade.
    Observations are copied: gym-anytrading hands out views that the next step overwrites.
    """
    import gymnasium as gym
    from gym_anytrading.envs import ForexEnv

    class CopiedObservations(gym.ObservationWrapper):
        def observation(self, observation: Any) -> Any:
            return observation.copy()

    env = ForexEnv(df=frame, window_size=window_size, frame_bound=(window_size, len(frame)))
    return CopiedObservations(env)
