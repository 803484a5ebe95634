"""Copying a consistent snapshot of the seed region's replicated tables, and their clocks, into a new region.

Reads happen inside one `ConsistentSnapshot` of the seed (as its reader user): every table's rows
and its `<meta_db>.row_clocks` rows (tombstones included) are of the same instant. Writes go to the
new region's database as its applier user, in one session with `@cdcsync_applying = 1` (the clock
triggers leave them alone: the copied clocks are the versions), a transaction per chunk. Values
travel as wire values (common/snapshot_encoding.py) and bind through
consumers/db/params.param_converter under `session_setup.APPLY`, exactly as the database sink
stores a change.

The target tables must be empty (checked by `empty_target_problems`, before anything is written):
the copy inserts, it never overwrites.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pymysql

from cdcsync.tools.clock_init import SYSTEM_SCHEMAS
from common.metadata_tables import APPLY_MARKER, ROW_CLOCKS
from common.mysql import connect
from common.snapshot_reader import ConsistentSnapshot, SnapshotTable
from consumers.db import dialect as db_dialect
from consumers.db.params import param_converter
from consumers.db import session_setup
from schemas.config import PipelineConfig, table_selected
from schemas.identifiers import quote_name
from schemas.position import BinlogPosition

Progress = Callable[[str, int, int], None]   # (label, done, estimated total)

_CLOCK_COLUMNS = ("db", "tbl", "pk_hash", "pk", "counters", "hlc_us", "deleted", "origin", "heads", "delta_seen", "col_stamps",
                  "updated_at")


@dataclass(slots=True)
class CopyReport:
    position: BinlogPosition | None = None            # the seed's binlog position the snapshot stands at
    rows: dict[str, int] = field(default_factory=dict)  # db.table -> rows copied
    clocks: dict[str, int] = field(default_factory=dict)  # db.table -> row_clocks rows copied


def replicated_tables(conn: pymysql.Connection, config: PipelineConfig, region: str) -> list[tuple[str, str]]:
    """The base tables `region`'s producer selection captures, as (db, table)."""
    excluded = (*SYSTEM_SCHEMAS, config.meta_db)
    with conn.cursor() as cur:
        cur.execute("SELECT TABLE_SCHEMA, TABLE_NAME FROM information_schema.TABLES WHERE TABLE_TYPE = 'BASE TABLE' "
                    f"AND TABLE_SCHEMA NOT IN ({', '.join(['%s'] * len(excluded))}) ORDER BY TABLE_SCHEMA, TABLE_NAME",
                    excluded)
        return [(db, t) for db, t in cur.fetchall() if table_selected(config.region(region).producer, db, t)]


def empty_target_problems(conn: pymysql.Connection, meta_db: str, tables: list[tuple[str, str]]) -> list[str]:
    """Why the target cannot take the copy: a table missing, or holding rows or clock rows."""
    problems = []
    with conn.cursor() as cur:
        cur.execute("SELECT 1 FROM information_schema.TABLES WHERE TABLE_SCHEMA = %s AND TABLE_NAME = %s",
                    (meta_db, ROW_CLOCKS))
        has_clocks = cur.fetchone() is not None
        for db, table in tables:
            cur.execute("SELECT 1 FROM information_schema.TABLES WHERE TABLE_SCHEMA = %s AND TABLE_NAME = %s",
                        (db, table))
            if cur.fetchone() is None:
                problems.append(f"{db}.{table} does not exist (create the application's tables first)")
                continue
            cur.execute(f"SELECT 1 FROM {quote_name(db)}.{quote_name(table)} LIMIT 1")
            if cur.fetchone() is not None:
                problems.append(f"{db}.{table} is not empty")
            elif has_clocks:
                cur.execute(f"SELECT 1 FROM {quote_name(meta_db)}.{quote_name(ROW_CLOCKS)} WHERE db = %s AND tbl = %s "
                            f"LIMIT 1", (db, table))
                if cur.fetchone() is not None:
                    problems.append(f"{meta_db}.{ROW_CLOCKS} already holds clocks of {db}.{table}")
    return problems


def applied_markers(conn: pymysql.Connection, meta_db: str, prefix: str) -> list[str]:
    """Source partitions the region's database sink already recorded as applied, for topics of
    this pipeline: left over from an earlier sink, they would make the new sink skip events."""
    with conn.cursor() as cur:
        cur.execute("SELECT 1 FROM information_schema.TABLES WHERE TABLE_SCHEMA = %s AND TABLE_NAME = %s",
                    (meta_db, APPLY_MARKER))
        if cur.fetchone() is None:
            return []
        cur.execute(f"SELECT source_topic, source_partition, applied_offset FROM {quote_name(meta_db)}."
                    f"{quote_name(APPLY_MARKER)} WHERE source_topic LIKE %s ORDER BY source_topic, source_partition",
                    (prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + ".%",))
        return [f"{topic}[{partition}]@{offset}" for topic, partition, offset in cur.fetchall()]


def applier_session(config: PipelineConfig, region: str) -> pymysql.Connection:
    """A connection to `region` as its applier, set up like the database sink's (clock triggers off)."""
    conn = connect(config.region(region).mysql, autocommit=False)
    with conn.cursor() as cur:
        cur.execute(session_setup.APPLY)
    return conn


def copy_snapshot(config: PipelineConfig, seed: str, target: pymysql.Connection, *,
                  tables: list[tuple[str, str]] | None = None, progress: Progress | None = None,
                  chunk_rows: int | None = None, after_snapshot: Callable[[], None] | None = None) -> CopyReport:
    """Copy the seed's replicated tables (or `tables`) and their row clocks into `target` (an
    `applier_session`), committing per chunk. Blocks. `after_snapshot` runs once the snapshot is open."""
    cfg = config.region(seed)
    chunk = chunk_rows or cfg.producer.snapshot_chunk_rows
    report = CopyReport()
    with ConsistentSnapshot(cfg.mysql.reader(), config.meta_db, chunk) as snap:
        report.position = snap.position
        if after_snapshot is not None:
            after_snapshot()
        found = snap.tables(cfg.producer)
        if tables is not None:
            found = [t for t in found if (t.db, t.table) in set(tables)]
        has_clocks = bool(snap.query("SELECT 1 FROM information_schema.TABLES WHERE TABLE_SCHEMA = %s "
                                     "AND TABLE_NAME = %s", (config.meta_db, ROW_CLOCKS)))
        for t in found:
            name = f"{t.db}.{t.table}"
            report.rows[name] = _copy_rows(snap, t, target, name, progress)
            if has_clocks:
                report.clocks[name] = _copy_clocks(snap, config.meta_db, t, target, chunk, progress, seed)
    return report


def _copy_rows(snap: ConsistentSnapshot, t: SnapshotTable, target: pymysql.Connection, name: str,
               progress: Progress | None) -> int:
    columns = tuple(t.encoder.types)
    converters = [param_converter(t.encoder.types[c]) for c in columns]

    def params(rows: list[dict[str, Any]]) -> list[Any]:
        return [v if convert is None or v is None else convert(v)
                for row in rows for convert, v in zip(converters, (row[c] for c in columns))]

    done = 0
    for rows in snap.chunks(t):
        if rows:
            # A row holding the invalid ENUM value '' is written alone, as the database sink does.
            zero = [(row, session_setup.enum_zero_columns(t.encoder.types, row)) for row in rows]
            plain = [row for row, columns_zero in zero if not columns_zero]
            with target.cursor() as cur:
                if plain:
                    cur.execute(db_dialect.insert(t.db, t.table, columns, len(plain)), params(plain))
                for row, columns_zero in zero:
                    if columns_zero:
                        with session_setup.enum_zero(cur, columns_zero):
                            cur.execute(db_dialect.insert(t.db, t.table, columns, 1), params([row]))
            target.commit()
        done += len(rows)
        if progress is not None:
            progress(name, done, t.estimated_rows)
    return done


def _copy_clocks(snap: ConsistentSnapshot, meta_db: str, t: SnapshotTable, target: pymysql.Connection,
                 chunk: int, progress: Progress | None, seed: str) -> int:
    """Every `row_clocks` row of the table, tombstones included, `updated_at` kept (tombstone purge
    measures age by it), in pk_hash order."""
    source = f"{quote_name(meta_db)}.{quote_name(ROW_CLOCKS)}"
    # The seed's values count its own writes, which its frontier of delta columns does not list (it lists
    # other origins only): the copy's frontier gets the seed's counter, so re-read seed versions are not
    # counted twice (consumers/db/delta_merge.py).
    path = "'$.\"" + seed.replace("\\", "").replace("'", "").replace('"', "") + "\"'"
    frontier = (f"JSON_SET(COALESCE(delta_seen, '{{}}'), {path}, "
                f"CAST(COALESCE(JSON_VALUE(counters, {path}), 0) AS SIGNED))")
    cols = ", ".join(frontier if c == "delta_seen" else c for c in _CLOCK_COLUMNS)
    label = f"{t.db}.{t.table} clocks"
    total = int(snap.query(f"SELECT COUNT(*) FROM {source} WHERE db = %s AND tbl = %s", (t.db, t.table))[0][0])
    done, last = 0, b""
    while True:
        rows = snap.query(f"SELECT {cols} FROM {source} WHERE db = %s AND tbl = %s AND pk_hash > %s "
                          f"ORDER BY pk_hash LIMIT {chunk}", (t.db, t.table, last))
        if rows:
            with target.cursor() as cur:
                cur.execute(db_dialect.insert(meta_db, ROW_CLOCKS, _CLOCK_COLUMNS, len(rows)),
                            [v for row in rows for v in row])
            target.commit()
            last = rows[-1][2]
        done += len(rows)
        if progress is not None:
            progress(label, done, total)
        if len(rows) < chunk:
            return done
