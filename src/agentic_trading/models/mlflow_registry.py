"""MLflow's model registry kept in step with ours, when MLflow is the tracking backend.

Our registry (in the run catalogue) stays the one ``load_model`` reads; each registration
also becomes a version of the same name in MLflow's registry (tagged with our version number,
its source the run's artifacts folder, which holds ``model.zip``), and each alias moves there too, so that
``models:/EURUSD-PPO@champion`` works in MLflow's own client and UI.
"""

from __future__ import annotations

from typing import Any

from agentic_trading.config import Settings
from agentic_trading.models.registry import ModelVersion, RegistryError
from agentic_trading.tracking.backends.mlflow._storage import has_error
from agentic_trading.tracking.errors import describe

__all__ = ["MlflowModelRegistry"]

VERSION_TAG = "agentic.version"
RUN_TAG = "agentic.run_id"


class MlflowModelRegistry:
    """Mirrors registrations and aliases into MLflow's model registry."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._client: Any = None

    @property
    def client(self) -> Any:
        if self._client is None:
            from agentic_trading.tracking.backends.mlflow._storage import connect

            self._client = connect(self._settings)
        return self._client

    def _failed(self, what: str, exc: Exception) -> RegistryError:
        return RegistryError(
            f"{what} is in this project's registry, but MLflow's model registry at "
            f"{self._settings.tracking_location()} did not take it: {describe(exc)}; "
            "run the same command again to retry"
        )

    def register(self, version: ModelVersion) -> None:
        """Add ``version`` to MLflow's registry (idempotent: a version already there stays)."""
        try:
            if self._mlflow_version(version.name, version.version) is not None:
                return
            try:
                self.client.create_registered_model(
                    version.name, description="Registered by agentic-trading"
                )
            except Exception as exc:
                if not has_error(exc, "RESOURCE_ALREADY_EXISTS"):
                    raise
            self.client.create_model_version(
                version.name,
                # MLflow downloads a version's source as a folder: the run's artifacts
                # (model.zip and config.json), not the file alone.
                source=version.artifact_uri.rsplit("/", 1)[0],
                run_id=self._mlflow_run_id(version.run_id),
                tags={VERSION_TAG: str(version.version), RUN_TAG: version.run_id},
            )
        except RegistryError:
            raise
        except Exception as exc:
            raise self._failed(version.reference, exc) from None

    def promote(self, version: ModelVersion, alias: str) -> None:
        """Point MLflow's ``alias`` of the model at the MLflow version mirroring ``version``."""
        try:
            found = self._mlflow_version(version.name, version.version)
            if found is None:
                self.register(version)
                found = self._mlflow_version(version.name, version.version)
            self.client.set_registered_model_alias(version.name, alias, found)
        except RegistryError:
            raise
        except Exception as exc:
            raise self._failed(f"{version.name}@{alias}", exc) from None

    def remove_alias(self, name: str, alias: str) -> None:
        """Take ``alias`` off MLflow's model ``name`` too (nothing if it is not there)."""
        try:
            self.client.delete_registered_model_alias(name, alias)
        except Exception as exc:
            if not has_error(exc, "RESOURCE_DOES_NOT_EXIST"):
                raise self._failed(f"removing {name}@{alias}", exc) from None

    def _mlflow_version(self, name: str, version: int) -> str | None:
        try:
            versions = self.client.search_model_versions(f"name = '{name}'")
        except Exception as exc:
            if has_error(exc, "RESOURCE_DOES_NOT_EXIST"):
                return None
            raise
        for candidate in versions:
            if candidate.tags.get(VERSION_TAG) == str(version):
                return str(candidate.version)
        return None

    def _mlflow_run_id(self, run_id: str) -> str | None:
        from agentic_trading.tracking.backends.mlflow.reader import MlflowRunReader

        return MlflowRunReader(self._settings).mlflow_run_id(run_id)
