"""Rows of one sink batch that hold each other's unique values (consumers/db/sink.py `_swapped`,
unique_keys.release_values): the checker's seed 2213. A fake table checks its UNIQUE index row by
row, as InnoDB does, so no order of single-row writes applies a swap."""

from __future__ import annotations

import re
from typing import Any

import pymysql

from consumers.db.local_versions import Planned
from consumers.db.sink import DatabaseSink
from consumers.records import SourceRecord
from schemas.codec import encode


class FakeTable:
    """`uniq` (id PK, email UNIQUE): savepoints, the release UPDATE, and writes by primary key."""

    def __init__(self, rows: dict[int, str | None], email_not_null: bool = False) -> None:
        self.rows = dict(rows)
        self.not_null = email_not_null
        self.saved: dict[str, dict[int, str | None]] = {}
        self.statements: list[str] = []

    def set(self, pk: int, email: str | None) -> None:
        if email is None and self.not_null:
            raise pymysql.err.IntegrityError(1048, "Column 'email' cannot be null")
        if email is not None and any(e == email and k != pk for k, e in self.rows.items()):
            raise pymysql.err.IntegrityError(1062, f"Duplicate entry '{email}' for key 'by_email'")
        self.rows[pk] = email

    def execute(self, sql: str, params: Any = None) -> None:
        self.statements.append(sql)
        if m := re.fullmatch(r"SAVEPOINT (\w+)", sql):
            self.saved[m[1]] = dict(self.rows)
        elif m := re.fullmatch(r"ROLLBACK TO SAVEPOINT (\w+)", sql):
            self.rows = dict(self.saved[m[1]])
        elif sql.startswith("UPDATE `app`.`uniq` SET `email` = NULL WHERE `id` = %s"):
            self.set(params[0], None)
        else:
            raise AssertionError(sql)


class FakeIndexes:
    def get(self, cur: Any, db: str, table: str) -> list[tuple[str, ...]]:
        return [("email",)]


def plan(offset: int, pk: int, email: str) -> Planned:
    event = {"schema_version": 1, "kind": "change", "region": "eu", "origin": "eu", "server_id": 1,
             "gtid": f"1-1-{offset + 1}", "binlog_file": "binlog.000001", "binlog_pos": 100 + offset,
             "txn_id": f"1-1-{offset + 1}", "ts_us": 0, "db": "app", "table": "uniq", "txn_index": 0,
             "txn_last": True, "op": "update", "pk": {"id": pk}, "before": {"id": pk, "email": "old", "v": "x"},
             "after": {"id": pk, "email": email, "v": "x"},
             "types": {"id": "int", "email": "varchar(40)", "v": "varchar(40)"}}
    record = SourceRecord.from_message("cdcsync.eu.app.uniq", offset, offset, f"[{pk}]".encode(), encode(event))
    return Planned(record, record)


def sink_over(table: FakeTable) -> DatabaseSink:
    sink = DatabaseSink.__new__(DatabaseSink)
    sink._unique_indexes = FakeIndexes()  # type: ignore[assignment]

    def write(cur: FakeTable, plans: list[Planned]) -> None:   # updates by primary key, one row at a time
        for p in plans:
            cur.set(p.write.event.pk["id"], p.write.event.after["email"])  # type: ignore[union-attr]

    sink._write = write  # type: ignore[method-assign]
    return sink


def test_two_rows_that_swapped_their_unique_values_are_both_applied() -> None:
    """ap held id0=c@ and id4=a@; eu's winning versions are id0=a@ and id4=c@, in one batch."""
    table = FakeTable({0: "c@example.com", 4: "a@example.com"})
    letters = sink_over(table)._apply_isolated(table, [plan(0, 4, "c@example.com"), plan(1, 0, "a@example.com")])
    assert letters == []
    assert table.rows == {0: "a@example.com", 4: "c@example.com"}


def test_a_three_row_cycle_is_applied() -> None:
    table = FakeTable({1: "a", 2: "b", 3: "c"})
    letters = sink_over(table)._apply_isolated(table, [plan(0, 1, "b"), plan(1, 2, "c"), plan(2, 3, "a")])
    assert letters == []
    assert table.rows == {1: "b", 2: "c", 3: "a"}


def test_a_swap_over_a_not_null_unique_column_is_dead_lettered_and_rolled_back() -> None:
    table = FakeTable({0: "c@example.com", 4: "a@example.com"}, email_not_null=True)
    letters = sink_over(table)._apply_isolated(table, [plan(0, 4, "c@example.com"), plan(1, 0, "a@example.com")])
    assert sorted(letter.record.offset for letter in letters) == [0, 1]
    assert all("1062" in letter.error for letter in letters)
    assert table.rows == {0: "c@example.com", 4: "a@example.com"}


def test_a_value_held_outside_the_batch_is_still_dead_lettered() -> None:
    """Two rows both claiming a value a third, unwritten row holds: releasing theirs does not help."""
    table = FakeTable({0: "x", 4: "y", 9: "held"})
    letters = sink_over(table)._apply_isolated(table, [plan(0, 4, "held"), plan(1, 0, "held")])
    assert len(letters) == 2
    assert table.rows == {0: "x", 4: "y", 9: "held"}


def test_without_a_cycle_no_value_is_released() -> None:
    """A value given up later in the batch is applied by reordering alone (no NULL step)."""
    table = FakeTable({4: "moved"})
    letters = sink_over(table)._apply_isolated(table, [plan(0, 1, "moved"), plan(1, 4, "other")])
    assert letters == []
    assert table.rows == {1: "moved", 4: "other"}
    assert not any("NULL" in s for s in table.statements)
