"""How our record of a run maps onto an MLflow run, where MLflow's store is, and MLflow's rules.

What maps to what (readable with MLflow's client, UI and search filters):

- experiment name -> MLflow experiment; our run id -> the run's name and tag ``agentic.run_id``
- config -> params (flattened ``a.b``, values cut at MLflow's 6,000 characters), the whole config
  as tag ``agentic.config`` (JSON, when it fits in a tag) and as artifact ``config.json``
- metric series -> metrics with steps; final metrics -> tag ``agentic.final_metrics`` (JSON) and
  metrics ``final/NAME`` (so MLflow's UI shows them as columns)
- status -> MLflow's RUNNING/FINISHED/FAILED/KILLED and our own word in tag ``agentic.status``
- error, host, pid, heartbeat, skipped values -> tags ``agentic.error`` and so on
- ``log_params`` -> tags ``agentic.param.NAME`` (JSON: MLflow params cannot change once set)
- tags -> tags ``agentic.label.NAME``; artifacts -> MLflow's artifact store, each URI also in tag
  ``agentic.artifact.NAME``
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import posixpath
import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from agentic_trading.common.extras import require
from agentic_trading.config import Settings
from agentic_trading.status import ExperimentStatus
from agentic_trading.tracking.backends._folders import ensure_writable_folder
from agentic_trading.tracking.errors import TrackingUnavailableError

__all__ = [
    "FINAL_PREFIX",
    "MLFLOW_STATUS",
    "TAG",
    "check_mlflow_names",
    "connect",
    "flatten",
    "has_error",
    "import_mlflow",
    "is_unreachable",
    "local_database",
    "run_filter",
]

logger = logging.getLogger("agentic_trading.tracking")

PREFIX = "agentic."
TAG = {
    name: PREFIX + name
    for name in (
        "run_id", "status", "config", "final_metrics", "error", "host", "pid", "heartbeat_at",
        "skipped_non_finite", "values_logged", "environment",
    )
}  # fmt: skip
PARAM_PREFIX = PREFIX + "param."
LABEL_PREFIX = PREFIX + "label."
ARTIFACT_PREFIX = PREFIX + "artifact."
FINAL_PREFIX = "final/"

#: Our status -> MLflow's run status (ours is kept in tag ``agentic.status``).
MLFLOW_STATUS = {
    ExperimentStatus.RUNNING: "RUNNING",
    ExperimentStatus.COMPLETED: "FINISHED",
    ExperimentStatus.FAILED: "FAILED",
    ExperimentStatus.CRASHED: "FAILED",
    ExperimentStatus.CANCELLED: "KILLED",
    ExperimentStatus.PRUNED: "KILLED",
}

# MLflow's limits (mlflow.utils.validation): keys, param values, tag values; per log_batch.
MAX_KEY = 250
MAX_PARAM_VALUE = 6_000
MAX_TAG_VALUE = 8_000
MAX_METRICS_PER_BATCH = 1_000
MAX_PARAMS_TAGS_PER_BATCH = 100
_NAME = re.compile(r"^[/\w.\- :]*$")  # MLflow's rule for metric, param and tag names

#: Seconds an MLflow server gets to answer one request; the writer retries (ML_RETRY_TIMEOUT),
#: so MLflow's own retries (7 by default, backing off for minutes) are turned off.
HTTP_TIMEOUT = "15"


def import_mlflow() -> Any:
    """The ``mlflow`` package, or an error that names the extra to install."""
    return require(
        "mlflow", "mlflow", "the MLflow tracking backend is not installed", TrackingUnavailableError
    )


def _name_problem(name: str, room: int) -> str | None:
    if not isinstance(name, str) or not name:
        return "names are non-empty strings"
    if len(name) > room:
        return f"at most {room} characters here"
    if not _NAME.match(name):
        return "letters, digits, _ - . / : and spaces only"
    norm = posixpath.normpath(name)
    if norm != name or norm == "." or norm.startswith(("..", "/")):
        return "no leading /, no '..', '//' or trailing / (MLflow stores names as paths)"
    return None


def check_mlflow_names(names: Iterable[str], what: str, prefix: str = "") -> None:
    """Raise ``ValueError`` naming the first of ``names`` that MLflow cannot keep as a
    metric, param or tag name (``prefix`` is put before it in the store)."""
    for name in names:
        if what == "metric" and isinstance(name, str) and name.startswith(FINAL_PREFIX):
            raise ValueError(
                f"metric name {name!r} is not allowed: {FINAL_PREFIX!r} names final metrics "
                "in MLflow"
            )
        problem = _name_problem(name, MAX_KEY - len(prefix))
        if problem:
            raise ValueError(f"{what} name {name!r} is not allowed with MLflow: {problem}")


def flatten(config: Mapping[str, Any], prefix: str = "") -> dict[str, str]:
    """``{"a": {"b": 1}}`` as MLflow params ``{"a.b": "1"}``: keys MLflow refuses are made
    safe, long values cut (the whole config is kept as JSON too)."""
    out: dict[str, str] = {}
    for key, value in config.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            out.update(flatten(value, name + "."))
            continue
        safe = re.sub(r"[^\w.\- /:]", "_", name).strip("/")[:MAX_KEY] or "_"
        text = value if isinstance(value, str) else json.dumps(value)
        out[safe] = text[:MAX_PARAM_VALUE]
    return out


def run_filter(run_id: str) -> str:
    """MLflow search filter for the run with our id ``run_id`` (hex, checked by callers)."""
    return f"tags.`{TAG['run_id']}` = '{run_id}'"


def local_database(uri: str) -> Path | None:
    """The SQLite file of a local MLflow store, or ``None`` for a server or another database."""
    return Path(uri.removeprefix("sqlite:///")) if uri.startswith("sqlite:///") else None


def is_unreachable(exc: BaseException) -> bool:
    """Whether ``exc`` says that MLflow's server did not answer (not that it refused data)."""
    if isinstance(exc, OSError | TimeoutError):
        return True
    module = type(exc).__module__.split(".")[0]
    if module in {"requests", "urllib3"}:
        return True
    text = str(exc)
    if type(exc).__name__ == "MlflowException":
        # MLflow wraps connection failures and 5xx answers (a server restarting, its database
        # away) in MlflowException; a refused value is INVALID_PARAMETER_VALUE, not retried.
        code = getattr(exc, "error_code", "")
        return any(
            word in text
            for word in (
                "Max retries exceeded",
                "Connection",
                "connect",
                "timed out",
                "API request",
            )
        ) and code not in ("INVALID_PARAMETER_VALUE", "RESOURCE_ALREADY_EXISTS")
    return False


def has_error(exc: BaseException, code: str) -> bool:
    """Whether MLflow's ``exc`` carries error ``code`` (``RESOURCE_DOES_NOT_EXIST``, ...),
    by its code or, from a server, in its message."""
    return code in f"{getattr(exc, 'error_code', '')} {exc}"


def _http_defaults() -> None:
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", HTTP_TIMEOUT)
    # MLflow prints "View run ... at URL" on stdout when a run ends on a server: that would
    # land in the output of `train --json` with the thread writer.
    os.environ.setdefault("MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT", "true")
    for name in ("alembic", "mlflow.store.db.utils", "mlflow.store.tracking.sqlalchemy_store"):
        logging.getLogger(name).setLevel(logging.WARNING)


def connect(settings: Settings) -> Any:
    """An ``MlflowClient`` on the settings' store; a new local store is set up first, one
    process at a time (MLflow migrates a new SQLite database in steps)."""
    _http_defaults()
    mlflow = import_mlflow()
    from agentic_trading.common.databases import sqlalchemy_url

    uri = sqlalchemy_url(settings.mlflow_store_uri())  # a database of MLflow's, read directly
    database = local_database(uri)
    if database is None:
        return mlflow.MlflowClient(tracking_uri=uri, registry_uri=uri)
    try:
        database.parent.mkdir(parents=True, exist_ok=True)
        with open(database.parent / ".agentic-trading-mlflow.lock", "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                # MLflow's client creates and migrates the database as it is made: two
                # processes doing that at once left it half migrated for good.
                client = mlflow.MlflowClient(tracking_uri=uri, registry_uri=uri)
                client.search_experiments(max_results=1)
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)
    except OSError as exc:
        raise TrackingUnavailableError(
            f"cannot set up the MLflow store {uri}: {exc.strerror or exc}"
        ) from None
    return client


def artifact_root(settings: Settings) -> str | None:
    """Where a new experiment's artifacts go: ``ML_ARTIFACTS_URI``, else ``mlartifacts/``
    beside a local store; ``None`` lets an MLflow server decide (its artifact store)."""
    if settings.ml_artifacts_uri:
        return settings.ml_artifacts_uri.rstrip("/")
    database = local_database(settings.mlflow_store_uri())
    if database is None:
        return None
    return (database.parent / "mlartifacts").as_uri()


def ensure_writable(settings: Settings) -> None:
    """The folder of a local store exists or can be made, and is writable (milliseconds)."""
    database = local_database(settings.mlflow_store_uri())
    if database is None:
        return
    ensure_writable_folder(
        database.parent,
        f"the MLflow store's folder {str(database.parent)!r}",
        "choose a folder you can write to (ML_STORAGE_PATH or MLFLOW_TRACKING_URI)",
    )


def download_artifact(uri: str, settings: Settings, folder: Path) -> Path:
    """A copy in ``folder`` of an artifact the MLflow server keeps (``mlflow-artifacts:/...``)."""
    local = import_mlflow().artifacts.download_artifacts(
        artifact_uri=uri, dst_path=str(folder), tracking_uri=settings.mlflow_store_uri()
    )
    return Path(local)
