"""Pure parts of `cdcsync status`: partition lag, producer distance, topic matching, the JSON shape."""

from __future__ import annotations

from cdcsync.tools.status import GroupLag, RegionStatus, bytes_behind, transactions_behind
from common.group_lag import PartitionLag, matching_topics, partition_lag
from schemas.checkpoint import Checkpoint
from schemas.position import BinlogPosition
from schemas.topics import TopicNames


def test_partition_lag() -> None:
    assert partition_lag(10, 0, 10) == 0
    assert partition_lag(4, 0, 10) == 6
    assert partition_lag(None, 3, 10) == 7          # nothing committed: everything from the low watermark
    assert partition_lag(-1001, 0, 0) == 0
    assert partition_lag(2, 5, 10) == 5             # committed below a truncated log: from the low watermark
    assert partition_lag(12, 0, 10) == 0


def test_transactions_behind_per_domain() -> None:
    assert transactions_behind("1-1-10", "1-1-10") == 0
    assert transactions_behind("1-1-10", "1-1-13") == 3
    assert transactions_behind("1-1-10,2-2-5", "1-1-12,2-2-9") == 6
    assert transactions_behind("", "1-1-4") == 4     # a domain the checkpoint has not seen yet
    assert transactions_behind("1-1-10", "") == 0
    assert transactions_behind("3e11fa47-71ca-11e1-9e33-c80aa9429562:1-5", "3e11fa47:1-9") is None


def test_bytes_behind_only_within_one_file() -> None:
    cp = BinlogPosition("", "binlog.000002", 400)
    assert bytes_behind(cp, BinlogPosition("", "binlog.000002", 1000)) == 600
    assert bytes_behind(cp, BinlogPosition("", "binlog.000002", 400)) == 0
    assert bytes_behind(cp, BinlogPosition("", "binlog.000003", 4)) is None


def test_topics_of_a_subscription() -> None:
    names = TopicNames("tx")
    topics = ["tx.eu.app.t", "tx.eu.app.u", "tx.eu._schema", "tx.eu.dlq", "tx.us.app.t", "tx.eu.app.t.x", "tx.eux.a.b"]
    # the dead-letter and schema topics have one part after the region, so they are not change topics
    assert matching_topics(topics, [names.change_subscription("eu")]) == ["tx.eu.app.t", "tx.eu.app.u"]
    per_region = TopicNames("tx", "per_region")
    assert matching_topics(["tx.eu.changes", "tx.us.changes"], [per_region.change_subscription("eu")]) == \
        ["tx.eu.changes"]


def test_region_status_json() -> None:
    cp = Checkpoint(region="eu", server_id=1, gtid_state="1-1-10", binlog_file="binlog.000001", binlog_pos=500,
                    updated_at_us=1_000_000)
    status = RegionStatus("eu", checkpoint=cp, checkpoint_path="/c/eu.json",
                          server=BinlogPosition("1-1-12", "binlog.000001", 900), now_us=3_500_000,
                          groups=[GroupLag("p.eu.db", "db", (PartitionLag("p.us.app.t", 0, 4, 0, 10),
                                                             PartitionLag("p.us.app.t", 1, None, 0, 2))),
                                  GroupLag("p.eu.cache", "cache", error="kafka down")],
                          errors=["kafka down"])
    data = status.to_json()
    assert data["checkpoint"]["age_s"] == 2.5 and data["checkpoint"]["gtid_state"] == "1-1-10"
    assert data["server"] == {"gtid_state": "1-1-12", "binlog_file": "binlog.000001", "binlog_pos": 900}
    assert data["producer_behind"] == {"transactions": 2, "bytes": 400}
    db, cache = data["groups"]
    assert db["lag"] == 8 and [p["lag"] for p in db["partitions"]] == [6, 2] and db["partitions"][1]["committed"] is None
    assert cache["lag"] is None and cache["error"] == "kafka down"
    empty = RegionStatus("us", errors=["mysql: refused"]).to_json()
    assert empty["checkpoint"] is None and empty["producer_behind"] == {"transactions": None, "bytes": None}


def test_schema_wait_lines_one_per_table() -> None:
    from cdcsync.tools.status import schema_wait_lines
    from common.metadata_tables import SchemaWait

    waits = [SchemaWait("app.users", "eu", "p.eu.app.users", 0, 7, "unknown column phone", 1_000_000),
             SchemaWait("app.users", "eu", "p.eu.app.users", 2, 9, "unknown column phone", 3_000_000),
             SchemaWait("app.notes", "ap", "p.ap.app.notes", 1, 4, "1406 data too long: v", 5_000_000)]
    assert schema_wait_lines(waits, now_us=11_000_000) == [
        "waiting for schema: app.users for 10s, unknown column phone (from eu; held p.eu.app.users[0]@7, "
        "p.eu.app.users[2]@9); cdcsync schema diff",
        "waiting for schema: app.notes for 6s, 1406 data too long: v (from ap; held p.ap.app.notes[1]@4); "
        "cdcsync schema diff"]
