"""The database sink's clocked decisions against a real MariaDB with the clock triggers installed:
skip, apply, resolve (with its conflict-log row), tombstones, order independence, and the race
between a local write and the sink (forced with a held row lock)."""

from __future__ import annotations

import itertools
import json
import threading
import time
from pathlib import Path
from typing import Any

import pymysql
import pytest
from prometheus_client import CollectorRegistry

from cdcsync.tools.clock_init import init_region
from common import metadata_tables
from common.metadata_tables import CONFLICT_LOG, ROW_CLOCKS
from consumers.db.sink import DatabaseSink
from consumers.metrics import SinkMetrics
from consumers.records import SourceRecord
from schemas.codec import encode
from schemas.config import PipelineConfig
from tests.conftest import config_for_test, connect
from tests.support.kafka import CreatingTopicIds

pytestmark = pytest.mark.integration

_offsets = itertools.count(1)


class NoDeadLetters:
    def publish(self, letters) -> None:
        assert not letters, letters


def event(db: str, origin: str, op: str, key: int, v: str | None, counters: dict[str, int], hlc_us: int) -> SourceRecord:
    after = None if op == "delete" else {"id": key, "v": v}
    before = {"id": key, "v": "?"} if op != "insert" else None
    message = {"schema_version": 1, "kind": "change", "region": origin, "origin": origin, "server_id": 2,
               "gtid": None, "binlog_file": "binlog.000001", "binlog_pos": next(_offsets), "txn_id": "x",
               "ts_us": 0, "db": db, "table": "t", "txn_index": 0, "txn_last": True, "op": op, "pk": {"id": key},
               "before": before, "after": after, "types": {"id": "int", "v": "varchar(20)"},
               "vclock": {"counters": counters, "hlc_us": hlc_us}}
    return SourceRecord.from_message(f"pfx.{origin}.{db}.t", 0, next(_offsets), json.dumps([key]).encode(),
                                     encode(message))


@pytest.fixture
def setup(sandbox_config: PipelineConfig, unique: str, tmp_path: Path):
    db = f"cap_{unique}"
    config = config_for_test(sandbox_config, prefix="pfx", include=[f"{db}.*"], tmp=tmp_path)
    conns = {}
    for region in ("eu", "us"):
        conn = conns[region] = connect(config, region)
        with conn.cursor() as cur:
            cur.execute(f"CREATE DATABASE {db}")
            cur.execute(f"CREATE TABLE {db}.t (id INT PRIMARY KEY, v VARCHAR(20))")
        metadata_tables.ensure(conn, config.meta_db)
        init_region(config, region)
    sinks = []

    def sink(region: str = "eu") -> DatabaseSink:
        s = DatabaseSink(config, region, NoDeadLetters(), SinkMetrics(region, CollectorRegistry()),  # type: ignore[arg-type]
                         topic_ids=CreatingTopicIds(config.kafka_for(region)))
        sinks.append(s)
        return s

    try:
        yield config, db, conns, sink
    finally:
        for s in sinks:
            s.close()
        for conn in conns.values():
            with conn.cursor() as cur:
                cur.execute(f"DROP DATABASE {db}")
                cur.execute(f"DELETE FROM {config.meta_db}.{ROW_CLOCKS} WHERE db = %s", (db,))
                cur.execute(f"DELETE FROM {config.meta_db}.{CONFLICT_LOG} WHERE db = %s", (db,))
            conn.close()


def row(conn: pymysql.Connection, db: str, key: int) -> Any:
    with conn.cursor() as cur:
        cur.execute(f"SELECT v FROM {db}.t WHERE id = %s", (key,))
        found = cur.fetchone()
        return found[0] if found else None


def clock(config: PipelineConfig, conn: pymysql.Connection, db: str, key: int) -> tuple[dict, int, int, str] | None:
    with conn.cursor() as cur:
        cur.execute(f"SELECT counters, hlc_us, deleted, origin FROM {config.meta_db}.{ROW_CLOCKS} "
                    f"WHERE db = %s AND tbl = 't' AND pk = %s", (db, f"{len(str(key))}:{key}"))
        found = cur.fetchone()
        return (json.loads(found[0]), found[1], found[2], found[3]) if found else None


def conflicts(config: PipelineConfig, conn: pymysql.Connection, db: str) -> list[dict[str, Any]]:
    with conn.cursor(pymysql.cursors.DictCursor) as cur:
        cur.execute(f"SELECT * FROM {config.meta_db}.{CONFLICT_LOG} WHERE db = %s ORDER BY id", (db,))
        return list(cur.fetchall())


def local(conn: pymysql.Connection, *statements: str) -> None:
    with conn.cursor() as cur:
        for statement in statements:
            cur.execute(statement)


def test_newer_applies_older_skips_concurrent_resolves_and_is_logged(setup) -> None:
    config, db, conns, sink = setup
    eu, s = conns["eu"], sink()
    local(eu, f"INSERT INTO {db}.t VALUES (1, 'local')")
    (counters, hlc, deleted, origin) = clock(config, eu, db, 1)
    assert (counters, deleted, origin) == ({"eu": 1}, 0, "eu")

    # Newer (it counts eu's write): applied, with its clock.
    s.write_batch([event(db, "us", "update", 1, "newer", {"eu": 1, "us": 1}, hlc + 10)])
    assert row(eu, db, 1) == "newer" and clock(config, eu, db, 1)[:2] == ({"eu": 1, "us": 1}, hlc + 10)
    # Dominated and equal (a replay under another offset): skipped.
    s.write_batch([event(db, "us", "update", 1, "stale", {"eu": 1}, hlc + 20)])
    s.write_batch([event(db, "us", "update", 1, "replay", {"eu": 1, "us": 1}, hlc + 10)])
    assert row(eu, db, 1) == "newer"
    assert conflicts(config, eu, db) == []

    # Concurrent: a local write in eu and a remote one from us that does not count it.
    local(eu, f"UPDATE {db}.t SET v = 'eu-wins' WHERE id = 1")
    eu_clock = clock(config, eu, db, 1)
    assert eu_clock[0] == {"eu": 2, "us": 1}
    s.write_batch([event(db, "us", "update", 1, "us-loses", {"eu": 1, "us": 2}, eu_clock[1] - 1)])
    assert row(eu, db, 1) == "eu-wins"                      # later hlc wins under lww
    merged = clock(config, eu, db, 1)
    assert merged[:2] == ({"eu": 2, "us": 2}, eu_clock[1])
    (logged,) = conflicts(config, eu, db)
    assert (logged["region"], logged["strategy"], logged["winner"], logged["source_partition"]) == ("eu", "lww", "local", 0)
    assert json.loads(logged["local_version"])["values"] == {"id": 1, "v": "eu-wins"}
    assert json.loads(logged["remote_version"])["counters"] == {"eu": 1, "us": 2}
    assert json.loads(logged["result_version"])["counters"] == {"eu": 2, "us": 2}
    assert [v["values"]["v"] for v in json.loads(logged["losers"])] == ["us-loses"]
    assert logged["local_gtid"]                              # the region's GTID state when it decided
    assert s.metrics.conflicts.labels("eu", f"{db}.t", "lww")._value.get() == 1


def test_a_remote_winner_is_written_and_a_delete_leaves_a_tombstone(setup) -> None:
    config, db, conns, sink = setup
    eu, s = conns["eu"], sink()
    local(eu, f"INSERT INTO {db}.t VALUES (5, 'eu')")
    hlc = clock(config, eu, db, 5)[1]
    s.write_batch([event(db, "us", "insert", 5, "us", {"us": 1}, hlc + 1000)])   # insert-insert, us later
    assert row(eu, db, 5) == "us"
    assert conflicts(config, eu, db)[0]["winner"] == "remote"

    s.write_batch([event(db, "us", "delete", 5, None, {"eu": 1, "us": 2}, hlc + 2000)])
    assert row(eu, db, 5) is None
    assert clock(config, eu, db, 5)[:3] == ({"eu": 1, "us": 2}, hlc + 2000, 1)
    # A late update that never saw the delete (concurrent, older): the tombstone keeps the row gone.
    s.write_batch([event(db, "us", "update", 5, "zombie", {"eu": 1, "us": 1, "ap": 1}, hlc + 1500)])
    assert row(eu, db, 5) is None
    assert clock(config, eu, db, 5)[:3] == ({"ap": 1, "eu": 1, "us": 2}, hlc + 2000, 1)
    # A delete of a row this region never had still leaves its tombstone.
    s.write_batch([event(db, "us", "delete", 6, None, {"us": 3}, hlc)])
    assert clock(config, eu, db, 6)[2] == 1


def test_same_concurrent_versions_in_any_order_give_the_same_row(setup) -> None:
    config, db, conns, sink = setup
    versions = [("eu", "update", "a", {"eu": 2, "us": 1}, 1_000_300),
                ("ap", "delete", None, {"eu": 1, "us": 1, "ap": 1}, 1_000_250),
                ("ap", "insert", "c", {"eu": 1, "us": 1, "ap": 2}, 1_000_350)]
    results = set()
    for order in itertools.permutations(versions):
        with conns["us"].cursor() as cur:
            cur.execute(f"DELETE FROM {config.meta_db}.{ROW_CLOCKS} WHERE db = %s", (db,))
            cur.execute(f"SET @cdcsync_applying = 1")
            cur.execute(f"REPLACE INTO {db}.t VALUES (9, 'base')")
            cur.execute(f"SET @cdcsync_applying = NULL")
        s = sink("us")
        base = event(db, "eu", "update", 9, "base", {"eu": 1, "us": 1}, 1_000_000)
        s.write_batch([base])
        for origin, op, v, counters, hlc in order:
            s.write_batch([event(db, origin, op, 9, v, counters, hlc)])
        results.add((row(conns["us"], db, 9), json.dumps(clock(config, conns["us"], db, 9))))
    assert results == {("c", json.dumps([{"ap": 2, "eu": 2, "us": 1}, 1_000_350, 0, "ap"]))}


def test_race_local_write_holding_the_row_lock_is_counted_by_the_sink(setup) -> None:
    """A local transaction has updated row k and holds its lock while the sink is about to apply a
    remote version that does not count that write. The sink must wait for the lock and then see the
    write's clock: a conflict, resolved as in every other region, not a blind apply."""
    config, db, conns, sink = setup
    eu = conns["eu"]
    local(eu, f"INSERT INTO {db}.t VALUES (7, 'v0')")
    base = clock(config, eu, db, 7)
    s = sink()
    s.write_batch([event(db, "us", "update", 7, "warm", {"eu": 1, "us": 1}, base[1] + 1)])   # connects, warms caches

    writer = connect(config, "eu")
    writer.autocommit(False)
    with writer.cursor() as cur:
        cur.execute(f"UPDATE {db}.t SET v = 'local-B' WHERE id = 7")     # holds the row lock, uncommitted
    # Remote W_A counts the state before B and has the later timestamp: with a clock read before
    # B commits it would look newer and be applied over B.
    remote = event(db, "us", "update", 7, "remote-A", {"eu": 1, "us": 2}, time.time_ns() // 1000 + 10_000_000)
    done = threading.Event()
    thread = threading.Thread(target=lambda: (s.write_batch([remote]), done.set()))
    thread.start()
    try:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:           # the sink is blocked on B's row lock
            with eu.cursor() as cur:
                cur.execute("SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE INFO LIKE %s",
                            (f"SELECT % FROM `{db}`.`t` WHERE % FOR UPDATE",))
                if cur.fetchone()[0]:
                    break
            time.sleep(0.02)
        else:
            pytest.fail("the sink never waited for the local transaction's row lock")
        time.sleep(0.3)
        assert not done.is_set()
        writer.commit()
    finally:
        writer.rollback()
        writer.close()
        thread.join(20)
    assert done.is_set()
    final = clock(config, eu, db, 7)
    assert final[0] == {"eu": 2, "us": 2}                  # merged: B was counted, not overwritten blindly
    (logged,) = conflicts(config, eu, db)
    assert json.loads(logged["local_version"])["values"] == {"id": 7, "v": "local-B"}
    assert logged["winner"] == "remote" and row(eu, db, 7) == "remote-A"
