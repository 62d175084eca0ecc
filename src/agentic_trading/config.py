"""Settings from the environment and ``.env``, with the names the user guide uses.

Every default lives here. Read them with :func:`get_settings`; a bad value raises
:class:`SettingsError` whose message names the variable and what is allowed.
"""

from __future__ import annotations

import functools
import math
import re
from typing import Any, Literal
from urllib.parse import quote

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from agentic_trading.common.ids import validate_name

__all__ = [
    "TRACKING_FIELDS",
    "Settings",
    "SettingsError",
    "get_settings",
    "load_settings",
    "mask_alert_url",
    "mask_url",
    "split_alert_urls",
]


class SettingsError(ValueError):
    """A setting has a value that is not allowed. The message names the variable."""


class Settings(BaseSettings):
    """All settings, read from environment variables (case-insensitive) and a ``.env`` file."""

    model_config = SettingsConfigDict(
        env_file=".env",
        env_file_encoding="utf-8",
        extra="ignore",
        case_sensitive=False,
        validate_default=True,
    )

    # --- Messaging ----------------------------------------------------------------------------
    message_broker_type: Literal["memory", "redis"] = "memory"
    message_namespace: str = "default"
    message_ttl_seconds: float = Field(86_400.0, gt=0)
    message_heartbeat_interval: float = Field(5.0, gt=0)
    message_heartbeat_timeout: float = Field(30.0, gt=0)
    message_stream_maxlen: int = Field(10_000, ge=100)
    message_progress_interval: float = Field(0.05, ge=0)
    message_timeout: float = Field(10.0, gt=0)

    # --- Redis --------------------------------------------------------------------------------
    redis_url: str | None = Field(None, repr=False)
    redis_host: str = "localhost"
    redis_port: int = Field(6379, ge=1, le=65535)
    redis_db: int = Field(0, ge=0)
    redis_username: str | None = None
    redis_password: SecretStr | None = None
    redis_ssl: bool = False
    redis_ssl_ca_certs: str | None = None
    redis_ssl_certfile: str | None = None
    redis_ssl_keyfile: str | None = None
    redis_sentinels: str | None = None
    redis_sentinel_master: str = "mymaster"
    redis_sentinel_password: SecretStr | None = Field(None, repr=False)
    redis_socket_timeout: float = Field(5.0, gt=0)
    redis_connect_timeout: float = Field(2.0, gt=0)

    # --- Tracking -----------------------------------------------------------------------------
    ml_tracking_backend: Literal["aim", "mlflow"] = "aim"
    ml_storage_path: str = "./aim_logs"
    ml_experiment_name: str = "AgenticTrading"
    ml_artifacts_uri: str | None = None
    ml_queue_size: int = Field(10_000, ge=1)
    ml_writer: Literal["process", "thread"] = "process"
    ml_heartbeat_interval: float = Field(5.0, gt=0)
    ml_heartbeat_timeout: float = Field(30.0, gt=0)
    ml_writer_buffer: int = Field(100_000, ge=1)
    ml_retry_timeout: float = Field(300.0, ge=0)
    ml_writer_timeout: float = Field(60.0, gt=0)
    ml_catalog_url: str | None = Field(None, repr=False)
    ml_capture_environment: bool = True
    ml_system_metrics_interval: float = Field(10.0, ge=0)
    ml_capture_output_max_lines: int = Field(100_000, ge=0)
    mlflow_tracking_uri: str | None = Field(None, repr=False)

    # --- Studies ------------------------------------------------------------------------------
    study_storage: str = Field("sqlite:///./studies.db", repr=False)
    study_heartbeat_interval: int = Field(10, ge=1, le=3600)
    study_grace_period: int = Field(60, ge=2, le=86_400)
    study_max_retry: int = Field(3, ge=0, le=100)
    study_pool_size: int = Field(5, ge=1, le=100)
    study_retry_timeout: float = Field(120.0, ge=0)

    # --- Population-based training ------------------------------------------------------------
    pbt_path: str = "./pbt"

    # --- Dashboard ----------------------------------------------------------------------------
    dashboard_host: str = "127.0.0.1"
    dashboard_port: int = Field(8050, ge=1, le=65535)
    dashboard_token: SecretStr | None = None
    dashboard_control: bool = True
    dashboard_aim_ui_url: str = "http://127.0.0.1:43800"
    dashboard_url: str | None = None  # where users open the dashboard: links in alerts

    # --- Alerts -------------------------------------------------------------------------------
    alert_urls: str | None = Field(None, repr=False)
    alert_events: str = "completed,failed,cancelled,crashed,rule,study_finished,new_best"
    alert_rules: str | None = None

    @field_validator("ml_experiment_name")
    @classmethod
    def _experiment_is_a_name(cls, value: str) -> str:
        return validate_name(value, "experiment name")

    @field_validator("ml_storage_path")
    @classmethod
    def _storage_path(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("a folder path or aim://host:port")
        if "://" in value and not value.startswith("aim://"):
            raise ValueError("a folder path or aim://host:port (no other scheme)")
        return value

    @field_validator("ml_artifacts_uri")
    @classmethod
    def _artifacts_uri_scheme(cls, value: str | None) -> str | None:
        if value in (None, ""):
            return None
        assert value is not None
        if "://" not in value:
            raise ValueError(
                "a URI with a scheme, such as file:///data/artifacts or s3://bucket/path"
            )
        return value

    @field_validator("ml_catalog_url")
    @classmethod
    def _catalog_url(cls, value: str | None) -> str | None:
        if value in (None, ""):
            return None
        assert value is not None
        if value != "none" and not value.startswith(("sqlite:///", "postgresql://", "postgresql+")):
            raise ValueError(
                "an SQLAlchemy URL of the run catalogue (sqlite:///path/catalogue.db or "
                "postgresql://user:password@host:5432/database), or none"
            )
        return value

    @field_validator("mlflow_tracking_uri")
    @classmethod
    def _mlflow_uri(cls, value: str | None) -> str | None:
        if value in (None, ""):
            return None
        assert value is not None
        if not value.startswith(MLFLOW_URI_SCHEMES):
            raise ValueError(
                "an MLflow tracking URI: http(s)://host:port of an mlflow server, "
                "sqlite:///path/mlflow.db or postgresql://user:password@host:5432/database"
            )
        return value.rstrip("/")

    @field_validator("redis_sentinels")
    @classmethod
    def _sentinel_addresses(cls, value: str | None) -> str | None:
        if value in (None, ""):
            return None
        assert value is not None
        _host_ports(value)
        return value

    @field_validator("study_storage")
    @classmethod
    def _study_storage_url(cls, value: str) -> str:
        if not value.startswith(("sqlite:///", "postgresql://", "postgresql+")):
            raise ValueError(
                "an SQLAlchemy URL of the study database: sqlite:///path/studies.db or "
                "postgresql://user:password@host:5432/database"
            )
        return value

    @field_validator("dashboard_aim_ui_url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError("an http:// or https:// address of Aim's UI")
        return value.rstrip("/")

    @field_validator("dashboard_url")
    @classmethod
    def _dashboard_url(cls, value: str | None) -> str | None:
        if value in (None, ""):
            return None
        assert value is not None
        if not value.startswith(("http://", "https://")):
            raise ValueError("an http:// or https:// address of the dashboard")
        return value.rstrip("/")

    @field_validator("alert_urls")
    @classmethod
    def _alert_urls(cls, value: str | None) -> str | None:
        for url in split_alert_urls(value):
            scheme, sep, rest = url.partition("://")
            if not sep or not scheme.isalnum() or not rest:
                raise ValueError(
                    f"Apprise URLs separated by spaces or commas, such as "
                    f"slack://TokenA/TokenB/TokenC or json://host:port/path; "
                    f"{mask_alert_url(url)!r} is not one"
                )
        return value or None

    @field_validator("alert_events")
    @classmethod
    def _alert_events(cls, value: str) -> str:
        from agentic_trading.alerts.message import parse_events

        parse_events(value)
        return value

    @field_validator("alert_rules")
    @classmethod
    def _alert_rules(cls, value: str | None) -> str | None:
        from agentic_trading.alerts.rules import parse_rules

        parse_rules(value)
        return value or None

    @field_validator("message_namespace")
    @classmethod
    def _namespace_is_a_name(cls, value: str) -> str:
        return validate_name(value, "namespace")

    @field_validator("redis_url")
    @classmethod
    def _redis_url_scheme(cls, value: str | None) -> str | None:
        if value in (None, ""):
            return None
        assert value is not None
        if not value.startswith(("redis://", "rediss://", "unix://")):
            raise ValueError("must start with redis://, rediss:// or unix://")
        return value

    @field_validator(
        "message_ttl_seconds",
        "message_heartbeat_interval",
        "message_heartbeat_timeout",
        "message_timeout",
        "ml_heartbeat_interval",
        "ml_heartbeat_timeout",
        "ml_retry_timeout",
        "ml_writer_timeout",
        "study_retry_timeout",
    )
    @classmethod
    def _finite(cls, value: float) -> float:
        if not math.isfinite(value):
            raise ValueError("must be a finite number of seconds")
        return value

    @model_validator(mode="after")
    def _grace_exceeds_heartbeat(self) -> Settings:
        if self.study_grace_period <= self.study_heartbeat_interval:
            raise ValueError(
                "STUDY_GRACE_PERIOD must be larger than STUDY_HEARTBEAT_INTERVAL (got "
                f"{self.study_grace_period} <= {self.study_heartbeat_interval})"
            )
        return self

    def study_location(self) -> str:
        """``STUDY_STORAGE`` without its password, for messages."""
        return mask_url(self.study_storage)

    @model_validator(mode="after")
    def _timeout_exceeds_interval(self) -> Settings:
        for prefix in ("message", "ml"):
            timeout = getattr(self, f"{prefix}_heartbeat_timeout")
            interval = getattr(self, f"{prefix}_heartbeat_interval")
            if timeout <= interval:
                name = prefix.upper()
                raise ValueError(
                    f"{name}_HEARTBEAT_TIMEOUT must be larger than {name}_HEARTBEAT_INTERVAL "
                    f"(got {timeout:g} <= {interval:g})"
                )
        return self

    def sentinel_addresses(self) -> list[tuple[str, int]]:
        """``REDIS_SENTINELS`` as ``(host, port)`` pairs; empty without Sentinel."""
        return _host_ports(self.redis_sentinels) if self.redis_sentinels else []

    def redis_location(self) -> str:
        """Where Redis is, for messages: a URL without its password."""
        if self.redis_sentinels:
            return f"sentinel://{self.redis_sentinels}/{self.redis_sentinel_master}"
        if self.redis_url:
            return mask_url(self.redis_url)
        scheme = "rediss" if self.redis_ssl else "redis"
        return f"{scheme}://{self.redis_host}:{self.redis_port}/{self.redis_db}"

    def is_remote_tracking(self) -> bool:
        """Whether runs go to a tracking server or database that other hosts share (Aim's
        ``aim://`` server, or an MLflow tracking URI other than a local SQLite file), rather
        than to a folder on this machine."""
        if self.ml_tracking_backend == "mlflow":
            return not self.mlflow_store_uri().startswith("sqlite:///")
        return self.ml_storage_path.startswith("aim://")

    def mlflow_store_uri(self) -> str:
        """MLflow's tracking URI: ``MLFLOW_TRACKING_URI``, else ``mlflow.db`` (SQLite) in the
        ``ML_STORAGE_PATH`` folder."""
        if self.mlflow_tracking_uri:
            return self.mlflow_tracking_uri
        from pathlib import Path

        folder = Path(self.ml_storage_path).expanduser().resolve()
        return f"sqlite:///{folder / 'mlflow.db'}"

    def tracking_location(self) -> str:
        """Where runs are stored, for messages (no password): the Aim repository's folder or
        ``aim://`` URL, or MLflow's tracking URI."""
        if self.ml_tracking_backend == "mlflow":
            return mask_url(self.mlflow_store_uri())
        if self.is_remote_tracking():
            return self.ml_storage_path
        from pathlib import Path

        return str(Path(self.ml_storage_path).expanduser().resolve())

    def check_artifact_store(self) -> None:
        """Raise :class:`SettingsError` unless artifacts (models) have somewhere to go."""
        # An MLflow server keeps artifacts itself (its artifact store); Aim's server does not.
        aim_server = self.ml_tracking_backend == "aim" and self.is_remote_tracking()
        if aim_server and not self.ml_artifacts_uri:
            raise SettingsError(
                f"ML_ARTIFACTS_URI is not set: artifacts need a store that every host shares "
                f"when tracking through {self.ml_storage_path} (for example "
                "file:///shared/artifacts or s3://bucket/path)"
            )

    def public_dict(self) -> dict[str, Any]:
        """Every setting by its environment name, with secrets masked."""
        out: dict[str, Any] = {}
        for name in type(self).model_fields:
            value = getattr(self, name)
            if isinstance(value, SecretStr):
                value = "********" if value.get_secret_value() else ""
            elif name in _URL_SETTINGS and value:
                value = mask_url(value)
            elif name == "alert_urls" and value:
                value = " ".join(mask_alert_url(url) for url in split_alert_urls(value))
            out[name.upper()] = value
        return out


_URL_SETTINGS = ("redis_url", "study_storage", "ml_catalog_url", "mlflow_tracking_uri")
MLFLOW_URI_SCHEMES = ("http://", "https://", "sqlite:///", "postgresql://", "postgresql+")


#: The settings of the tracking system (what a tracker's writer process is given): its own, and
#: the alerts its writer sends when a run ends.
TRACKING_FIELDS = frozenset(
    n
    for n in Settings.model_fields
    if n.startswith(("ml_", "mlflow_", "alert_")) or n == "dashboard_url"
)


def _host_ports(value: str) -> list[tuple[str, int]]:
    """``host:port,host:port`` as pairs; ``ValueError`` naming a malformed address."""
    pairs = []
    for address in (a.strip() for a in value.split(",")):
        host, _, port = address.rpartition(":")
        if not host or not port.isdigit() or not 1 <= int(port) <= 65535:
            raise ValueError(
                f"{address!r} is not host:port; give REDIS_SENTINELS as host:port,host:port"
            )
        pairs.append((host, int(port)))
    return pairs


def split_alert_urls(value: str | None) -> list[str]:
    """``ALERT_URLS`` as a list (separated by spaces or commas)."""
    return [url for url in re.split(r"[\s,]+", value or "") if url]


#: Apprise schemes whose host is an address, not a token: their path may hold one.
_WEB_HOOKS = ("json", "jsons", "form", "forms", "xml", "xmls")


def mask_alert_url(url: str) -> str:
    """An Apprise URL without its secrets (tokens, passwords, paths of web hooks), for logs:
    ``slack://********``, ``json://127.0.0.1:8080/********``."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        return "********"
    if scheme.lower() not in _WEB_HOOKS:
        return f"{scheme}://********"
    host = rest.split("/", 1)[0].split("?", 1)[0].rpartition("@")[2]
    return f"{scheme}://{host}/********" if rest != host else f"{scheme}://{host}"


def mask_url(url: str) -> str:
    """``url`` with its password, if any, replaced by ``********``."""
    scheme, sep, rest = url.partition("://")
    if "@" not in rest:
        return url
    creds, _, host = rest.rpartition("@")
    if ":" not in creds and scheme.startswith(("postgres", "mysql")):
        return url  # a user name alone (redis://secret@host is a password alone)
    user = creds.split(":", 1)[0] if ":" in creds else ""
    return (
        f"{scheme}{sep}{quote(user)}:********@{host}" if user else f"{scheme}{sep}********@{host}"
    )


def _describe(error: dict[str, Any]) -> str:
    loc = ".".join(str(part) for part in error.get("loc", ()))
    variable = loc.upper() if loc else "settings"
    given = error.get("input")
    reason = str(error.get("msg", "invalid value"))
    reason = reason.removeprefix("Value error, ").removeprefix("Input should be ")
    if not loc:  # a cross-field check: its message already names the variables
        return reason
    if variable == "ALERT_URLS" and isinstance(given, str):
        given = " ".join(mask_alert_url(url) for url in split_alert_urls(given))
    elif isinstance(given, str) and "://" in given:
        given = mask_url(given)  # a URL's password never reaches a message
    shown = "********" if "PASSWORD" in variable else repr(given)
    return f"{variable}={shown} is not allowed: expected {reason}"


def load_settings(**overrides: Any) -> Settings:
    """Read settings now (environment, ``.env``, then ``overrides``), raising :class:`SettingsError`."""
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        raise SettingsError("; ".join(_describe(dict(e)) for e in exc.errors())) from None


@functools.cache
def get_settings() -> Settings:
    """The process-wide settings, read once. Call ``get_settings.cache_clear()`` to re-read."""
    return load_settings()
