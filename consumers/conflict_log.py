"""Storage of conflict records in `<meta_db>.conflict_log` (see schemas/conflict_record.py)."""

from __future__ import annotations

import orjson
import pymysql

from schemas.conflict_record import ConflictRecord
from schemas.identifiers import quote_name
from schemas.metadata_tables import CONFLICT_LOG
from schemas.row_clock_key import key_hash


def insert(cur: pymysql.cursors.Cursor, meta_db: str, record: ConflictRecord, *, key: str) -> int:
    """Insert one record inside the caller's transaction; returns its id. `key` is the row's
    canonical key text (schemas/row_clock_key)."""
    def js(model: object) -> str | None:
        return None if model is None else model.model_dump_json()  # type: ignore[attr-defined]

    cur.execute(
        f"INSERT INTO {quote_name(meta_db)}.{quote_name(CONFLICT_LOG)} (kind, logged_at_us, region, db, tbl, pk, "
        f"pk_hash, strategy, winner, local_version, remote_version, result_version, losers, source_topic, "
        f"source_partition, source_offset, source_gtid, local_gtid, overrides) "
        f"VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
        (record.kind, record.logged_at_us, record.region, record.db, record.table, orjson.dumps(record.pk).decode(),
         key_hash(key), record.strategy, record.winner, js(record.local), js(record.remote), js(record.result),
         orjson.dumps([v.model_dump(mode="json") for v in record.losers]).decode(), record.source_topic,
         record.source_partition, record.source_offset, record.source_gtid, record.local_gtid, record.overrides))
    return int(cur.lastrowid)
