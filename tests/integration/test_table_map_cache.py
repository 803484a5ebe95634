"""producers/binlog/table_map_cache.py: a cached TABLE_MAP parse equals the library's own, and is reused.

Each test writes transactions to a table of its own, then reads their table maps back twice
with the same stream setup: once with the library's original `TableMapEvent.__init__`, once
with the cache installed, and compares what the two readers hold after every map.
"""

from __future__ import annotations

import itertools
import time
from typing import Any

import pytest
from pymysqlreplication.row_event import OptionalMetaData, TableMapEvent

from common.mysql import current_position
from producers.binlog import stream as binlog_stream, table_map_cache
from schemas.position import BinlogPosition
from tests.conftest import connect

pytestmark = pytest.mark.integration

_reader_ids = itertools.count(7101)
DDL = """CREATE TABLE t (
    a INT UNSIGNED NOT NULL, b VARCHAR(20) CHARACTER SET latin1 NOT NULL, c DECIMAL(10,3) NULL,
    d ENUM('x','y','z') NULL, e SET('p','q') NULL, f DATETIME(4) NULL, g BLOB NULL, h CHAR(3) CHARACTER SET ascii,
    PRIMARY KEY (b, a))"""


def _normal(value: Any) -> Any:
    """Attribute values in comparable form (the library's objects have no or a shallow __eq__)."""
    if isinstance(value, list):
        return [_normal(v) for v in value]
    if isinstance(value, OptionalMetaData):
        return {k: _normal(v) for k, v in vars(value).items()}
    if hasattr(value, "data") and not isinstance(value, (bytes, str)):  # Column, Table
        return {k: _normal(v) for k, v in value.data.items()}
    return value


_PER_EVENT = {"packet", "table_map", "_ctl_connection", "timestamp"}


def _state(event: TableMapEvent, stream: Any) -> dict[str, Any]:
    state = {k: _normal(v) for k, v in vars(event).items() if k not in _PER_EVENT}
    state["stream.table_map"] = _normal(stream.table_map[event.table_id])
    state["packet.read_bytes"] = event.packet.read_bytes
    return state


def _read_maps(sandbox_config, start: BinlogPosition, db: str, count: int,
               between=None) -> tuple[list[tuple[TableMapEvent, dict[str, Any]]], tuple[int, int]]:
    """The first `count` table maps of `db` from `start`; `between(i, stream)` runs after the i-th."""
    mysql = sandbox_config.region("eu").mysql
    stream = binlog_stream.open_stream(mysql, start, reader_server_id=next(_reader_ids), heartbeat_s=0.5)
    maps: list[tuple[TableMapEvent, dict[str, Any]]] = []
    deadline = time.monotonic() + 60
    try:
        for event in stream:
            if isinstance(event, TableMapEvent) and event.schema == db:
                maps.append((event, _state(event, stream)))
                if between is not None:
                    between(len(maps), stream)
                if len(maps) == count:
                    break
            assert time.monotonic() < deadline, f"only {len(maps)} of {count} table maps"
        return maps, table_map_cache.stats(stream)
    finally:
        stream.close()


def _write(sandbox_config, db: str, txns: int, flush_after: int | None = None) -> BinlogPosition:
    with connect(sandbox_config, "eu") as conn, conn.cursor() as cur:
        cur.execute(f"CREATE DATABASE {db}")
        cur.execute(f"USE {db}")
        cur.execute(DDL)
        start = current_position(conn, "mariadb")
        for i in range(txns):
            cur.execute("INSERT INTO t VALUES (%s, %s, 1.5, 'y', 'p,q', '2024-01-02 03:04:05.6789', %s, 'abc')",
                        (i, f"k{i}", bytes([i % 256])))
            if flush_after is not None and i == flush_after - 1:
                cur.execute("FLUSH BINARY LOGS")
    return start


def test_cached_maps_equal_the_library_parse_and_are_shared(sandbox_config, unique, monkeypatch) -> None:
    db = f"tmc_{unique}"
    start = _write(sandbox_config, db, 6)
    table_map_cache.install()
    with monkeypatch.context() as patch:
        patch.setattr(TableMapEvent, "__init__", table_map_cache._original_init)
        plain, plain_stats = _read_maps(sandbox_config, start, db, 6)
    cached, cached_stats = _read_maps(sandbox_config, start, db, 6)

    assert plain_stats == (0, 0)  # the original parse really ran
    assert cached_stats == (5, 1)
    assert [state for _, state in cached] == [state for _, state in plain]
    assert cached[0][1]["columns"][1]["name"] == "b" and cached[0][1]["optional_metadata"]["simple_primary_key_list"]
    first = cached[0][0]
    for event, _ in cached[1:]:
        assert event is not first and event.columns is first.columns and event.table_obj is first.table_obj
        assert event.packet is not first.packet
    assert [e.timestamp for e, _ in cached] == [e.timestamp for e, _ in plain]


def test_rotate_and_invalidate_start_over(sandbox_config, unique) -> None:
    db = f"tmc_{unique}"
    start = _write(sandbox_config, db, 6, flush_after=2)   # maps 1-2 in one binlog file, 3-6 in the next

    def between(i: int, stream: Any) -> None:
        if i == 4:
            table_map_cache.invalidate(stream)

    cached, stats = _read_maps(sandbox_config, start, db, 6, between)
    columns = [event.columns for event, _ in cached]
    assert stats == (3, 3)
    assert columns[1] is columns[0]
    assert columns[2] is not columns[1]   # the rotate emptied the cache
    assert columns[3] is columns[2]
    assert columns[4] is not columns[3]   # invalidate() emptied it
    assert columns[5] is columns[4]
    assert all(state == cached[0][1] | {"table_id": state["table_id"], "stream.table_map": state["stream.table_map"]}
               for _, state in cached)
