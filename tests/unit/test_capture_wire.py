"""The producer's output is pinned: the same binlog events give the same Kafka messages, byte for byte.

`Capture` is fed library events built over synthetic rows-event bytes (no server): local clocked
inserts and updates, a key change, an unclocked table's delete, and a transaction the database
sink applied (apply marker). Every produced (topic, key, value, headers) must equal
`capture_wire_golden.json`, which was written by this module run as a script against the code of
main at 7bfe106, before the producer's speed work (issue 13):

    PYTHONPATH=<a checkout of that commit> .venv/bin/python tests/unit/test_capture_wire.py > golden.json

A change to the wire format is a contract change (docs/reference/contract.md), never a side
effect of making capture faster.
"""

from __future__ import annotations

import datetime
import json
import sys
from decimal import Decimal
from pathlib import Path
from typing import Any

if __name__ == "__main__":   # run as a script: the checkout on PYTHONPATH, then this repo's root for `tests`
    sys.path.append(str(Path(__file__).resolve().parents[2]))

from prometheus_client import CollectorRegistry
from pymysqlreplication.column import Column
from pymysqlreplication.constants import FIELD_TYPE as F
from pymysqlreplication.event import MariadbGtidEvent, XidEvent
from pymysqlreplication.row_event import TableMapEvent, UpdateRowsEvent, WriteRowsEvent, DeleteRowsEvent
from pymysqlreplication.table import Table

from producers.binlog import fixes as binlog_fixes
from producers.capture import Capture
from producers.metrics import ProducerMetrics
from producers.publisher import AckTracker
from schemas.config import parse_config
from schemas.row_clock_key import key_hash
from tests.unit.test_fast_rows import column, pack_decimal, shell_event

binlog_fixes.install()
GOLDEN = Path(__file__).with_name("capture_wire_golden.json")
META = "cdcsync_meta"


# -- rows-event bytes ----------------------------------------------------------------------------
def _text(value: str, size: int) -> bytes:
    return len(value.encode()).to_bytes(size, "little") + value.encode()


def clock_table() -> list[Column]:
    """`<meta_db>.row_clocks` as its table map describes it (common/metadata_tables.py)."""
    return [column("db", F.VARCHAR, max_length=256, charset="utf8mb4_bin"),
            column("tbl", F.VARCHAR, max_length=256, charset="utf8mb4_bin"),
            column("pk_hash", F.STRING, max_length=32, charset="binary"),
            column("pk", F.BLOB, length_size=2, charset="utf8mb4_bin"),
            column("counters", F.BLOB, length_size=2, charset="utf8mb4_bin"),
            column("hlc_us", F.LONGLONG), column("deleted", F.TINY),
            column("origin", F.VARCHAR, max_length=128, charset="utf8mb4"),
            column("heads", F.BLOB, length_size=3, charset="utf8mb4_bin"),
            column("updated_at", F.TIMESTAMP2, fsp=6)]


def clock_row_bytes(key: str, counters: str, hlc_us: int, deleted: int, heads: str | None, *, db: str = "shop",
                    table: str = "t") -> bytes:
    """One row_clocks row image as the binlog holds it (the trigger's write)."""
    pk_hash = key_hash(key).rstrip(b"\0")   # the binlog drops BINARY's trailing zero bytes
    body = (_text(db, 2) + _text(table, 2) + bytes([len(pk_hash)]) + pk_hash + _text(key, 2) + _text(counters, 2)
            + hlc_us.to_bytes(8, "little", signed=True) + bytes([deleted]) + _text("eu", 1)
            + (_text(heads, 3) if heads is not None else b"") + (1_700_000_000).to_bytes(4, "big") + b"\x01\x02\x03")
    nulls = 0x100 if heads is None else 0   # heads is the ninth column
    return nulls.to_bytes(2, "little") + body


ORDERS = [column("id", F.LONG), column("v", F.VARCHAR, max_length=160, charset="utf8mb4"),
          column("amount", F.NEWDECIMAL, precision=12, decimals=2), column("at", F.DATETIME2, fsp=6)]
MARKER = [column("source_topic", F.VARCHAR, max_length=996, charset="utf8mb4"), column("source_partition", F.LONG),
          column("origin", F.VARCHAR, max_length=128, charset="utf8mb4"), column("applied_offset", F.LONGLONG)]


def order(id_: int, v: str | None, amount: str, at: datetime.datetime) -> bytes:
    packed = (1 << 39 | (at.year * 13 + at.month) << 22 | at.day << 17 | at.hour << 12 | at.minute << 6
              | at.second)
    body = (id_.to_bytes(4, "little", signed=True) + (_text(v, 1) if v is not None else b"")
            + pack_decimal(Decimal(amount), 12, 2) + packed.to_bytes(5, "big") + at.microsecond.to_bytes(3, "big"))
    return bytes([0 if v is not None else 2]) + body


def marker(origin: str) -> bytes:
    return b"\0" + _text("cdcsync.us.shop.orders", 2) + (0).to_bytes(4, "little") + _text(origin, 1) + \
        (41).to_bytes(8, "little")


def clock(key: int, eu: int, *, deleted: int = 0, us: int = 0) -> bytes:
    return clock_row_bytes(f"{len(str(key))}:{key}", json.dumps({"eu": eu, "us": us}), 1_000 + eu + us, deleted,
                           None, table="orders")


# -- library events ------------------------------------------------------------------------------
class Packet:
    server_id = 1


def gtid(seq: int) -> MariadbGtidEvent:
    event = object.__new__(MariadbGtidEvent)
    event.__dict__.update(gtid=f"0-1-{seq}", timestamp=1_700_000_000 + seq, packet=Packet())
    return event


def xid() -> XidEvent:
    return object.__new__(XidEvent)


class Metadata:
    def __init__(self, pk: list[int]) -> None:
        self.simple_primary_key_list, self.primary_keys_with_prefix = pk, {}


def table_map(table_id: int, columns: list[Column], pk: list[int]) -> TableMapEvent:
    event = object.__new__(TableMapEvent)
    event.__dict__.update(table_id=table_id, columns=columns, optional_metadata=Metadata(pk))
    return event


def rows(cls: type, table_id: int, schema: str, table: str, columns: list[Column], body: bytes) -> Any:
    event = shell_event(cls, columns, body)
    event.__dict__.update(table_id=table_id, schema=schema, table=table,
                          table_map={table_id: Table(table_id, schema, table, columns)})
    return event


class Stream:
    log_file = "binlog.000001"

    def __init__(self) -> None:
        self.log_pos = 4
        self.auto_position: str | None = None


class Publisher:
    def __init__(self) -> None:
        self.tracker = AckTracker()
        self.sent: list[list[Any]] = []

    def produce(self, txn: Any, topic: str, key: bytes, value: bytes, headers: list[tuple[str, bytes]]) -> None:
        txn.pending += 1
        self.sent.append([topic, key.decode(), value.decode(), [[k, v.decode()] for k, v in headers]])


class Topics:
    def ensure(self, *topics: str) -> None:
        pass


class Catalog:
    def __init__(self) -> None:
        self.asked: list[tuple[str, str]] = []

    def lookup(self, db: str, table: str) -> frozenset[str]:
        self.asked.append((db, table))
        return frozenset()

    def invalidate(self) -> None:
        pass

    def load_weights(self, collations: dict[str, str]) -> None:
        pass


def produced(catalog: Catalog | None = None) -> list[list[Any]]:
    """Every message the capture produces for the transactions below, in order."""
    config = parse_config({"meta_db": META, "regions": {"eu": {"server_id": 1}, "us": {"server_id": 2}}})
    publisher = Publisher()
    catalog = catalog or Catalog()
    from schemas.position import BinlogPosition
    capture = Capture(config=config, region="eu", publisher=publisher, topics=Topics(), catalog=catalog,  # type: ignore[arg-type]
                      start=BinlogPosition("0-1-1", "binlog.000001", 4), metrics=ProducerMetrics(CollectorRegistry()),
                      epoch="e1")
    at = datetime.datetime(2024, 5, 17, 10, 11, 12, 345678)
    clocks, unclocked = clock_table(), [column("k", F.LONGLONG), column("note", F.BLOB, length_size=2, charset="utf8mb4")]
    events = [
        # a local clocked insert of two rows, then their clock rows
        gtid(2), table_map(10, ORDERS, [0]), rows(WriteRowsEvent, 10, "shop", "orders", ORDERS,
                                                  order(1, "a😀", "12.50", at) + order(2, None, "-0.07", at)),
        table_map(11, clocks, [0, 1, 2]), rows(WriteRowsEvent, 11, META, "row_clocks", clocks, clock(1, 1) + clock(2, 1)),
        xid(),
        # a local update, and a key change 2 -> 3 (a delete and an insert, each with its clock row)
        gtid(3), rows(UpdateRowsEvent, 10, "shop", "orders", ORDERS,
                      order(1, "a😀", "12.50", at) + order(1, "b", "13.50", at)),
        rows(UpdateRowsEvent, 11, META, "row_clocks", clocks, clock(1, 1) + clock(1, 2)),
        rows(UpdateRowsEvent, 10, "shop", "orders", ORDERS, order(2, None, "-0.07", at) + order(3, "c", "0.00", at)),
        rows(UpdateRowsEvent, 11, META, "row_clocks", clocks, clock(2, 1) + clock(2, 2, deleted=1)),
        rows(WriteRowsEvent, 11, META, "row_clocks", clocks, clock(3, 3)),
        xid(),
        # a table without clock triggers
        gtid(4), table_map(12, unclocked, [0]),
        rows(DeleteRowsEvent, 12, "shop", "notes", unclocked, b"\0" + (7).to_bytes(8, "little") + _text("n", 2)),
        xid(),
        # the database sink's apply of a change from us: the marker first, its clock rows after
        gtid(5), table_map(13, MARKER, [0, 1]), rows(UpdateRowsEvent, 13, META, "apply_marker", MARKER,
                                                     marker("us") + marker("us")),
        rows(UpdateRowsEvent, 10, "shop", "orders", ORDERS, order(1, "b", "13.50", at) + order(1, "us", "1.00", at)),
        rows(UpdateRowsEvent, 11, META, "row_clocks", clocks, clock(1, 2) + clock(1, 2, us=1)),
        xid(),
    ]
    stream = Stream()
    for event in events:
        stream.log_pos += 100
        capture.handle(event, stream)
    assert not capture.in_transaction and stream.auto_position == "0-1-5"
    return publisher.sent


def test_capture_output_equals_the_pinned_messages() -> None:
    catalog = Catalog()
    sent = produced(catalog)
    # Only a table with a TEXT-like column may have JSON columns: the others need no catalog query.
    assert catalog.asked == [("shop", "notes")]
    golden = json.loads(GOLDEN.read_text())
    assert len(sent) == len(golden) == 7
    for got, want in zip(sent, golden):
        assert got == want


if __name__ == "__main__":
    print(json.dumps(produced(), indent=1, ensure_ascii=False))
