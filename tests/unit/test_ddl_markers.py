"""A schema owner's DDL markers (consumers/db/schema_waits.py with consumers/db/ddl_apply.py): each
partition is held at its marker; the DDL is applied once, when every partition of the topic is held
there (counting the other members' wait rows), then every partition is released; a refused DDL
keeps them held and is reported once."""

from __future__ import annotations

import re
from typing import Any

from prometheus_client import CollectorRegistry

from consumers.db.ddl_apply import ddl_id
from consumers.db.schema_waits import SchemaWaits
from consumers.metrics import SinkMetrics
from consumers.records import SourceRecord, TopicPartition
from schemas.codec import encode
from schemas.events import DdlEvent

TOPIC = "p.eu.app.users"


class Database:
    """The two metadata tables the marker logic reads and writes, in memory."""

    def __init__(self) -> None:
        self.waits: dict[tuple[str, int], str] = {}   # (topic, partition) -> reason
        self.ddl: set[str] = set()


class Cursor:
    def __init__(self, db: Database) -> None:
        self.db = db
        self._result: list[tuple[Any, ...]] = []

    def __enter__(self) -> "Cursor":
        return self

    def __exit__(self, *exc: object) -> None:
        pass

    def execute(self, sql: str, params: Any = ()) -> None:
        if sql.startswith("REPLACE INTO"):
            self.db.waits[(params[0], params[1])] = params[6]
        elif sql.startswith("DELETE FROM"):
            for i in range(0, len(params), 2):
                self.db.waits.pop((params[i], params[i + 1]), None)
        elif "COUNT(*)" in sql:
            prefix = params[1].rstrip("%")
            self._result = [(sum(1 for (t, _), r in self.db.waits.items() if t == params[0] and r.startswith(prefix)),)]
        elif sql.startswith("UPDATE"):
            for key, reason in list(self.db.waits.items()):
                if key[0] == params[1] and reason.startswith(params[2].rstrip("%")):
                    self.db.waits[key] = params[0]
        elif "schema_ddl" in sql:
            self._result = [(1,)] if params[0] in self.db.ddl else []
        else:
            raise AssertionError(f"unexpected SQL {sql}")

    def fetchone(self) -> tuple[Any, ...] | None:
        return self._result[0] if self._result else None


class Connection:
    def __init__(self, db: Database) -> None:
        self.db = db

    def cursor(self) -> Cursor:
        return Cursor(self.db)

    def begin(self) -> None: ...
    def commit(self) -> None: ...
    def rollback(self) -> None: ...


class Applier:
    """DdlApplier's contract: `applied`, and `apply` returning None (done) or why it is refused."""

    def __init__(self, db: Database, refuse: str | None = None) -> None:
        self.db, self.refuse, self.calls = db, refuse, 0

    def applied(self, cur: Cursor, ddl: str) -> bool:
        return ddl in self.db.ddl

    def apply(self, event: DdlEvent) -> str | None:
        self.calls += 1
        if self.refuse is None:
            self.db.ddl.add(ddl_id(event))
        return self.refuse


def marker(partition: int, offset: int, partitions: int = 2) -> SourceRecord:
    message = {"kind": "ddl", "region": "eu", "origin": "eu", "server_id": 1, "gtid": "1-1-9", "binlog_file": "b",
               "binlog_pos": 9, "txn_id": "1-1-9", "ts_us": 0, "db": "app", "table": "users",
               "statement": "ALTER TABLE users ADD COLUMN phone INT", "partitions": partitions}
    return SourceRecord.from_message(TOPIC, partition, offset, b"app.users", encode(message))


def waits(db: Database, applier: Applier) -> tuple[SchemaWaits, CollectorRegistry]:
    registry = CollectorRegistry()
    found = SchemaWaits(region="us", meta_db="m", prefix="p", recheck_ms=60_000,
                        metrics=SinkMetrics("us", registry), connection=lambda: Connection(db),  # type: ignore[arg-type,return-value]
                        ddl=applier)  # type: ignore[arg-type]
    return found, registry


def test_applied_once_when_every_partition_reached_its_marker_then_all_released() -> None:
    db = Database()
    applier = Applier(db)
    sw, _ = waits(db, applier)
    sw.wait_ddl(marker(0, 7))
    assert sw.holds.recheck() == [] and applier.calls == 0          # partition 1 has not reached it
    assert db.waits[(TOPIC, 0)].startswith("ddl eu:1-1-9")
    sw.wait_ddl(marker(1, 4))
    assert sorted(sw.holds.recheck(), key=lambda tp: tp.partition) == [TopicPartition(TOPIC, 0), TopicPartition(TOPIC, 1)]
    assert applier.calls == 1 and db.waits == {} and sw.holds.holds == {}
    assert sw.marker_applied(marker(0, 7).event)  # type: ignore[arg-type]   # redelivered: skipped


def test_another_members_partitions_count() -> None:
    db = Database()
    db.waits[(TOPIC, 1)] = "ddl eu:1-1-9: the schema owner's ALTER, waiting for every partition to reach it"
    applier = Applier(db)
    sw, _ = waits(db, applier)
    sw.wait_ddl(marker(0, 7))
    assert sw.holds.recheck() == [TopicPartition(TOPIC, 0)] and applier.calls == 1


def test_a_member_whose_partitions_another_applied_for_only_releases() -> None:
    db = Database()
    applier = Applier(db)
    sw, _ = waits(db, applier)
    sw.wait_ddl(marker(0, 7))
    db.ddl.add("eu:1-1-9")                                           # another member applied it
    assert sw.holds.recheck(force=True) == [TopicPartition(TOPIC, 0)] and applier.calls == 0


def test_a_refused_ddl_keeps_the_partitions_held_and_is_reported_once() -> None:
    db = Database()
    applier = Applier(db, refuse="destructive DDL refused (DROP COLUMN phone)")
    sw, registry = waits(db, applier)
    sw.wait_ddl(marker(0, 7, partitions=1))
    assert sw.holds.recheck() == [] and sw.holds.recheck(force=True) == []
    assert list(sw.holds.holds) == [TopicPartition(TOPIC, 0)]
    assert re.match(r"ddl eu:1-1-9 refused: destructive DDL refused \(DROP COLUMN phone\)", db.waits[(TOPIC, 0)])
    assert registry.get_sample_value("cdcsync_sink_ddl_total", {"region": "us", "table": "app.users",
                                                                "kind": "refused"}) == 1.0
