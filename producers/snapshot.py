"""Consistent initial snapshot: every existing row, then streaming from exactly that point.

MariaDB: `START TRANSACTION WITH CONSISTENT SNAPSHOT` makes `binlog_snapshot_file/position` the
binlog position of the snapshot itself, with no lock; `BINLOG_GTID_POS()` turns it into a GTID
state. Rows are read in primary-key chunks inside that one transaction and published as
`op = "snapshot"` events; streaming then resumes at the snapshot position, so no change is missed
or doubled. MySQL: the position is taken under a brief `FLUSH TABLES WITH READ LOCK` (needs RELOAD).

A producer killed during the snapshot has no checkpoint yet and starts the snapshot over.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import pymysql
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from producers import binlog_stream, messages
from producers.metrics import ProducerMetrics
from producers.position import BinlogPosition
from producers.publisher import Publisher
from producers.snapshot_encoding import SnapshotEncoder
from producers.table_catalog import snapshot_columns
from producers.topics import TopicCreator, TopicNames
from schemas.codec import encode
from schemas.config import PipelineConfig, table_selected

log = logging.getLogger(__name__)

_SYSTEM_SCHEMAS = ("mysql", "information_schema", "performance_schema", "sys")


def _quote(name: str) -> str:
    return "`" + name.replace("`", "``") + "`"


def _after_clause(pk: tuple[str, ...]) -> str:
    """Keyset condition `pk > last` for a (possibly composite) key, in a form indexes can use."""
    terms = []
    for i, col in enumerate(pk):
        equal = [f"{_quote(c)} = %s" for c in pk[:i]]
        terms.append("(" + " AND ".join([*equal, f"{_quote(col)} > %s"]) + ")")
    return " OR ".join(terms)


def _after_params(pk_values: tuple[Any, ...]) -> list[Any]:
    params: list[Any] = []
    for i in range(len(pk_values)):
        params.extend(pk_values[: i + 1])
    return params


class Snapshotter:
    """Publishes one region's existing rows and returns the position to stream from."""

    def __init__(self, config: PipelineConfig, region: str, publisher: Publisher, topics: TopicCreator,
                 metrics: ProducerMetrics) -> None:
        self.config = config
        self.region = config.region(region)
        self.publisher = publisher
        self.topics = topics
        self.metrics = metrics
        self.names = TopicNames.of(config)

    def run(self) -> BinlogPosition:
        mysql = self.region.mysql
        with binlog_stream.connect(mysql, autocommit=False) as conn, conn.cursor() as cur:
            cur.execute("SET SESSION time_zone = '+00:00'")
            cur.execute("SET SESSION TRANSACTION ISOLATION LEVEL REPEATABLE READ")
            position = self._begin(cur, mysql.flavor)
            tables = self._tables(cur)
            info = messages.TxnInfo(self.region.name, self.region.name, self.region.server_id, None,
                                    f"snapshot:{position.gtid_state or f'{position.file}:{position.pos}'}",
                                    time.time_ns() // 1000)
            ack = self.publisher.tracker.open()
            held: list[tuple[str, bytes, dict[str, Any]]] = []
            hdrs = messages.headers("change", self.region.name)

            def emit(topic: str, key: bytes, message: dict[str, Any]) -> None:
                if held:
                    self.publisher.produce(ack, *_encoded(held.pop()), hdrs)
                held.append((topic, key, message))

            with Progress(TextColumn("snapshot {task.description}"), BarColumn(), MofNCompleteColumn(),
                          TimeElapsedColumn(), transient=False) as progress:
                for db, table, estimate in tables:
                    task = progress.add_task(f"{db}.{table}", total=max(estimate, 1))
                    count = self._table(cur, db, table, position, info, emit,
                                        lambda n, t=task: progress.advance(t, n))
                    progress.update(task, total=max(count, 1), completed=max(count, 1))
                    log.info("snapshot of %s.%s: %d rows", db, table, count)
            if held:
                topic, key, message = held.pop()
                message["txn_last"] = True
                self.publisher.produce(ack, *_encoded((topic, key, message)), hdrs)
            self.publisher.tracker.seal(ack, position)
            conn.commit()
        return position

    def _begin(self, cur: pymysql.cursors.Cursor, flavor: str) -> BinlogPosition:
        if flavor == "mariadb":
            cur.execute("START TRANSACTION WITH CONSISTENT SNAPSHOT")
            cur.execute("SHOW STATUS LIKE 'binlog_snapshot_%'")
            status = {name.lower(): value for name, value in cur.fetchall()}
            file, pos = status["binlog_snapshot_file"], int(status["binlog_snapshot_position"])
            cur.execute("SELECT BINLOG_GTID_POS(%s, %s)", (file, pos))
            gtid = cur.fetchone()[0] or ""
            return BinlogPosition(gtid, file, pos)
        cur.execute("FLUSH TABLES WITH READ LOCK")
        try:
            cur.execute("START TRANSACTION WITH CONSISTENT SNAPSHOT")
            return binlog_stream.current_position(cur.connection, flavor)
        finally:
            cur.execute("UNLOCK TABLES")

    def _tables(self, cur: pymysql.cursors.Cursor) -> list[tuple[str, str, int]]:
        cur.execute("SELECT TABLE_SCHEMA, TABLE_NAME, COALESCE(TABLE_ROWS, 0) FROM information_schema.TABLES "
                    "WHERE TABLE_TYPE = 'BASE TABLE' AND TABLE_SCHEMA NOT IN (%s, %s, %s, %s, %s) "
                    "ORDER BY TABLE_SCHEMA, TABLE_NAME", (*_SYSTEM_SCHEMAS, self.config.meta_db))
        producer = self.region.producer
        return [(db, t, int(n)) for db, t, n in cur.fetchall() if table_selected(producer, db, t)]

    def _table(self, cur: pymysql.cursors.Cursor, db: str, table: str, position: BinlogPosition,
               info: messages.TxnInfo, emit: Any, advance: Any) -> int:
        meta = snapshot_columns(cur.connection, db, table)
        pk = tuple(meta.primary_key)
        if not pk:
            if self.region.producer.no_primary_key == "skip":
                log.warning("table %s.%s has no primary key: skipping it (producer.no_primary_key = 'skip')",
                            db, table)
                return 0
        encoder = SnapshotEncoder(meta)
        key_cols = pk or tuple(c.name for c in meta.columns)
        topic = self.names.changes(self.region.name, db, table)
        self.topics.ensure(topic)
        prefix = f"{db}.{table}:".encode() if self.names.mode == "per_region" else b""
        counter = self.metrics.snapshot_rows.labels(self.region.name, db, table)
        chunk = self.region.producer.snapshot_chunk_rows
        source = f"{_quote(db)}.{_quote(table)}"
        select = f"SELECT {encoder.select_list}{''.join(', ' + _quote(c) for c in pk)} FROM {source}"
        order = f" ORDER BY {', '.join(_quote(c) for c in pk)} LIMIT {chunk}" if pk else ""
        count = 0
        last: tuple[Any, ...] | None = None
        while True:
            if pk and last is not None:
                cur.execute(f"{select} WHERE {_after_clause(pk)}{order}", _after_params(last))
            else:
                cur.execute(select + order)
            rows = cur.fetchall()
            for row in rows:
                after = encoder.encode_row(row[: len(row) - len(pk)] if pk else row)
                pk_values = [after[c] for c in key_cols]
                message = messages.change(info, position.file, position.pos, db, table, "snapshot",
                                          dict(zip(key_cols, pk_values)), None, after, encoder.types)
                emit(topic, messages.row_key(pk_values, prefix), message)
            count += len(rows)
            counter.inc(len(rows))
            advance(len(rows))
            self.publisher.poll(0)
            if not pk or len(rows) < chunk:
                return count
            last = tuple(rows[-1][len(rows[-1]) - len(pk):])


def _encoded(item: tuple[str, bytes, dict[str, Any]]) -> tuple[str, bytes, bytes]:
    topic, key, message = item
    return topic, key, encode(message)
