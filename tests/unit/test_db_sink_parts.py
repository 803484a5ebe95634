"""Pure parts of the database sink: SQL dialects, replay detection, per-key folding, origin runs."""

from __future__ import annotations

import random

import pymysql
import pytest

from common.retry import RetryPolicy, is_transient
from consumers.db import dialect as db_dialect
from consumers.db.sink import _last_per_key, _plan, poison_kind
from consumers.records import SourceRecord, source_region
from schemas.codec import encode
from schemas.config import parse_config


def record(offset: int, op: str = "update", pk: int = 1, v: str = "x", gtid: str | None = "1-1-10",
           index: int = 0, origin: str = "eu", topic: str = "cdcsync.eu.app.t") -> SourceRecord:
    after = None if op == "delete" else {"id": pk, "v": v}
    before = {"id": pk, "v": "old"} if op in ("update", "delete") else None
    event = {"schema_version": 1, "kind": "change", "region": "eu", "origin": origin, "server_id": 1,
             "gtid": gtid, "binlog_file": "binlog.000001", "binlog_pos": 100 + offset, "txn_id": gtid or "s",
             "ts_us": 0, "db": "app", "table": "t", "txn_index": index, "txn_last": True, "op": op,
             "pk": {"id": pk}, "before": before, "after": after, "types": {"id": "int", "v": "varchar(10)"}}
    return SourceRecord.from_message(topic, 0, offset, f"[{pk}]".encode(), encode(event))


def test_mariadb_and_mysql_upserts() -> None:
    maria = db_dialect.upsert("mariadb", "app", "t", ["id", "v"], 2)
    assert maria == ("INSERT INTO `app`.`t` (`id`, `v`) VALUES (%s, %s), (%s, %s) "
                     "ON DUPLICATE KEY UPDATE `id` = VALUES(`id`), `v` = VALUES(`v`)")
    mysql = db_dialect.upsert("mysql", "app", "t", ["id", "v"], 1)
    assert mysql == ("INSERT INTO `app`.`t` (`id`, `v`) VALUES (%s, %s) AS new "
                     "ON DUPLICATE KEY UPDATE `id` = new.`id`, `v` = new.`v`")


def test_present_keys_and_plain_statements() -> None:
    assert db_dialect.present_keys("mariadb", "a", "t", ["id"], 2) == (
        "WITH v(i, k0) AS (VALUES (%s, %s), (%s, %s)) SELECT v.i FROM v JOIN `a`.`t` t ON t.`id` = v.k0 FOR UPDATE")
    assert "VALUES ROW(%s, %s, %s)" in db_dialect.present_keys("mysql", "a", "t", ["b", "c"], 1)
    assert db_dialect.insert("a", "t", ["id", "v"], 1) == "INSERT INTO `a`.`t` (`id`, `v`) VALUES (%s, %s)"
    assert db_dialect.update_by_key("a", "t", ["id", "v"], ["id"]) == \
        "UPDATE `a`.`t` SET `id` = %s, `v` = %s WHERE `id` = %s"


def test_batched_deletes() -> None:
    assert db_dialect.delete("app", "t", ["id"], 3) == "DELETE FROM `app`.`t` WHERE `id` IN (%s, %s, %s)"
    assert db_dialect.delete("a", "t`x", ["b", "a"], 2) == \
        "DELETE FROM `a`.`t``x` WHERE (`b`, `a`) IN ((%s, %s), (%s, %s))"


def test_last_change_per_key_wins_in_order() -> None:
    recs = [record(1, "insert", pk=1, v="a"), record(2, "insert", pk=2, v="b"), record(3, "update", pk=1, v="c"),
            record(4, "delete", pk=2)]
    final = _last_per_key(recs)
    assert [(r.event.pk["id"], r.event.op.value) for r in final] == [(1, "update"), (2, "delete")]
    deletes, upserts = _plan(final)
    assert deletes == {("app", "t", ("id",)): [[2]]}
    assert upserts == {("app", "t", ("id", "v"), ("id",)): [[1, "c"]]}


def test_topology_decides_what_a_sink_accepts() -> None:
    mesh = parse_config({"regions": {"eu": {"server_id": 1}, "us": {"server_id": 2}, "ap": {"server_id": 3}}})
    assert mesh.accepts("us", "eu", "eu") and not mesh.accepts("us", "eu", "ap")
    assert not mesh.accepts("us", "eu", "us")
    star = parse_config({"topology": {"mode": "star", "hub": "eu"},
                         "regions": {"eu": {"server_id": 1}, "us": {"server_id": 2}, "ap": {"server_id": 3}}})
    assert star.sources_of("us") == ("eu",) and star.sources_of("eu") == ("us", "ap")
    assert star.accepts("us", "eu", "ap") and star.accepts("us", "eu", "eu") and not star.accepts("us", "eu", "us")
    assert star.accepts("eu", "us", "us") and not star.accepts("eu", "us", "ap")
    assert source_region("cdcsync.us.app.t", "cdcsync") == "us"


def test_poison_classification() -> None:
    assert poison_kind(pymysql.err.ProgrammingError(1146, "no table")) == "missing_table"
    assert poison_kind(pymysql.err.OperationalError(1054, "no column")) == "missing_column"
    assert poison_kind(pymysql.err.IntegrityError(1062, "dup")) == "constraint"
    assert poison_kind(pymysql.err.OperationalError(1213, "deadlock")) is None
    assert is_transient(pymysql.err.OperationalError(1213, "deadlock"))
    assert is_transient(pymysql.err.OperationalError(2013, "lost"))
    assert not is_transient(pymysql.err.ProgrammingError(1146, "no table"))


def test_retry_backs_off_with_jitter_then_gives_up() -> None:
    slept: list[float] = []
    policy = RetryPolicy(attempts=4, base_ms=100, max_ms=250, sleep=slept.append, rng=random.Random(1))
    calls = []

    def flaky() -> str:
        calls.append(1)
        if len(calls) < 3:
            raise pymysql.err.OperationalError(2013, "lost")
        return "ok"

    assert policy.run(flaky) == "ok" and len(slept) == 2
    assert 0 <= slept[0] <= 0.1 and 0 <= slept[1] <= 0.2
    with pytest.raises(pymysql.err.OperationalError):
        policy.run(lambda: (_ for _ in ()).throw(pymysql.err.OperationalError(1205, "lock wait")))
    assert all(d <= 0.25 for d in (policy.delay(a) for a in range(10)))
    with pytest.raises(pymysql.err.ProgrammingError):   # not transient: no retry at all
        policy.run(lambda: (_ for _ in ()).throw(pymysql.err.ProgrammingError(1146, "x")))


def test_runs_group_into_transactions_per_origin_keeping_partition_order() -> None:
    from consumers.db.sink import _Run, transactions

    a1, b1, a2 = _Run("t", 0, "us"), _Run("t", 0, "ap"), _Run("t", 0, "us")   # partition 0: us, ap, us
    c1 = _Run("t", 1, "us")
    d1 = _Run("u", 0, "ap")
    groups = transactions([a1, b1, a2, c1, d1])
    assert groups == [[a1, c1], [d1], [b1], [a2]]
    mesh = [_Run("t", p, "us") for p in range(3)]
    assert transactions(mesh) == [mesh]        # a mesh batch is one transaction
