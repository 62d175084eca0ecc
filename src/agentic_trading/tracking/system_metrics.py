"""System metrics of a training, sampled by its tracker's writer (psutil; GPUs with
nvidia-ml-py): series ``system/...`` of every open run, every ``ML_SYSTEM_METRICS_INTERVAL``
seconds, without a single call on the training's own path."""

from __future__ import annotations

import logging
from typing import Any

__all__ = ["SystemSampler"]

logger = logging.getLogger("agentic_trading.tracking")

_MB = 1 << 20


class SystemSampler:
    """Samples the training process ``pid`` and its machine.

    Series: ``system/cpu_percent`` (the process, 100 = one core busy), ``system/rss_mb``,
    ``system/threads``; ``system/load_1m``, ``system/memory_percent``,
    ``system/memory_available_mb`` (the machine); ``system/gpu<N>_utilization_percent`` and
    ``system/gpu<N>_memory_mb`` per GPU where nvidia-ml-py finds one.
    """

    def __init__(self, pid: int) -> None:
        import psutil

        self._psutil = psutil
        self._process = psutil.Process(pid)
        self._process.cpu_percent(None)  # the first call starts the measure
        self._gpus = _gpu_handles()

    def sample(self) -> dict[str, float]:
        """One sample; an empty one once the process is gone."""
        psutil = self._psutil
        try:
            with self._process.oneshot():
                values = {
                    "system/cpu_percent": self._process.cpu_percent(None),
                    "system/rss_mb": self._process.memory_info().rss / _MB,
                    "system/threads": float(self._process.num_threads()),
                }
        except psutil.Error:
            return {}
        memory = psutil.virtual_memory()
        values["system/load_1m"] = psutil.getloadavg()[0]
        values["system/memory_percent"] = memory.percent
        values["system/memory_available_mb"] = memory.available / _MB
        values.update(_gpu_sample(self._gpus))
        return values


def _gpu_handles() -> list[Any]:
    try:
        import pynvml
    except ImportError:
        return []
    try:
        pynvml.nvmlInit()
        return [pynvml.nvmlDeviceGetHandleByIndex(i) for i in range(pynvml.nvmlDeviceGetCount())]
    except Exception as exc:  # no driver, no device: no GPU series
        logger.debug("no GPU metrics: %s", exc)
        return []


def _gpu_sample(handles: list[Any]) -> dict[str, float]:
    if not handles:
        return {}
    import pynvml

    out: dict[str, float] = {}
    for index, handle in enumerate(handles):
        try:
            rates = pynvml.nvmlDeviceGetUtilizationRates(handle)
            memory = pynvml.nvmlDeviceGetMemoryInfo(handle)
        except Exception:
            continue
        out[f"system/gpu{index}_utilization_percent"] = float(rates.gpu)
        out[f"system/gpu{index}_memory_mb"] = memory.used / _MB
    return out
