"""A region-priority row must end the same whatever order its concurrent versions reach a region.

Found by `make demo` (shop.customers, region-priority eu > us > ap; rows differed after
quiescence): a sink that stored a resolved version as (merged counters, max hlc_us, winner's
origin) and dropped its concurrent heads (`RowVersion.siblings`) read it back, at the next
decision, as one write by the winner's region at the *loser's* later timestamp, so a newer write of
the winner's region (dominating the old winner, not the loser) lost the lww tie-break between two
versions of one region. docs/conflicts.md, `region-priority`, explains why the heads must be kept.

Versions of row 1 (priority eu > us > ap):
  E1 eu {eu:1} hlc 1000 -> E2 eu {eu:2} hlc 2000 (eu's write on top of E1);
  A1 ap {ap:1} hlc 3000, concurrent with both.
Heads after all three: {E2, A1}; eu wins: 'e2' in every region and in every order.
"""

from __future__ import annotations

import itertools
import json
from pathlib import Path

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
VERSIONS = {"E1": ("eu", "insert", "e1", {"eu": 1}, 1000),
            "E2": ("eu", "update", "e2", {"eu": 2}, 2000),
            "A1": ("ap", "insert", "a1", {"ap": 1}, 3000)}


class NoDeadLetters:
    def publish(self, letters) -> None:
        assert not letters, letters


def event(db: str, name: str) -> SourceRecord:
    origin, op, v, counters, hlc_us = VERSIONS[name]
    message = {"schema_version": 1, "kind": "change", "region": origin, "origin": origin, "server_id": 2,
               "gtid": None, "binlog_file": "binlog.000001", "binlog_pos": next(_offsets), "txn_id": name,
               "ts_us": 0, "db": db, "table": "t", "txn_index": 0, "txn_last": True, "op": op, "pk": {"id": 1},
               "before": None if op == "insert" else {"id": 1, "v": "?"}, "after": {"id": 1, "v": v},
               "types": {"id": "int", "v": "varchar(20)"}, "vclock": {"counters": counters, "hlc_us": hlc_us}}
    return SourceRecord.from_message(f"pfx.{origin}.{db}.t", 0, next(_offsets), b"[1]", encode(message))


@pytest.fixture
def us_sink(sandbox_config: PipelineConfig, unique: str, tmp_path: Path):
    db = f"rp_{unique}"
    config = config_for_test(sandbox_config, prefix="pfx", include=[f"{db}.*"], tmp=tmp_path,
                             top={"tables": {f"{db}.t": {"conflict_strategy": "region-priority",
                                                         "region_priority": ["eu", "us", "ap"]}}})
    conn = connect(config, "us")
    with conn.cursor() as cur:
        cur.execute(f"CREATE DATABASE {db}")
        cur.execute(f"CREATE TABLE {db}.t (id INT PRIMARY KEY, v VARCHAR(20))")
    metadata_tables.ensure(conn, config.meta_db)
    init_region(config, "us")
    try:
        yield config, db, conn
    finally:
        with conn.cursor() as cur:
            cur.execute(f"DROP DATABASE {db}")
            cur.execute(f"DELETE FROM {config.meta_db}.{ROW_CLOCKS} WHERE db = %s", (db,))
            cur.execute(f"DELETE FROM {config.meta_db}.{CONFLICT_LOG} WHERE db = %s", (db,))
        conn.close()


def deliver(config: PipelineConfig, db: str, conn: pymysql.Connection, order: tuple[str, ...]) -> str | None:
    with conn.cursor() as cur:
        cur.execute(f"DELETE FROM {config.meta_db}.{ROW_CLOCKS} WHERE db = %s", (db,))
        cur.execute(f"DELETE FROM {db}.t")
    sink = DatabaseSink(config, "us", NoDeadLetters(), SinkMetrics("us", CollectorRegistry()),  # type: ignore[arg-type]
                        topic_ids=CreatingTopicIds(config.kafka_for("us")))
    try:
        for name in order:
            sink.write_batch([event(db, name)])
    finally:
        sink.close()
    with conn.cursor() as cur:
        cur.execute(f"SELECT v FROM {db}.t WHERE id = 1")
        found = cur.fetchone()
    return found[0] if found else None


def test_region_priority_result_is_the_same_in_every_delivery_order(us_sink) -> None:
    config, db, conn = us_sink
    results = {order: deliver(config, db, conn, order)
               for order in itertools.permutations(VERSIONS) if order.index("E1") < order.index("E2")}
    assert results == dict.fromkeys(results, "e2"), json.dumps({" ".join(k): v for k, v in results.items()})
