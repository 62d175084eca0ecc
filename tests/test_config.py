"""Settings: the user guide's variable names, .env files, and one clear line for a bad value."""

from __future__ import annotations

from pathlib import Path

import pytest

from agentic_trading.config import SettingsError, get_settings, load_settings


def test_defaults_are_the_embedded_development_setup() -> None:
    settings = load_settings()
    assert settings.message_broker_type == "memory"
    assert (settings.redis_host, settings.redis_port) == ("localhost", 6379)
    assert settings.message_heartbeat_interval == 5
    assert settings.message_heartbeat_timeout == 30
    assert settings.ml_tracking_backend == "aim"
    assert settings.ml_storage_path == "./aim_logs"
    assert settings.ml_experiment_name == "AgenticTrading"


def test_environment_variables_use_the_guides_names(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MESSAGE_BROKER_TYPE", "redis")
    monkeypatch.setenv("REDIS_HOST", "cache.internal")
    monkeypatch.setenv("REDIS_PORT", "6380")
    monkeypatch.setenv("ML_STORAGE_PATH", "/data/aim")
    monkeypatch.setenv("ML_EXPERIMENT_NAME", "Nightly")
    monkeypatch.setenv("MESSAGE_NAMESPACE", "research")
    settings = load_settings()
    assert settings.message_broker_type == "redis"
    assert settings.redis_location() == "redis://cache.internal:6380/0"
    assert (settings.ml_storage_path, settings.ml_experiment_name) == ("/data/aim", "Nightly")
    assert settings.message_namespace == "research"


def test_dotenv_file_is_read_and_environment_wins(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / ".env").write_text("MESSAGE_BROKER_TYPE=redis\nREDIS_PORT=7000\n# comment\n")
    monkeypatch.setenv("REDIS_PORT", "7001")
    settings = load_settings()
    assert settings.message_broker_type == "redis"
    assert settings.redis_port == 7001
    get_settings.cache_clear()
    assert get_settings().message_broker_type == "redis"


@pytest.mark.parametrize(
    ("variable", "value", "expected"),
    [
        (
            "MESSAGE_BROKER_TYPE",
            "kafka",
            "MESSAGE_BROKER_TYPE='kafka' is not allowed: expected 'memory' or 'redis'",
        ),
        ("REDIS_PORT", "70000", "REDIS_PORT='70000'"),
        ("REDIS_PORT", "six", "REDIS_PORT='six'"),
        ("MESSAGE_HEARTBEAT_INTERVAL", "-1", "MESSAGE_HEARTBEAT_INTERVAL='-1'"),
        ("MESSAGE_TTL_SECONDS", "0", "MESSAGE_TTL_SECONDS='0'"),
        ("MESSAGE_NAMESPACE", "a:b", "MESSAGE_NAMESPACE='a:b'"),
        ("REDIS_URL", "http://x", "must start with redis://"),
        ("REDIS_SSL", "maybe", "REDIS_SSL='maybe'"),
        ("ML_TRACKING_BACKEND", "wandb", "ML_TRACKING_BACKEND='wandb'"),
        ("ML_STORAGE_PATH", "http://aim:53800", "a folder path or aim://host:port"),
        ("ML_STORAGE_PATH", " ", "ML_STORAGE_PATH=' '"),
        ("ML_ARTIFACTS_URI", "/data/artifacts", "a URI with a scheme"),
        ("ML_EXPERIMENT_NAME", "my experiment", "ML_EXPERIMENT_NAME='my experiment'"),
        ("ML_QUEUE_SIZE", "0", "ML_QUEUE_SIZE='0'"),
    ],
)
def test_a_bad_value_is_one_line_naming_the_variable(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str, expected: str
) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(SettingsError) as caught:
        load_settings()
    message = str(caught.value)
    assert expected in message
    assert "\n" not in message


@pytest.mark.parametrize("prefix", ["MESSAGE", "ML"])
def test_heartbeat_timeout_must_exceed_the_interval(
    monkeypatch: pytest.MonkeyPatch, prefix: str
) -> None:
    monkeypatch.setenv(f"{prefix}_HEARTBEAT_INTERVAL", "10")
    monkeypatch.setenv(f"{prefix}_HEARTBEAT_TIMEOUT", "5")
    with pytest.raises(SettingsError, match=f"{prefix}_HEARTBEAT_TIMEOUT must be larger"):
        load_settings()


def test_remote_tracking_is_an_aim_url(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ML_STORAGE_PATH", "aim://tracking.internal:53800")
    assert load_settings().is_remote_tracking()
    monkeypatch.setenv("ML_STORAGE_PATH", "./aim_logs")
    assert not load_settings().is_remote_tracking()


def test_secrets_never_show(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REDIS_PASSWORD", "hunter2")
    monkeypatch.setenv("REDIS_URL", "rediss://trainer:topsecret@redis.example:6380/2")
    monkeypatch.setenv("DASHBOARD_TOKEN", "letmein")
    settings = load_settings()
    shown = repr(settings) + str(settings.public_dict()) + settings.redis_location()
    assert "hunter2" not in shown
    assert "topsecret" not in shown
    assert "letmein" not in shown and settings.public_dict()["DASHBOARD_TOKEN"] == "********"
    assert settings.public_dict()["REDIS_URL"] == "rediss://trainer:********@redis.example:6380/2"
    monkeypatch.setenv("REDIS_PORT", "bad")
    with pytest.raises(SettingsError) as caught:
        load_settings()
    assert "hunter2" not in str(caught.value) and "topsecret" not in str(caught.value)
