"""Where a training's episodes are read: SB3's monitors already keep them, so a callback need
not look at every step's reward."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import gymnasium as gym
from stable_baselines3.common.monitor import Monitor
from stable_baselines3.common.vec_env import DummyVecEnv, VecEnv, VecEnvWrapper, VecMonitor

__all__ = ["running_return"]


def running_return(env: VecEnv | None) -> Callable[[], float] | None:
    """A reader of the first environment's return so far in its current episode, from the
    ``VecMonitor`` or ``Monitor`` that keeps it; ``None`` when no monitor is reachable (a
    ``SubprocVecEnv``'s are in other processes), and the caller counts rewards itself."""
    venv: Any = env
    while isinstance(venv, VecEnvWrapper):
        if isinstance(venv, VecMonitor):
            return _vec_monitor_return(venv)
        venv = venv.venv
    if isinstance(venv, DummyVecEnv):
        inner: Any = venv.envs[0]
        while isinstance(inner, gym.Wrapper):
            if isinstance(inner, Monitor):
                return _monitor_return(inner)
            inner = inner.env
    return None


def _vec_monitor_return(monitor: VecMonitor) -> Callable[[], float]:
    return lambda: float(monitor.episode_returns[0])


def _monitor_return(monitor: Monitor) -> Callable[[], float]:
    return _MonitorReturn(monitor)


class _MonitorReturn:
    """Sums a ``Monitor``'s rewards of the current episode, adding only the ones that are new
    since the last call (FX episodes are thousands of steps long; a log may come every step)."""

    def __init__(self, monitor: Monitor) -> None:
        self._monitor = monitor
        self._rewards: list[float] | None = None
        self._summed = 0
        self._total = 0.0

    def __call__(self) -> float:
        rewards = self._monitor.rewards
        if rewards is not self._rewards:  # a reset gives the monitor a new list
            self._rewards, self._summed, self._total = rewards, 0, 0.0
        self._total += sum(rewards[self._summed :])
        self._summed = len(rewards)
        return self._total
