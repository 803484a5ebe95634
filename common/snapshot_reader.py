"""Reading a region's tables inside one consistent snapshot, with the binlog position it stands at.

MariaDB: `START TRANSACTION WITH CONSISTENT SNAPSHOT` makes `binlog_snapshot_file/position` the
binlog position of the snapshot itself, with no lock; `BINLOG_GTID_POS()` turns it into a GTID
state. MySQL: the position is taken under a brief `FLUSH TABLES WITH READ LOCK` (needs RELOAD).
Used by the producer's initial snapshot and by `cdcsync cache rebuild`.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import pymysql

from common.mysql import connect, current_position
from common.snapshot_encoding import SnapshotEncoder
from common.table_catalog import TableColumns, snapshot_columns
from schemas import key_fold
from schemas.config import MySQLConfig, ProducerConfig, table_selected
from schemas.identifiers import quote_name
from schemas.position import BinlogPosition

log = logging.getLogger(__name__)

_SYSTEM_SCHEMAS = ("mysql", "information_schema", "performance_schema", "sys")


def _after_clause(pk: tuple[str, ...]) -> str:
    """Keyset condition `pk > last` for a (possibly composite) key, in a form indexes can use."""
    terms = []
    for i, col in enumerate(pk):
        equal = [f"{quote_name(c)} = %s" for c in pk[:i]]
        terms.append("(" + " AND ".join([*equal, f"{quote_name(col)} > %s"]) + ")")
    return " OR ".join(terms)


def _after_params(pk_values: tuple[Any, ...]) -> list[Any]:
    params: list[Any] = []
    for i in range(len(pk_values)):
        params.extend(pk_values[: i + 1])
    return params


@dataclass(frozen=True, slots=True)
class SnapshotTable:
    db: str
    table: str
    estimated_rows: int
    key_columns: tuple[str, ...]   # the primary key, or every column for a keyless table
    has_primary_key: bool
    encoder: SnapshotEncoder
    columns: TableColumns | None = None   # information_schema's view (`cdcsync verify` builds checksums from it)
    fold: dict[str, str] = field(default_factory=dict)  # key column -> collation, where it folds (schemas/key_fold.py)


def snapshot_key_values(table: SnapshotTable, row: dict[str, Any]) -> list[Any]:
    """The values naming a row of `table` (its key, text folded by collation): as cache, Bloom and
    Kafka keys name it."""
    pk = {c: row[c] for c in table.key_columns}
    return key_fold.key_values(pk, key_fold.fold_pk(pk, table.fold) if table.fold else None)


class ConsistentSnapshot:
    """Use as a context manager; `position` is set on entry. Owned by one thread."""

    def __init__(self, mysql: MySQLConfig, meta_db: str, chunk_rows: int = 5000) -> None:
        self._mysql = mysql
        self._meta_db = meta_db
        self._chunk = chunk_rows
        self._conn: pymysql.Connection | None = None
        self.position: BinlogPosition | None = None

    def __enter__(self) -> "ConsistentSnapshot":
        self._conn = connect(self._mysql, autocommit=False)
        with self._conn.cursor() as cur:
            cur.execute("SET SESSION time_zone = '+00:00'")
            cur.execute("SET SESSION TRANSACTION ISOLATION LEVEL REPEATABLE READ")
            self.position = self._begin(cur)
        return self

    def __exit__(self, *exc: object) -> None:
        if self._conn is not None:
            try:
                self._conn.rollback()
            finally:
                self._conn.close()
                self._conn = None

    def _begin(self, cur: pymysql.cursors.Cursor) -> BinlogPosition:
        if self._mysql.flavor == "mariadb":
            cur.execute("START TRANSACTION WITH CONSISTENT SNAPSHOT")
            cur.execute("SHOW STATUS LIKE 'binlog_snapshot_%'")
            status = {name.lower(): value for name, value in cur.fetchall()}
            file, pos = status["binlog_snapshot_file"], int(status["binlog_snapshot_position"])
            cur.execute("SELECT BINLOG_GTID_POS(%s, %s)", (file, pos))
            return BinlogPosition(cur.fetchone()[0] or "", file, pos)
        cur.execute("FLUSH TABLES WITH READ LOCK")
        try:
            cur.execute("START TRANSACTION WITH CONSISTENT SNAPSHOT")
            return current_position(cur.connection, "mysql")
        finally:
            cur.execute("UNLOCK TABLES")

    def tables(self, selection: ProducerConfig, only: str | None = None) -> list[SnapshotTable]:
        """The selected base tables (or just `only`, as `db.table`), with what reading them needs."""
        assert self._conn is not None
        with self._conn.cursor() as cur:
            cur.execute("SELECT TABLE_SCHEMA, TABLE_NAME, COALESCE(TABLE_ROWS, 0) FROM information_schema.TABLES "
                        "WHERE TABLE_TYPE = 'BASE TABLE' AND TABLE_SCHEMA NOT IN (%s, %s, %s, %s, %s) "
                        "ORDER BY TABLE_SCHEMA, TABLE_NAME", (*_SYSTEM_SCHEMAS, self._meta_db))
            found = [(db, t, int(n)) for db, t, n in cur.fetchall()
                     if (f"{db}.{t}" == only if only else table_selected(selection, db, t))]
        result = []
        for db, table, estimate in found:
            meta = snapshot_columns(self._conn, db, table)
            pk = tuple(meta.primary_key)
            keys = pk or tuple(c.name for c in meta.columns)
            fold = key_fold.folding(meta.key_collations(), f"{db}.{table}") if pk else {}
            with self._conn.cursor() as cur:
                key_fold.ensure(cur, fold)
            result.append(SnapshotTable(db, table, estimate, keys, bool(pk), SnapshotEncoder(meta), meta, fold))
        return result

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        """Every row of one read-only statement, run inside the snapshot's transaction."""
        assert self._conn is not None
        with self._conn.cursor() as cur:
            cur.execute(sql, params)
            return list(cur.fetchall())

    def chunks(self, table: SnapshotTable) -> Iterator[list[dict[str, Any]]]:
        """Encoded rows in primary-key order, `chunk_rows` at a time (a keyless table in one chunk)."""
        assert self._conn is not None
        pk = table.key_columns if table.has_primary_key else ()
        source = f"{quote_name(table.db)}.{quote_name(table.table)}"
        select = f"SELECT {table.encoder.select_list}{''.join(', ' + quote_name(c) for c in pk)} FROM {source}"
        order = f" ORDER BY {', '.join(quote_name(c) for c in pk)} LIMIT {self._chunk}" if pk else ""
        last: tuple[Any, ...] | None = None
        with self._conn.cursor() as cur:
            while True:
                if last is not None:
                    cur.execute(f"{select} WHERE {_after_clause(pk)}{order}", _after_params(last))
                else:
                    cur.execute(select + order)
                rows = cur.fetchall()
                width = len(rows[0]) - len(pk) if rows else 0
                yield [table.encoder.encode_row(row[:width]) for row in rows]
                if not pk or len(rows) < self._chunk:
                    return
                last = tuple(rows[-1][width:])
