"""Hostile input at every boundary: property-based (Hypothesis) and fuzzed, never a crash.

Each boundary either accepts a value or refuses it with its own clear error type; nothing else
escapes (no TypeError, KeyError, pandas or Aim internals), and nothing reaches outside its place.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agentic_trading.config import SettingsError, load_settings
from agentic_trading.tracking.backends.aim.reader import check_query
from agentic_trading.tracking.records import TrainingMetrics, split_metric_values
from agentic_trading.training.data import DataError, load_prices
from tests.conftest import make_settings
from tests.dash_requests import UPDATE_PATH, page_body

ANYTHING = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner),
    max_leaves=5,
)


@given(st.dictionaries(st.text(max_size=140), ANYTHING, max_size=5))
def test_metric_values_are_stored_finite_or_refused_naming_the_metric(
    values: dict[str, object],
) -> None:
    try:
        finite, skipped = split_metric_values(values)
    except ValueError as exc:
        assert "metric" in str(exc)
        return
    assert all(type(v) is float and math.isfinite(v) for v in finite.values())
    assert set(finite) | set(skipped) == set(values)


@given(step=st.integers(min_value=-(2**70), max_value=2**70), reward=ANYTHING)
def test_training_metrics_take_numbers_only(step: int, reward: object) -> None:
    from pydantic import ValidationError

    try:
        point = TrainingMetrics(step=step, reward=reward)
    except (ValidationError, ValueError):
        return
    assert point.step >= 0
    assert point.reward is None or isinstance(point.reward, float)


NUMERIC_SETTINGS = [
    "REDIS_PORT",
    "REDIS_DB",
    "MESSAGE_TTL_SECONDS",
    "MESSAGE_HEARTBEAT_INTERVAL",
    "MESSAGE_HEARTBEAT_TIMEOUT",
    "MESSAGE_STREAM_MAXLEN",
    "ML_QUEUE_SIZE",
    "DASHBOARD_PORT",
]
TEXT_SETTINGS = [
    "MESSAGE_NAMESPACE",
    "MESSAGE_BROKER_TYPE",
    "REDIS_URL",
    "ML_STORAGE_PATH",
    "ML_EXPERIMENT_NAME",
    "ML_ARTIFACTS_URI",
    "ML_WRITER",
    "DASHBOARD_AIM_UI_URL",
    "DASHBOARD_CONTROL",
]


@settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    name=st.sampled_from(NUMERIC_SETTINGS + TEXT_SETTINGS),
    value=st.text(alphabet=st.characters(blacklist_categories=["Cs"]), max_size=40).filter(
        lambda v: "\x00" not in v
    ),
)
def test_any_setting_value_loads_or_is_one_line_naming_the_variable(
    name: str, value: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    secret = "pa55-hostile"
    os.environ[name] = value
    os.environ["REDIS_PASSWORD"] = secret
    try:
        load_settings()
    except SettingsError as exc:
        message = str(exc)
        assert name in message.upper() or name.lower() in message
        assert "\n" not in message and secret not in message
    finally:
        del os.environ[name]
        del os.environ["REDIS_PASSWORD"]


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    text=st.one_of(
        st.text(max_size=400),
        st.lists(
            st.tuples(
                st.sampled_from(["2017-01-02 00:00", "x", "", "2017-13-40", "1e9"]),
                *[st.sampled_from(["1.05", "-1", "nan", "", "abc", "1e308", "0"])] * 4,
            ),
            max_size=40,
        ).map(lambda rows: "Time,Open,High,Low,Close\n" + "\n".join(",".join(r) for r in rows)),
    )
)
def test_fuzzed_csv_is_loaded_or_one_data_error(text: str, tmp_path: Path) -> None:
    path = tmp_path / "prices.csv"
    path.write_text(text, encoding="utf-8", errors="surrogatepass")
    try:
        frame = load_prices("EUR_USD", path)
    except DataError as exc:
        assert str(path) in str(exc)
        return
    assert (frame["Close"] > 0).all() and frame.index.is_monotonic_increasing


@given(st.text(max_size=300))
def test_any_query_text_is_passed_alone_or_refused(query: str) -> None:
    try:
        checked = check_query(query)
    except ValueError as exc:
        assert "query" in str(exc)
        return
    for forbidden in ("__", "import", "lambda", "\n", ";"):
        assert forbidden not in checked


@pytest.mark.parametrize(
    "query",
    [
        "run.__class__.__mro__",
        "().__class__.__bases__[0].__subclasses__()",
        "__import__('os').system('touch /tmp/pwned')",
        "(lambda: 1)()",
        "run.hparams.lr > 0; import os",
        "open('/etc/passwd').read()",
        "exec('1')",
        "[x := 1]",
    ],
)
def test_query_escapes_are_refused(query: str) -> None:
    with pytest.raises(ValueError, match="not allowed"):
        check_query(query)


def test_dashboard_refuses_hostile_ids_and_paths(tmp_path: Path) -> None:
    from agentic_trading.dashboard.app import create_app

    secret = tmp_path / "secret.txt"
    secret.write_text("top secret")
    app = create_app(make_settings(ml_storage_path=str(tmp_path / "aim")))
    client = app.server.test_client()
    for path in (
        "/_agentic/artifacts/../../secret.txt",
        f"/_agentic/artifacts/abc/..%2F..%2F{secret.name}",
        "/_agentic/artifacts/%2e%2e/%2e%2e/etc/passwd",
        f"/_agentic/artifacts/{'a' * 24}/{secret}",
    ):
        response = client.get(path)
        assert b"top secret" not in response.data, path
        assert "Content-Disposition" not in response.headers  # not a download: 404 or the app
        assert response.status_code in (404, 200), path
    route = page_body("/runs/x' or 1==1 --")
    page = json.dumps(client.post(UPDATE_PATH, json=route).get_json())
    assert "Run not found" in page and "not allowed" in page
