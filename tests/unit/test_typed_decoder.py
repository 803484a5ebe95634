"""The sinks' typed decoder (schemas/typed_decoder.py) agrees with the pydantic models on every payload.

For any payload: when the typed decoder returns a message, pydantic (`codec.validated`) returns an
equal one (same values, fields set, field order, clock type); and `codec.decode` always has exactly
pydantic's outcome: the same message, or the same error with the same text.
"""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from schemas import codec, messages, typed_decoder
from schemas.events import ChangeEvent, DdlEvent
from schemas.vclock import VectorClock

json_scalars = st.one_of(st.none(), st.booleans(), st.integers(min_value=-2**63, max_value=2**64 - 1),
                         st.floats(allow_nan=False, allow_infinity=False), st.text(max_size=8))
json_values = st.recursive(json_scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=4), inner, max_size=3)), max_leaves=6)
images = st.dictionaries(st.sampled_from(["id", "v", "é", "n"]), json_values, min_size=1, max_size=4)
clocks = st.one_of(st.none(), st.fixed_dictionaries(
    {"counters": st.dictionaries(st.sampled_from(["eu", "us", "ap"]), st.integers(-1, 5), max_size=3)},
    optional={"hlc_us": st.integers(-1, 2**62)}))
# What a field may be replaced by: the producer's types, and the ones pydantic coerces or refuses.
odd_values = st.one_of(json_values, st.sampled_from(["1", "1.0", "true", 1.0, 2.5, True, 0, -1, "change", "ddl",
                                                     "insert", "INSERT", {}, [], 2**64 - 1, -2**63]))


@st.composite
def change_events(draw: st.DrawFn) -> dict[str, Any]:
    txn = messages.TxnInfo("eu", draw(st.sampled_from(["eu", "us"])), 7, draw(st.one_of(st.none(), st.text(max_size=6))),
                           "1-7-9", 1_700_000_000_000_000, epoch=draw(st.one_of(st.none(), st.text(max_size=6))))
    op = draw(st.sampled_from(["insert", "update", "delete", "truncate", "snapshot"]))
    event = messages.change(txn, "binlog.000003", draw(st.integers(0, 2**40)), "app", "t", op, draw(images),
                            draw(st.one_of(st.none(), images)), draw(st.one_of(st.none(), images)),
                            draw(st.dictionaries(st.sampled_from(["id", "v", "é"]), st.sampled_from(
                                ["int", "text", "decimal(10,2)", "json", "datetime(6)"]))))
    event["txn_last"] = draw(st.booleans())
    event["vclock"] = draw(clocks)
    if draw(st.booleans()):
        event["pk_fold"] = {"id": "x"}
    if draw(st.booleans()):
        event["version_origin"] = "us"
    return event


def ddl_event(statement: str = "ALTER TABLE t ADD c INT") -> dict[str, Any]:
    return messages.ddl(messages.TxnInfo("eu", "eu", 7, "1-7-9", "1-7-9", 1_700_000_000_000_000, "e1"),
                        "binlog.000003", 99, "app", "t", statement)


@st.composite
def payloads(draw: st.DrawFn) -> bytes:
    event = draw(st.one_of(change_events(), st.just(ddl_event())))
    for _ in range(draw(st.integers(0, 2))):
        action = draw(st.sampled_from(["drop", "replace", "add"]))
        name = draw(st.sampled_from(sorted(event)))
        if action == "drop":
            event.pop(name, None)
        elif action == "replace":
            event[name] = draw(odd_values)
        else:
            event[draw(st.text(min_size=1, max_size=5))] = draw(json_values)
    return orjson.dumps(event)


def outcome(decode: Any, payload: bytes) -> Any:
    try:
        return decode(payload)
    except codec.DecodeError as err:
        return type(err), str(err)


def encoded(message: Any) -> Any:
    try:
        return orjson.loads(codec.encode(message))
    except TypeError as err:     # orjson writes no integer past 64 bits
        return str(err)


def assert_same_model(fast: ChangeEvent | DdlEvent, reference: Any) -> None:
    assert type(fast) is type(reference) and fast == reference
    assert fast.__pydantic_fields_set__ == reference.__pydantic_fields_set__
    assert list(fast.__dict__) == list(reference.__dict__)
    assert fast.model_dump() == reference.model_dump()
    assert encoded(fast) == encoded(reference)
    if isinstance(fast, ChangeEvent) and fast.vclock is not None:
        assert type(fast.vclock) is VectorClock
        assert fast.vclock.__pydantic_fields_set__ == reference.vclock.__pydantic_fields_set__


@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(payloads())
def test_both_decoders_agree(payload: bytes) -> None:
    reference = outcome(codec.validated, payload)
    fast = typed_decoder.decode(payload)
    if fast is not None:
        assert_same_model(fast, reference)
    decoded = outcome(codec.decode, payload)
    if isinstance(reference, tuple):
        assert decoded == reference             # the same error class and text
    else:
        assert_same_model(decoded, reference)


@settings(max_examples=200, deadline=None)
@given(change_events())
def test_what_producers_write_takes_the_typed_path(event: dict[str, Any]) -> None:
    """Without this the speed-up could vanish unnoticed: every well-formed change (a clock with a
    negative counter aside: pydantic refuses it) decodes without pydantic."""
    if event["vclock"] is not None and min(event["vclock"]["counters"].values(), default=0) < 0 \
            or event["vclock"] is not None and event["vclock"].get("hlc_us", 0) < 0:
        return
    assert typed_decoder.decode(orjson.dumps(event)) is not None
    assert typed_decoder.decode(orjson.dumps(ddl_event())) is not None


@pytest.mark.parametrize("payload", [
    b'{"schema_version": 1, "kind": "change"}',
    orjson.dumps({**ddl_event(), "kind": "change"}),
    orjson.dumps({**ddl_event(), "schema_version": 2}),
    orjson.dumps({**ddl_event(), "server_id": "7"}),         # pydantic coerces it; the typed decoder does not
    b'{"schema_version": 1e400}',
    b"\xff",
])
def test_refusals_fall_back_to_pydantic(payload: bytes) -> None:
    assert typed_decoder.decode(payload) is None
    assert outcome(codec.decode, payload) == outcome(codec.validated, payload)


@pytest.mark.parametrize("payload", [
    orjson.dumps({**ddl_event(), "ts_us": 2**64 - 1}).replace(b"18446744073709551615", b"1" * 30),  # past 64 bits
    orjson.dumps(ddl_event("x")).replace(b'"statement":"x"', rb'"statement":"caf\u00e9 \ud83d\ude00 \n"'),  # escapes
    orjson.dumps(ddl_event()).replace(b'"db":"app"', b'"db":"app","db":"other"'),     # a repeated key: the last
])
def test_agreement_on_edge_payloads(payload: bytes) -> None:
    fast = typed_decoder.decode(payload)
    assert fast is not None
    assert_same_model(fast, codec.validated(payload))


def test_a_schema_version_of_any_json_type_is_a_clear_error() -> None:
    """Found by test_both_decoders_agree: an object as schema_version raised TypeError (unhashable)."""
    payload = orjson.dumps({**ddl_event(), "schema_version": {}})
    with pytest.raises(codec.UnsupportedSchemaVersion, match="schema_version {} is not supported"):
        codec.decode(payload)


def test_fields_mirror_the_models() -> None:
    """A field added to schemas/events.py must be added to the typed decoder's structs too."""
    import msgspec

    assert tuple(f for f in msgspec.structs.fields(typed_decoder._Change)) and \
        [f.name for f in msgspec.structs.fields(typed_decoder._Change)] == list(ChangeEvent.model_fields)
    assert [f.name for f in msgspec.structs.fields(typed_decoder._Ddl)] == list(DdlEvent.model_fields)
