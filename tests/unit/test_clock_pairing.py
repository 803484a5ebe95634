"""producers/clock_matching.py: a transaction's clock rows pair with its row changes exactly, or the
producer stops. Rows are given as the binlog library decodes them."""

from __future__ import annotations

from typing import Any

import pytest

from producers.clock_matching import ClockPairingError, ClockRows
from schemas.row_clock_key import key_hash

TYPES = {"id": "int", "v": "varchar"}


def change(op: str, key: int, db: str = "shop", table: str = "t") -> dict[str, Any]:
    return {"kind": "change", "db": db, "table": table, "op": op, "pk": {"id": key}, "types": TYPES,
            "vclock": None, "heads": None}


def clock(key: int, eu: int, *, deleted: int = 0, db: str = "shop", table: str = "t",
          before: dict[str, Any] | None = None) -> dict[str, Any]:
    text = f"{len(str(key))}:{key}"
    image = {"db": db, "tbl": table, "pk": text, "pk_hash": key_hash(text), "counters": f'{{"eu": {eu}}}',
             "hlc_us": 1000 + eu, "deleted": deleted, "heads": None}
    return {"values": image} if before is None else {"before_values": before, "after_values": image}


def build(*steps: Any) -> tuple[ClockRows, list[dict[str, Any]]]:
    """Steps in binlog order: a change message (dict with `kind`) or a list of clock rows (one event)."""
    rows, messages = ClockRows(), []
    for step in steps:
        if isinstance(step, list):
            rows.add(step, len(messages))
        else:
            messages.append(step)
    return rows, messages


def attach(rows: ClockRows, messages: list[dict[str, Any]], applied: bool = False) -> None:
    rows.attach(messages, applied=applied, published=lambda db, table: table != "unpublished")


def eu(message: dict[str, Any]) -> int | None:
    return None if message["vclock"] is None else message["vclock"]["counters"]["eu"]


def test_each_change_gets_the_clock_row_written_right_after_it() -> None:
    rows, messages = build(change("insert", 1), [clock(1, 1)], change("update", 1), [clock(1, 2)],
                           change("update", 2), [clock(2, 5)], change("delete", 1), [clock(1, 3, deleted=1)])
    attach(rows, messages)
    assert [eu(m) for m in messages] == [1, 2, 5, 3]


def test_a_multi_row_event_then_its_clock_event_pairs_per_key() -> None:
    rows, messages = build(change("update", 1), change("update", 2), [clock(2, 7), clock(1, 4)])
    attach(rows, messages)
    assert [eu(m) for m in messages] == [4, 7]


def test_a_key_change_pairs_the_old_keys_tombstone_and_the_new_keys_clock() -> None:
    # One Update_rows row 1 -> 2 is published as delete(1) + insert(2); the trigger writes both clocks.
    rows, messages = build(change("delete", 1), change("insert", 2), [clock(1, 2, deleted=1)], [clock(2, 3)])
    attach(rows, messages)
    assert [eu(m) for m in messages] == [2, 3]


LOCAL_MISMATCHES = [
    # a no-op UPDATE under a stale trigger: a clock row, no row event
    (([clock(1, 1)],), "a clock row with no row change"),
    # a no-op, then a real update of the same row in one transaction
    (([clock(1, 1)], change("update", 1), [clock(1, 2)]), "a clock row with no row change"),
    # a multi-row UPDATE where row 2 already held the value
    ((change("update", 1), [clock(1, 1)], [clock(2, 1)]), "a clock row with no row change"),
    # two clock rows after one change (a hand write to row_clocks in the transaction)
    ((change("update", 1), [clock(1, 1), clock(1, 2)]), "a clock row with no row change"),
    # a change the trigger did not see (a column added after init)
    ((change("update", 1), change("update", 2), [clock(2, 1)]), "a row change (update) with no clock row"),
    # the last change left without its clock
    ((change("update", 1), [clock(1, 1)], change("update", 1)), "a row change (update) with no clock row"),
    # a delete followed by a live clock, an update followed by a tombstone
    ((change("delete", 1), [clock(1, 1)]), "followed by a clock row with deleted = 0"),
    ((change("update", 1), [clock(1, 1, deleted=1)]), "followed by a clock row with deleted = 1"),
    # a key change whose old key got no tombstone
    ((change("delete", 1), change("insert", 2), [clock(2, 3)]), "a row change (delete) with no clock row"),
]


@pytest.mark.parametrize("steps, problem", LOCAL_MISMATCHES)
def test_every_local_mismatch_stops_with_the_key_named(steps, problem: str) -> None:
    rows, messages = build(*steps)
    with pytest.raises(ClockPairingError, match="likely cause") as raised:
        attach(rows, messages)
    assert problem in str(raised.value)
    assert raised.value.db == "shop" and raised.value.table == "t" and raised.value.key in ("1:1", "1:2")
    assert "cdcsync init" in raised.value.cause or "by hand" in raised.value.cause
    assert all(m["vclock"] is None for m in messages)    # nothing half-attached is left to publish


def test_the_sinks_transactions_may_hold_clock_only_rows_and_clockless_changes() -> None:
    # Applied: key 1's data write changed nothing (clock only), key 2 pairs, key 3 came without a clock.
    rows, messages = build(change("update", 2), change("insert", 3), [clock(1, 4), clock(2, 6)])
    attach(rows, messages, applied=True)
    assert [eu(m) for m in messages] == [6, None]


def test_the_sinks_transactions_still_refuse_a_mismatched_tombstone() -> None:
    rows, messages = build(change("update", 1), [clock(1, 1, deleted=1)])
    with pytest.raises(ClockPairingError):
        attach(rows, messages, applied=True)


def test_tables_without_clock_rows_and_unpublished_tables_are_left_out() -> None:
    rows, messages = build(change("update", 1, table="plain"), [clock(9, 1, table="unpublished")],
                           change("update", 1), [clock(1, 2)])
    attach(rows, messages)
    assert [eu(m) for m in messages] == [None, 2]


def test_a_region_remove_rewrite_is_maintenance_not_a_version() -> None:
    before = {"db": "shop", "tbl": "t", "pk": "1:1", "counters": '{"eu": 1, "gone": 4}', "hlc_us": 1001,
              "deleted": 0, "heads": None}
    rows, messages = build([clock(1, 1, before=before)])
    attach(rows, messages)      # no change, no error: the stripped clock is not a new version
    assert not rows or messages == []
    ticked = dict(before, hlc_us=900)
    rows, messages = build([clock(1, 1, before=ticked)])
    with pytest.raises(ClockPairingError):
        attach(rows, messages)   # a different hlc_us: a version, which must pair


def test_ddl_and_truncate_messages_are_not_row_changes() -> None:
    truncate = {"kind": "change", "db": "shop", "table": "t", "op": "truncate", "pk": {}, "types": {},
                "vclock": None, "heads": None}
    rows, messages = build(truncate, {"kind": "ddl", "db": "shop", "table": "t"}, change("insert", 1), [clock(1, 1)])
    attach(rows, messages)
    assert eu(messages[2]) == 1 and truncate["vclock"] is None


# -- clock rows decoded by the producer's fast path -------------------------------------------
def test_clock_rows_from_fast_path_images_equal_the_library_rows() -> None:
    """The capture decodes row_clocks events with fast_rows (one per local write): the clock rows it
    pairs must be the ones the library's decoding gives, inserts, updates and maintenance rewrites."""
    from pymysqlreplication.row_event import UpdateRowsEvent, WriteRowsEvent

    from producers.binlog.fast_rows import RowImages
    from tests.unit.test_capture_wire import clock_row_bytes, clock_table
    from tests.unit.test_fast_rows import shell_event

    columns = clock_table()
    write = (clock_row_bytes("1:1", '{"eu": 1, "us": 0}', 1001, 0, None)
             + clock_row_bytes("2:42", '{"ap": 3, "eu": 2}', 1002, 1, '[{"counters": {"ap": 3}}]'))
    update = (clock_row_bytes("1:1", '{"eu": 1}', 1001, 0, None) + clock_row_bytes("1:1", '{"eu": 2}', 1003, 0, None)
              # `region remove` drops a counter, same hlc_us: maintenance, not a version
              + clock_row_bytes("1:7", '{"eu": 2, "us": 1}', 1005, 0, None)
              + clock_row_bytes("1:7", '{"eu": 2}', 1005, 0, None))
    for cls, body, count in ((WriteRowsEvent, write, 2), (UpdateRowsEvent, update, 1)):
        images = RowImages(columns)
        fast, library = ClockRows(), ClockRows()
        fast.add_images(images.images(shell_event(cls, columns, body)), 3)
        assert (images.fast_events, images.library_events) == (1, 0)
        library.add(shell_event(cls, columns, body).rows, 3)
        taken = fast.take()
        assert taken == library.take() and len(taken) == count
