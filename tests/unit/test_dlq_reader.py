"""Pure parts of the dead-letter reader: parsing records, replay marks, entry ids, selection."""

from __future__ import annotations

import base64

import orjson
import pytest

from cdcsync.tools.dlq_reader import (DlqEntry, EntryId, ReplayMark, assemble, decoded_payload, latest,
    parse_entry_id, parse_message, replay_mark, select, short)
from consumers.dlq import DeadLetter, to_json
from consumers.records import SourceRecord
from schemas.codec import encode

EVENT = {"schema_version": 1, "kind": "change", "region": "eu", "origin": "eu", "server_id": 1, "gtid": "1-1-10",
         "binlog_file": "binlog.000001", "binlog_pos": 100, "txn_id": "1-1-10", "ts_us": 0, "db": "app",
         "table": "t", "txn_index": 0, "txn_last": True, "op": "insert", "pk": {"id": 1}, "before": None,
         "after": {"id": 1, "v": "x"}, "types": {"id": "int", "v": "varchar(10)"}}


def letter(offset: int = 7, payload: bytes | None = None, kind: str = "missing_column", sink: str = "db",
           dead_at_us: int = 1_000) -> bytes:
    record = SourceRecord.from_message("p.eu.app.t", 2, offset, b"[1]", payload if payload is not None else encode(EVENT))
    data = to_json(DeadLetter(record, "1054: Unknown column 'v' in 'field list'", kind), region="us", sink=sink)
    data["dead_at_us"] = dead_at_us
    return orjson.dumps(data)


def test_a_dead_letter_round_trips_to_its_source_record() -> None:
    entry = parse_message(1, 5, letter())
    assert isinstance(entry, DlqEntry)
    assert entry.id == EntryId(1, 5) and str(entry.id) == "1:5"
    assert (entry.kind, entry.sink, entry.region) == ("missing_column", "db", "us")
    assert entry.source == ("p.eu.app.t", 2, 7) and entry.key == b"[1]" and not entry.replayed
    record = entry.record()
    assert record is not None and record.event is not None and record.event.after == {"id": 1, "v": "x"}
    assert (record.topic, record.partition, record.offset) == ("p.eu.app.t", 2, 7)
    detail = entry.detail()
    assert detail["payload_encoding"] == "json" and detail["payload"]["after"] == {"id": 1, "v": "x"}
    assert detail["key"] == "[1]" and detail["key_encoding"] == "utf-8"
    assert "payload" not in entry.summary() and entry.summary()["entry"] == "1:5"


def test_binary_payloads_show_as_base64_and_stay_poison() -> None:
    raw = b"\x00\xffnot json"
    entry = parse_message(0, 0, letter(payload=raw, kind="undecodable"))
    assert isinstance(entry, DlqEntry) and entry.payload == raw
    assert entry.detail()["payload"] == base64.b64encode(raw).decode()
    assert entry.detail()["payload_encoding"] == "base64"
    record = entry.record()
    assert record is not None and record.event is None and record.error_kind == "undecodable"
    assert decoded_payload(b'{"a": 1}') == ({"a": 1}, "json")


def test_unreadable_records_become_entries_not_errors() -> None:
    for value in (b"garbage", b"[1, 2]", None, orjson.dumps({"kind": "x", "payload": "!!notbase64!!"}),
                  orjson.dumps({"replayed": "seven"})):
        entry = parse_message(0, 3, value)
        assert isinstance(entry, DlqEntry) and entry.kind == "unreadable", value
        assert entry.record() is None


def test_replay_marks_attach_to_their_entry() -> None:
    first = parse_message(0, 4, letter(offset=1))
    second = parse_message(1, 4, letter(offset=2))
    assert isinstance(first, DlqEntry) and isinstance(second, DlqEntry)
    mark = parse_message(1, 9, orjson.dumps(replay_mark(second, region="us", now_us=55)))
    assert mark == ReplayMark(EntryId(1, 4), 55)
    later = ReplayMark(EntryId(1, 4), 99)
    entries = assemble([later, second, mark, first])
    assert [str(e.id) for e in entries] == ["0:4", "1:4"]
    assert not entries[0].replayed and entries[1].replayed and entries[1].replayed_at_us == 55


def test_entry_ids() -> None:
    assert parse_entry_id("2:17") == (2, 17)
    assert parse_entry_id(" 17 ") == (None, 17)
    for bad in ("x", "1:", ":3", "-1", "1:-2", "a:b"):
        with pytest.raises(ValueError, match="not an entry"):
            parse_entry_id(bad)


def test_select_names_entries_and_refuses_ambiguous_offsets() -> None:
    entries = assemble([parse_message(0, 4, letter()), parse_message(1, 4, letter()), parse_message(1, 5, letter())])
    assert [str(e.id) for e in select(entries, ["1:4", "5", "1:4"])] == ["1:4", "1:5"]
    with pytest.raises(ValueError, match="ambiguous: entries 0:4, 1:4"):
        select(entries, ["4"])
    with pytest.raises(ValueError, match="no dead-letter entry 2:4"):
        select(entries, ["2:4"])


def test_latest_keeps_the_most_recent_oldest_first() -> None:
    entries = assemble([parse_message(0, 0, letter(dead_at_us=30)), parse_message(1, 0, letter(dead_at_us=10)),
                        parse_message(2, 0, letter(dead_at_us=20))])
    assert [str(e.id) for e in latest(entries, 2)] == ["2:0", "0:0"]
    assert [str(e.id) for e in latest(entries, None)] == ["1:0", "2:0", "0:0"]


def test_short_errors_are_one_line() -> None:
    assert short("a\n  b") == "a b"
    assert short("x" * 100, 10) == "x" * 9 + "…" and len(short("x" * 100, 10)) == 10
