"""cdcsync's own tables in every region's `meta_db`. Never captured, never replicated.

`apply_marker`: the database sink writes its row FIRST in every transaction it applies, keyed by
the source partition it applies from (one writer per partition, so no lock contention). The
region's producer sees that row in the binlog and publishes the rest of the transaction with
`origin` = the marker's origin, so no other region applies it again (loop prevention). It also
holds the last applied source offset, which makes replays recognisable.

`row_clocks`: the vector clock of every row version, keyed by (db, tbl, pk_hash), `pk_hash` being
the SHA-256 of the canonical key text `pk` (schemas/row_clock_key.py; the hash keeps the primary
key under InnoDB's 3072-byte limit). The clock triggers (common/clock_triggers.py) write it in the
same transaction as every local write; the database sink writes it itself. `deleted = 1` is a
tombstone. `heads` (JSON, NULL for a plain write) holds the concurrent versions a resolved version
stands for, for strategies whose order does not follow causality (region-priority, custom); a local
write dominates them all and clears it. `delta_seen` (JSON origin -> counter, NULL for tables without
delta columns) is the frontier of the versions whose deltas the row counts, written by the database
sink only (consumers/db/delta_merge.py); the triggers leave it alone. `col_stamps` (JSON, NULL for tables
whose strategy is not column-lww) holds the per-column write stamps of a column-lww row, written by its
triggers (common/clock_triggers.py) and the database sink (consumers/db/column_merge.py). See docs/clocks.md.

`published_deletes`: a delete the database sink decided and every region must apply, written in the
sink's transaction: a remote version that lost its secondary UNIQUE value (consumers/db/unique_keys.py).
The sink cannot delete a row it never wrote, so this row (`body`: the delete's key, image, types and
clock, as JSON) is how the decision reaches the binlog; the producer publishes it as a delete of
this region (producers/capture.py). Keyed by the source record, so a retried batch writes it once.

`schema_waits`: one row per source partition the database sink holds because the target table cannot
hold its next event yet (consumers/db/schema_waits.py): the table, the source region and partition,
the held offset, why and since when. Deleted when the sink resumes; `cdcsync status` shows them.

`schema_ddl`: one row per schema owner's DDL the database sink applied here (or refused to), keyed by
the source DDL's id (`<owner>:<txn id>`): what, which class, when (consumers/db/ddl_apply.py).

`conflict_log`: one row per conflict resolution (and per operator override), written by the
database sink in the same transaction as the apply. Columns mirror `schemas.conflict_record`
(`column_sources`: a column-lww resolution's column -> `local`/`remote`, JSON);
version images are JSON text. Never replicated (the producer publishes nothing of `meta_db` but
the clocks it attaches to events).
"""

from __future__ import annotations

import json
from typing import Any, NamedTuple

import pymysql

APPLY_MARKER = "apply_marker"
ROW_CLOCKS = "row_clocks"
CONFLICT_LOG = "conflict_log"
PUBLISHED_DELETES = "published_deletes"
SCHEMA_WAITS = "schema_waits"
SCHEMA_DDL = "schema_ddl"


def ddl(meta_db: str) -> list[str]:
    q = f"`{meta_db}`"
    return [
        f"CREATE DATABASE IF NOT EXISTS {q}",
        f"""CREATE TABLE IF NOT EXISTS {q}.`{APPLY_MARKER}` (
            source_topic VARCHAR(249) NOT NULL,
            source_partition INT NOT NULL,
            origin VARCHAR(32) NOT NULL,
            applied_offset BIGINT NOT NULL,
            source_gtid VARCHAR(128) NULL,
            source_txn_index INT NULL,
            source_epoch VARCHAR(64) NULL,
            source_topic_id VARCHAR(64) NULL,
            applied_count BIGINT NOT NULL DEFAULT 0,
            updated_at TIMESTAMP(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6) ON UPDATE CURRENT_TIMESTAMP(6),
            PRIMARY KEY (source_topic, source_partition)
        ) ENGINE=InnoDB""",
        f"""CREATE TABLE IF NOT EXISTS {q}.`{ROW_CLOCKS}` (
            db VARCHAR(64) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL,
            tbl VARCHAR(64) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL,
            pk_hash BINARY(32) NOT NULL,
            pk TEXT CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL,
            counters TEXT CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL,
            hlc_us BIGINT NOT NULL,
            deleted TINYINT NOT NULL DEFAULT 0,
            origin VARCHAR(32) NOT NULL,
            heads MEDIUMTEXT CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NULL,
            delta_seen TEXT CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NULL,
            col_stamps MEDIUMTEXT CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NULL,
            updated_at TIMESTAMP(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6) ON UPDATE CURRENT_TIMESTAMP(6),
            PRIMARY KEY (db, tbl, pk_hash)
        ) ENGINE=InnoDB""",
        f"""CREATE TABLE IF NOT EXISTS {q}.`{CONFLICT_LOG}` (
            id BIGINT NOT NULL AUTO_INCREMENT,
            kind VARCHAR(16) NOT NULL DEFAULT 'resolution',
            logged_at_us BIGINT NOT NULL,
            region VARCHAR(32) NOT NULL,
            db VARCHAR(64) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL,
            tbl VARCHAR(64) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL,
            pk TEXT CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL,
            pk_hash BINARY(32) NOT NULL,
            strategy VARCHAR(32) NOT NULL,
            winner VARCHAR(16) NOT NULL,
            local_version MEDIUMTEXT CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NULL,
            remote_version MEDIUMTEXT CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL,
            result_version MEDIUMTEXT CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL,
            losers MEDIUMTEXT CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL,
            source_topic VARCHAR(249) NULL,
            source_partition INT NULL,
            source_offset BIGINT NULL,
            source_gtid VARCHAR(128) NULL,
            local_gtid TEXT NULL,
            overrides BIGINT NULL,
            column_sources TEXT CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NULL,
            PRIMARY KEY (id),
            KEY by_time (logged_at_us),
            KEY by_row (db, tbl, pk_hash, logged_at_us)
        ) ENGINE=InnoDB""",
        f"""CREATE TABLE IF NOT EXISTS {q}.`{PUBLISHED_DELETES}` (
            source_topic VARCHAR(249) NOT NULL,
            source_partition INT NOT NULL,
            source_offset BIGINT NOT NULL,
            body MEDIUMTEXT CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL,
            written_at TIMESTAMP(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
            PRIMARY KEY (source_topic, source_partition, source_offset)
        ) ENGINE=InnoDB""",
        f"""CREATE TABLE IF NOT EXISTS {q}.`{SCHEMA_WAITS}` (
            source_topic VARCHAR(249) NOT NULL,
            source_partition INT NOT NULL,
            db VARCHAR(64) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL,
            tbl VARCHAR(64) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL,
            source_region VARCHAR(32) NOT NULL,
            held_offset BIGINT NOT NULL,
            reason TEXT NOT NULL,
            since_us BIGINT NOT NULL,
            PRIMARY KEY (source_topic, source_partition)
        ) ENGINE=InnoDB""",
        f"""CREATE TABLE IF NOT EXISTS {q}.`{SCHEMA_DDL}` (
            ddl_id VARCHAR(191) NOT NULL,
            db VARCHAR(64) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL,
            tbl VARCHAR(64) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL,
            source_region VARCHAR(32) NOT NULL,
            statement MEDIUMTEXT NOT NULL,
            kind VARCHAR(16) NOT NULL,
            applied_at_us BIGINT NOT NULL,
            PRIMARY KEY (ddl_id)
        ) ENGINE=InnoDB""",
    ]


TABLES = (APPLY_MARKER, ROW_CLOCKS, CONFLICT_LOG, PUBLISHED_DELETES, SCHEMA_WAITS, SCHEMA_DDL)
_MARKER_INCARNATION = {"source_epoch": "source_txn_index", "source_topic_id": "source_epoch"}   # column: after


def ensure(conn: pymysql.Connection, meta_db: str) -> None:
    """Create the metadata database and tables, and add columns newer versions need; idempotent.

    Runs no DDL when every table and column exists: an applier with only DML privileges (least
    privilege, tables created once by `cdcsync init` as an admin) never needs CREATE or ALTER."""
    with conn.cursor() as cur:
        cur.execute("SELECT TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA = %s", (meta_db,))
        tables = {row[0] for row in cur.fetchall()}
        cur.execute("SELECT COLUMN_NAME FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = %s AND TABLE_NAME = %s "
                    "AND COLUMN_NAME IN ('heads', 'delta_seen', 'col_stamps')", (meta_db, ROW_CLOCKS))
        clock_columns = {row[0] for row in cur.fetchall()}
        has_heads, has_deltas = "heads" in clock_columns, "delta_seen" in clock_columns
        has_stamps = "col_stamps" in clock_columns
        cur.execute("SELECT 1 FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = %s AND TABLE_NAME = %s "
                    "AND COLUMN_NAME = 'column_sources'", (meta_db, CONFLICT_LOG))
        has_sources = cur.fetchone() is not None
        cur.execute("SELECT COLUMN_NAME FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = %s AND TABLE_NAME = %s "
                    "AND COLUMN_NAME IN ('source_epoch', 'source_topic_id')", (meta_db, APPLY_MARKER))
        present = {row[0] for row in cur.fetchall()}
        missing = [c for c in _MARKER_INCARNATION if c not in present]
        if set(TABLES) <= tables and has_heads and has_deltas and has_stamps and has_sources and not missing:
            return
        for statement in ddl(meta_db):
            cur.execute(statement)
        if ROW_CLOCKS in tables and not has_heads:   # row_clocks created before `heads` existed
            cur.execute(f"ALTER TABLE `{meta_db}`.`{ROW_CLOCKS}` ADD COLUMN heads MEDIUMTEXT CHARACTER SET utf8mb4 "
                        f"COLLATE utf8mb4_bin NULL AFTER origin")
        if ROW_CLOCKS in tables and not has_deltas:   # row_clocks created before delta columns existed
            cur.execute(f"ALTER TABLE `{meta_db}`.`{ROW_CLOCKS}` ADD COLUMN delta_seen TEXT CHARACTER SET utf8mb4 "
                        f"COLLATE utf8mb4_bin NULL AFTER heads")
        if ROW_CLOCKS in tables and not has_stamps:   # row_clocks created before column-lww existed
            cur.execute(f"ALTER TABLE `{meta_db}`.`{ROW_CLOCKS}` ADD COLUMN col_stamps MEDIUMTEXT CHARACTER SET "
                        f"utf8mb4 COLLATE utf8mb4_bin NULL AFTER delta_seen")
        if CONFLICT_LOG in tables and not has_sources:   # conflict_log created before column-lww existed
            cur.execute(f"ALTER TABLE `{meta_db}`.`{CONFLICT_LOG}` ADD COLUMN column_sources TEXT CHARACTER SET utf8mb4 "
                        f"COLLATE utf8mb4_bin NULL AFTER overrides")
        if APPLY_MARKER in tables:   # apply_marker created before epochs and topic ids
            for column in missing:
                cur.execute(f"ALTER TABLE `{meta_db}`.`{APPLY_MARKER}` ADD COLUMN {column} VARCHAR(64) NULL "
                            f"AFTER {_MARKER_INCARNATION[column]}")


def write_marker(cur: pymysql.cursors.Cursor, meta_db: str, *, topic: str, partition: int, origin: str,
                 offset: int, gtid: str | None = None, txn_index: int | None = None, epoch: str | None = None,
                 topic_id: str | None = None) -> None:
    """The first statement of every applied transaction. The count always changes, so the row is
    always logged, even when the same offset is written twice."""
    write_markers(cur, meta_db, [(topic, partition, origin, offset, gtid, txn_index, epoch, topic_id)])


class Marker(NamedTuple):
    """A source partition's `apply_marker` row: what was applied last, and from which incarnation."""

    offset: int
    gtid: str | None = None
    txn_index: int | None = None
    epoch: str | None = None       # the source producer's history id (common/checkpoint_store.py)
    topic_id: str | None = None    # the Kafka topic id the offset belongs to (a recreated topic has another)


_MARKER_COLUMNS = "applied_offset, source_gtid, source_txn_index, source_epoch, source_topic_id"


def _marker(row: tuple[Any, ...]) -> Marker:
    return Marker(int(row[0]), row[1], None if row[2] is None else int(row[2]), row[3], row[4])


def read_marker(cur: pymysql.cursors.Cursor, meta_db: str, topic: str, partition: int) -> Marker | None:
    """The marker of a source partition, row-locked until commit."""
    cur.execute(f"SELECT {_MARKER_COLUMNS} FROM `{meta_db}`.`{APPLY_MARKER}` "
                f"WHERE source_topic = %s AND source_partition = %s FOR UPDATE", (topic, partition))
    row = cur.fetchone()
    return _marker(row) if row else None


def read_markers(cur: pymysql.cursors.Cursor, meta_db: str,
                 partitions: list[tuple[str, int]]) -> dict[tuple[str, int], Marker]:
    """`read_marker` for several source partitions in one statement (row-locked until commit)."""
    if not partitions:
        return {}
    where = " OR ".join(["(source_topic = %s AND source_partition = %s)"] * len(partitions))
    cur.execute(f"SELECT source_topic, source_partition, {_MARKER_COLUMNS} "
                f"FROM `{meta_db}`.`{APPLY_MARKER}` WHERE {where} FOR UPDATE",
                [v for tp in partitions for v in tp])
    return {(row[0], int(row[1])): _marker(row[2:]) for row in cur.fetchall()}


def write_markers(cur: pymysql.cursors.Cursor, meta_db: str, markers: list[tuple[Any, ...]]) -> None:
    """`write_marker` for several source partitions in one statement: rows of
    (topic, partition, origin, offset, gtid, txn_index, epoch, topic_id), all of one origin."""
    one = "(%s, %s, %s, %s, %s, %s, %s, %s, 1)"
    cur.execute(
        f"INSERT INTO `{meta_db}`.`{APPLY_MARKER}` (source_topic, source_partition, origin, applied_offset, "
        f"source_gtid, source_txn_index, source_epoch, source_topic_id, applied_count) "
        f"VALUES {', '.join([one] * len(markers))} "
        f"ON DUPLICATE KEY UPDATE origin = VALUES(origin), applied_offset = VALUES(applied_offset), "
        f"source_gtid = VALUES(source_gtid), source_txn_index = VALUES(source_txn_index), "
        f"source_epoch = VALUES(source_epoch), source_topic_id = VALUES(source_topic_id), "
        f"applied_count = applied_count + 1",
        [v for marker in markers for v in marker])


def delete_markers(cur: pymysql.cursors.Cursor, meta_db: str, topic: str, partition: int | None = None) -> int:
    """Forget what was applied from a topic (or one partition of it): `cdcsync markers rebase`."""
    if partition is None:
        return cur.execute(f"DELETE FROM `{meta_db}`.`{APPLY_MARKER}` WHERE source_topic = %s", (topic,))
    return cur.execute(f"DELETE FROM `{meta_db}`.`{APPLY_MARKER}` WHERE source_topic = %s AND source_partition = %s",
                       (topic, partition))


def write_published_deletes(cur: pymysql.cursors.Cursor, meta_db: str,
                            rows: list[tuple[str, int, int, dict[str, Any]]]) -> None:
    """(source topic, partition, offset, body) rows of `published_deletes`. A row already written
    for the same source record keeps its body (no new row event: that delete was published)."""
    cur.executemany(f"INSERT INTO `{meta_db}`.`{PUBLISHED_DELETES}` (source_topic, source_partition, source_offset, "
                    f"body) VALUES (%s, %s, %s, %s) ON DUPLICATE KEY UPDATE body = body",
                    [(topic, partition, offset, json.dumps(body))
                     for topic, partition, offset, body in rows])


class SchemaWait(NamedTuple):
    table: str          # db.table
    source_region: str
    topic: str
    partition: int
    offset: int
    reason: str
    since_us: int


def write_schema_wait(cur: pymysql.cursors.Cursor, meta_db: str, wait: SchemaWait) -> None:
    db, _, table = wait.table.partition(".")
    cur.execute(f"REPLACE INTO `{meta_db}`.`{SCHEMA_WAITS}` (source_topic, source_partition, db, tbl, source_region, "
                f"held_offset, reason, since_us) VALUES (%s, %s, %s, %s, %s, %s, %s, %s)",
                (wait.topic, wait.partition, db, table, wait.source_region, wait.offset, wait.reason, wait.since_us))


def delete_schema_waits(cur: pymysql.cursors.Cursor, meta_db: str, partitions: list[tuple[str, int]]) -> None:
    if partitions:
        where = " OR ".join(["(source_topic = %s AND source_partition = %s)"] * len(partitions))
        cur.execute(f"DELETE FROM `{meta_db}`.`{SCHEMA_WAITS}` WHERE {where}", [v for tp in partitions for v in tp])


def read_schema_waits(cur: pymysql.cursors.Cursor, meta_db: str) -> list[SchemaWait]:
    cur.execute(f"SELECT db, tbl, source_region, source_topic, source_partition, held_offset, reason, since_us "
                f"FROM `{meta_db}`.`{SCHEMA_WAITS}` ORDER BY db, tbl, source_topic, source_partition")
    return [SchemaWait(f"{r[0]}.{r[1]}", r[2], r[3], int(r[4]), int(r[5]), r[6], int(r[7])) for r in cur.fetchall()]


def read_clock_json(cur: pymysql.cursors.Cursor, meta_db: str, db: str, table: str, pk_hashes: list[bytes],
                    column: str) -> dict[bytes, str]:
    """pk_hash -> the text of `row_clocks.<column>` (`delta_seen`, `col_stamps`) of the keys that have one."""
    if not pk_hashes:
        return {}
    cur.execute(f"SELECT pk_hash, `{column}` FROM `{meta_db}`.`{ROW_CLOCKS}` "
                f"WHERE db = %s AND tbl = %s AND pk_hash IN ({', '.join(['%s'] * len(pk_hashes))}) "
                f"AND `{column}` IS NOT NULL", [db, table, *pk_hashes])
    return {bytes(h): text for h, text in cur.fetchall()}
