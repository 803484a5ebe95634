"""The wire codec: lossless round trip, validation, and clear errors for bad payloads."""

from __future__ import annotations

import orjson
import pytest

from schemas.codec import DecodeError, UnsupportedSchemaVersion, canonical_pk, decode, encode
from schemas.events import ChangeEvent, DdlEvent, Op


def event(**over) -> dict:
    base = {"schema_version": 1, "kind": "change", "region": "eu", "origin": "us", "server_id": 1,
            "gtid": "1-1-5", "binlog_file": "binlog.000001", "binlog_pos": 42, "txn_id": "1-1-5",
            "ts_us": 1_700_000_000_000_000, "db": "app", "table": "t", "txn_index": 0, "txn_last": True,
            "op": "update", "pk": {"id": 1}, "before": {"id": 1, "v": "a"}, "after": {"id": 1, "v": "b"},
            "types": {"id": "int", "v": "text"}, "vclock": None, "heads": None, "pk_fold": None,
            "epoch": "5f0c1a2b3c4d5e6f",
            "version_origin": None}
    base.update(over)
    return base


def test_round_trip() -> None:
    message = decode(encode(event()))
    assert isinstance(message, ChangeEvent) and message.op is Op.UPDATE
    assert orjson.loads(encode(message)) == event()


def test_ddl_message() -> None:
    ddl = {k: v for k, v in event().items() if k not in
           ("txn_index", "txn_last", "op", "pk", "before", "after", "types", "vclock", "heads", "version_origin")}
    message = decode(encode({**ddl, "kind": "ddl", "statement": "ALTER TABLE t ADD c INT"}))
    assert isinstance(message, DdlEvent) and message.statement.startswith("ALTER")


def test_unknown_fields_are_ignored_for_forward_compatibility() -> None:
    assert decode(encode(event(new_field=1))).pk == {"id": 1}


@pytest.mark.parametrize("payload, error, text", [
    (b"\xff not json", DecodeError, "not JSON"),
    (b"[1, 2]", DecodeError, "JSON list, not an object"),
    (encode(event(schema_version=99)), UnsupportedSchemaVersion, "schema_version 99 is not supported"),
    (encode(event(op="upsert")), DecodeError, "op"),
    (encode({k: v for k, v in event().items() if k != "pk"}), DecodeError, "pk"),
])
def test_bad_payloads(payload, error, text) -> None:
    with pytest.raises(error, match=text):
        decode(payload)


def test_canonical_pk() -> None:
    assert canonical_pk([1, "a"]) == '[1,"a"]'
