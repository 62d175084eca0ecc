"""The wire format and the id rules, including hostile input (property-based)."""

from __future__ import annotations

import json

from hypothesis import given
from hypothesis import strategies as st

from agentic_trading.common.ids import validate_name
from agentic_trading.messaging.messages import (
    Event,
    EventType,
    ExperimentState,
    MessageDecodeError,
    decode_event,
    encode_event,
)

names = st.from_regex(r"[A-Za-z0-9][A-Za-z0-9_.\-]{0,40}", fullmatch=True)
finite = st.floats(allow_nan=False, allow_infinity=False, width=64)


@given(
    experiment_id=names,
    namespace=names,
    step=st.integers(0, 10**12),
    metrics=st.dictionaries(
        st.text(min_size=1, max_size=20).filter(str.isprintable), finite, max_size=5
    ),
    ts=st.floats(0, 4e9),
)
def test_events_survive_the_wire(
    experiment_id: str, namespace: str, step: int, metrics: dict[str, float], ts: float
) -> None:
    state = ExperimentState(
        experiment_id=experiment_id,
        namespace=namespace,
        created_at=ts,
        updated_at=ts,
        heartbeat_at=ts,
        current_step=step,
        latest_metrics=metrics,
    )
    event = Event(
        type=EventType.METRICS,
        namespace=namespace,
        experiment_id=experiment_id,
        ts=ts,
        state=state,
        step=step,
        metrics=metrics,
    )
    wire = encode_event(event)
    assert json.loads(wire)["v"] == 1
    back = decode_event(wire, "7-0")
    assert back.id == "7-0"
    assert back.model_dump() == event.model_dump()


@given(st.one_of(st.binary(max_size=300), st.text(max_size=300)))
def test_any_bytes_decode_or_fail_with_one_clear_error(raw: bytes | str) -> None:
    try:
        decode_event(raw)
    except MessageDecodeError as exc:
        assert str(exc)


@given(
    st.recursive(
        st.none() | st.booleans() | st.integers() | finite | st.text(max_size=10),
        lambda children: (
            st.lists(children, max_size=3)
            | st.dictionaries(st.text(max_size=5), children, max_size=3)
        ),
        max_leaves=10,
    )
)
def test_json_of_any_shape_is_refused_cleanly_unless_it_is_an_event(value: object) -> None:
    try:
        decode_event(json.dumps(value))
    except MessageDecodeError:
        pass


@given(st.text(max_size=200))
def test_accepted_names_can_never_escape_a_key(value: str) -> None:
    try:
        accepted = validate_name(value)
    except ValueError as exc:
        assert repr(value)[:20] in str(exc) or "empty" in str(exc) or "characters long" in str(exc)
        return
    assert not set(accepted) & set(":{}*?[] \t\r\n\\/\"'")
    assert 1 <= len(accepted) <= 128
