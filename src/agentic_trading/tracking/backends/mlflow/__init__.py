"""The MLflow backend: runs in MLflow (a local SQLite store, or an ``mlflow server``)."""

from agentic_trading.tracking.backends.mlflow.reader import MlflowRunReader
from agentic_trading.tracking.backends.mlflow.store import MlflowRunStore

__all__ = ["MlflowRunReader", "MlflowRunStore"]
