"""A run store that keeps the run catalogue in step: the backend's store, composed with the
catalogue (as Optuna's ``_CachedStorage`` wraps its RDB storage).

Every change the writer applies to the backend's store is applied to the catalogue too, in the
same order, right after it succeeded, through a :class:`CatalogueMirror` that rides out the
catalogue's outages. Reads and checks go to the backend's store alone.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from agentic_trading.status import ExperimentStatus
from agentic_trading.tracking.base import RunStore
from agentic_trading.tracking.catalogue.mirror import CatalogueMirror
from agentic_trading.tracking.records import RECORD_ATTRIBUTES

__all__ = ["CataloguedStore"]


class CataloguedStore:
    """``inner``'s runs, each change mirrored into the catalogue; runs record ``owner_pid`` as
    the process whose death means they crashed."""

    def __init__(self, inner: RunStore, mirror: CatalogueMirror, owner_pid: int) -> None:
        self.inner = inner
        self.mirror = mirror
        self.location = inner.location
        self._host = socket.gethostname()
        self._owner_pid = owner_pid

    def check_writable(self) -> None:
        self.inner.check_writable()

    def prepare(self) -> None:
        try:
            self.inner.prepare()
        finally:
            self.mirror.open()  # a catalogue that does not answer yet is left to the first change

    def check_metric_names(self, names: Sequence[str]) -> None:
        self.inner.check_metric_names(names)

    def check_params(self, params: Mapping[str, Any]) -> None:
        self.inner.check_params(params)

    def open_run(
        self, run_id: str, experiment: str, config: Mapping[str, Any], tags: Sequence[str]
    ) -> datetime:
        created = self.inner.open_run(run_id, experiment, config, tags)
        at, host, pid = created.timestamp(), self._host, self._owner_pid
        self.mirror.apply(
            lambda catalogue: catalogue.open_run(run_id, experiment, config, tags, at, host, pid)
        )
        return created

    def track(self, run_id: str, points: Sequence[tuple[int, Mapping[str, float]]]) -> None:
        self.inner.track(run_id, points)  # series live in the backend only

    def flush(self) -> list[tuple[str, int, str]]:
        refused = self.inner.flush()
        self.mirror.flush()  # changes that waited for the catalogue's database
        return refused

    def set_attributes(self, run_id: str, attributes: Mapping[str, Any]) -> None:
        self.inner.set_attributes(run_id, attributes)
        params = {k: v for k, v in attributes.items() if k not in RECORD_ATTRIBUTES}
        if params:
            self.mirror.apply(lambda catalogue: catalogue.update(run_id, params=params))

    def add_tags(self, run_id: str, tags: Sequence[str]) -> None:
        self.inner.add_tags(run_id, tags)
        self.mirror.apply(lambda catalogue: catalogue.update(run_id, tags=list(tags)))

    def log_artifact(self, run_id: str, path: Path, name: str) -> str:
        uri = self.inner.log_artifact(run_id, path, name)
        self.mirror.apply(lambda catalogue: catalogue.update(run_id, artifacts={name: uri}))
        return uri

    def heartbeat(self, run_id: str, at: float) -> None:
        self.inner.heartbeat(run_id, at)
        self.mirror.apply(lambda catalogue: catalogue.heartbeat([run_id], at))

    def close_run(
        self,
        run_id: str,
        status: ExperimentStatus,
        final_metrics: Mapping[str, float],
        error: str | None,
    ) -> None:
        self.inner.close_run(run_id, status, final_metrics, error)
        ended = time.time()
        final = dict(final_metrics)
        self.mirror.apply(
            lambda catalogue: catalogue.close_run(run_id, status, final, error, ended)
        )

    def close(self) -> None:
        self.inner.close()
