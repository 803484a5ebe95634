"""Storage of `ConflictRecord`s in a region's `<meta_db>.conflict_log` (DDL in common/metadata_tables.py).

`insert` runs inside the caller's transaction (the database sink's apply, or an operator's
override) and never commits. The readers (`query`, `get`, `stats`) only SELECT, so they can run on
an autocommit connection beside a live sink.

Column encoding: `pk` is the orjson text of `record.pk` (key order kept), `pk_hash` the SHA-256 of
the row's canonical key text (schemas/row_clock_key.py), so a key lookup uses the `by_row` index
without knowing how a value prints; the version columns are the JSON of `VersionImage`, `losers` a
JSON list of them.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import orjson
import pymysql

from common.metadata_tables import CONFLICT_LOG
from schemas.conflict_record import ConflictRecord, VersionImage
from schemas.identifiers import quote_name
from schemas.row_clock_key import key_hash

_COLUMNS = ("id", "kind", "logged_at_us", "region", "db", "tbl", "pk", "strategy", "winner", "local_version",
            "remote_version", "result_version", "losers", "source_topic", "source_partition", "source_offset",
            "source_gtid", "local_gtid", "overrides", "column_sources")


class StatsRow(NamedTuple):
    bucket_start_us: int   # start of the time bucket, µs since the epoch (a multiple of the bucket)
    table: str             # "db.table"
    strategy: str          # the strategy name; "override" for operator overrides
    count: int


def _table(meta_db: str) -> str:
    return f"{quote_name(meta_db)}.{quote_name(CONFLICT_LOG)}"


def _version_json(version: VersionImage | None) -> str | None:
    return None if version is None else orjson.dumps(version.model_dump(mode="json")).decode()


def insert(cur: pymysql.cursors.Cursor, meta_db: str, record: ConflictRecord, *, key: str) -> int:
    """Store `record` (its `id` is ignored) in the caller's transaction; returns the new id.
    `key` is the row's canonical key text (`row_clock_key`), which `pk_hash` is computed from."""
    cur.execute(
        f"INSERT INTO {_table(meta_db)} (kind, logged_at_us, region, db, tbl, pk, pk_hash, strategy, winner, "
        "local_version, remote_version, result_version, losers, source_topic, source_partition, source_offset, "
        "source_gtid, local_gtid, overrides, column_sources) VALUES "
        "(%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
        (record.kind, record.logged_at_us, record.region, record.db, record.table, orjson.dumps(record.pk).decode(),
         key_hash(key), record.strategy, record.winner, _version_json(record.local), _version_json(record.remote),
         _version_json(record.result), orjson.dumps([v.model_dump(mode="json") for v in record.losers]).decode(),
         record.source_topic, record.source_partition, record.source_offset, record.source_gtid,
         record.local_gtid, record.overrides, None if record.columns is None else orjson.dumps(record.columns).decode()))
    return int(cur.lastrowid)


def _record(row: tuple[Any, ...]) -> ConflictRecord:
    (id_, kind, logged_at_us, region, db, tbl, pk, strategy, winner, local, remote, result, losers, topic,
     partition, offset, source_gtid, local_gtid, overrides, columns) = row
    return ConflictRecord(
        id=int(id_), kind=kind, logged_at_us=int(logged_at_us), region=region, db=db, table=tbl,
        pk=orjson.loads(pk), strategy=strategy, winner=winner,
        local=None if local is None else VersionImage.model_validate_json(local),
        remote=VersionImage.model_validate_json(remote), result=VersionImage.model_validate_json(result),
        losers=[VersionImage.model_validate(v) for v in orjson.loads(losers)],
        source_topic=topic, source_partition=partition, source_offset=offset, source_gtid=source_gtid,
        local_gtid=local_gtid, overrides=overrides, columns=None if columns is None else orjson.loads(columns))


def _split_table(table: str) -> tuple[str, str]:
    db, dot, name = table.partition(".")
    if not dot or not db or not name:
        raise ValueError(f"table {table!r}: expected db.table")
    return db, name


def _where(*, region: str | None, table: str | None, key: str | None, since_us: int | None,
           until_us: int | None, after_id: int | None) -> tuple[str, list[Any]]:
    clauses: list[str] = []
    params: list[Any] = []
    if key is not None and table is None:
        raise ValueError("a key filter needs its table")
    if region is not None:
        clauses.append("region = %s")
        params.append(region)
    if table is not None:
        db, name = _split_table(table)
        clauses.append("db = %s AND tbl = %s")
        params += [db, name]
    if key is not None:
        clauses.append("pk_hash = %s")
        params.append(key_hash(key))
    if since_us is not None:
        clauses.append("logged_at_us >= %s")
        params.append(since_us)
    if until_us is not None:
        clauses.append("logged_at_us < %s")
        params.append(until_us)
    if after_id is not None:
        clauses.append("id > %s")
        params.append(after_id)
    return (" WHERE " + " AND ".join(clauses)) if clauses else "", params


def query(conn: pymysql.Connection, meta_db: str, *, region: str | None = None, table: str | None = None,
          key: str | None = None, since_us: int | None = None, until_us: int | None = None,
          after_id: int | None = None, limit: int | None = None, latest: bool = False) -> list[ConflictRecord]:
    """Records matching every given filter, oldest (lowest id) first.

    `table` is "db.table"; `key` the canonical key text of a row of it (requires `table`);
    `since_us` inclusive, `until_us` exclusive, on `logged_at_us`; `after_id` for tailing.
    `limit` keeps the first N, or with `latest=True` the N most recent (still returned oldest first).
    """
    where, params = _where(region=region, table=table, key=key, since_us=since_us, until_us=until_us,
                           after_id=after_id)
    order = "DESC" if latest else "ASC"
    sql = f"SELECT {', '.join(_COLUMNS)} FROM {_table(meta_db)}{where} ORDER BY id {order}"
    if limit is not None:
        sql += " LIMIT %s"
        params.append(int(limit))
    with conn.cursor() as cur:
        cur.execute(sql, params)
        rows = cur.fetchall()
    records = [_record(row) for row in rows]
    return records[::-1] if latest else records


def get(conn: pymysql.Connection, meta_db: str, id: int) -> ConflictRecord | None:
    """The record with this id, or None."""
    with conn.cursor() as cur:
        cur.execute(f"SELECT {', '.join(_COLUMNS)} FROM {_table(meta_db)} WHERE id = %s", (id,))
        row = cur.fetchone()
    return None if row is None else _record(row)


def stats(conn: pymysql.Connection, meta_db: str, *, bucket_s: int, since_us: int | None = None,
          until_us: int | None = None, region: str | None = None, table: str | None = None) -> list[StatsRow]:
    """Counts of records per (time bucket, table, strategy), buckets of `bucket_s` seconds aligned on
    the epoch (UTC), ordered by bucket, table, strategy. Overrides count under strategy "override"."""
    if bucket_s <= 0:
        raise ValueError(f"bucket of {bucket_s} s: must be positive")
    bucket_us = bucket_s * 1_000_000
    where, params = _where(region=region, table=table, key=None, since_us=since_us, until_us=until_us,
                           after_id=None)
    with conn.cursor() as cur:
        cur.execute(
            f"SELECT logged_at_us DIV {bucket_us} * {bucket_us} AS bucket, CONCAT(db, '.', tbl) AS t, "
            f"IF(kind = 'override', 'override', strategy) AS s, COUNT(*) FROM {_table(meta_db)}{where} "
            "GROUP BY bucket, t, s ORDER BY bucket, t, s", params)
        return [StatsRow(int(b), t, s, int(n)) for b, t, s, n in cur.fetchall()]
