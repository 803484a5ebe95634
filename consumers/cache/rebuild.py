"""Repopulate a region's cache from its database: `cdcsync cache rebuild` (after a Redis flush, or
with `force` after a schema change), and the cache sink after a DDL of a table it caches.

Rows are read inside one consistent snapshot and written with the snapshot's binlog position as
their version `_v`, through the cache sink's compare-and-set. Each row's clock is read from
`<meta_db>.row_clocks` inside the same snapshot and written as `_c`: a row without a clock row has
the empty clock `{}` (as the database sink sees it); a table whose keys have no canonical form
(keyless, or an unsupported key type), or a region without `row_clocks` (no `cdcsync init`),
gets no `_c`. So a value the running cache sink wrote from a later change is kept (its clock is
after the snapshot's, or without clocks its `_v` is greater), and a later change the sink applies
after the rebuild wins over the rebuilt value. It is safe to run while the cache sink runs.

`force` rewrites also the entries whose clock equals the row's: the same version, but cached
before a column was added or dropped, so its fields differ from the row's (`CacheWriter.queue_set`
with `reset`). Without it such an entry is kept (equal clocks are the same version).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import orjson

from common.metadata_tables import ROW_CLOCKS
from common.snapshot_reader import ConsistentSnapshot, SnapshotTable, snapshot_key_values
from consumers.cache.sink import CacheWriter
from schemas.cache_layout import cache_key
from consumers.cache.versions import binlog_version
from schemas.config import PipelineConfig
from schemas.identifiers import quote_name
from schemas.row_clock_key import UnsupportedKey, key_hash, row_identity


def rebuild_cache(config: PipelineConfig, region: str, *, table: str | None = None, force: bool = False,
                  progress: Callable[[str, int, int], None] | None = None) -> dict[str, int]:
    """Rebuild every replicated table (or only `db.table`); returns rows written per table.

    `progress(table, done, estimated_total)` is called after every chunk.
    """
    cfg = config.region(region)
    writer = CacheWriter(config, region)
    written: dict[str, int] = {}
    with ConsistentSnapshot(cfg.mysql.reader(), config.meta_db, cfg.producer.snapshot_chunk_rows) as snap:
        assert snap.position is not None
        version = binlog_version(snap.position.file, snap.position.pos)
        tables = snap.tables(cfg.producer, only=table)
        if table is not None and not tables:
            raise ValueError(f"table {table!r} is not a base table in region {region}")
        clocked = _has_row_clocks(snap, config.meta_db)
        for t in tables:
            name = f"{t.db}.{t.table}"
            settings = config.table(t.db, t.table)
            done = 0
            for rows in snap.chunks(t):
                keys = _clock_keys(t, rows) if clocked else None
                counters = _clocks(snap, config.meta_db, t, keys) if keys else {}
                pipe = writer.pipeline()
                for i, row in enumerate(rows):
                    key = cache_key(config.prefix, t.db, t.table, snapshot_key_values(t, row))
                    clock = counters.get(key_hash(keys[i]), {}) if keys else None
                    writer.queue_set(pipe, key, version, row, settings, clock, reset=force)
                pipe.execute()
                done += len(rows)
                if progress is not None:
                    progress(name, done, t.estimated_rows)
            written[name] = done
    writer.client.close()
    return written


def _has_row_clocks(snap: ConsistentSnapshot, meta_db: str) -> bool:
    return bool(snap.query("SELECT 1 FROM information_schema.TABLES WHERE TABLE_SCHEMA = %s AND TABLE_NAME = %s",
                           (meta_db, ROW_CLOCKS)))


def _clock_keys(t: SnapshotTable, rows: list[dict[str, Any]]) -> list[str] | None:
    """The key identity of every row (text folded by collation), or None when the table's rows have no clocks."""
    if not t.has_primary_key:
        return None
    try:
        return [row_identity({c: row[c] for c in t.key_columns}, t.encoder.types, t.fold) for row in rows]
    except UnsupportedKey:
        return None


def _clocks(snap: ConsistentSnapshot, meta_db: str, t: SnapshotTable, keys: list[str]) -> dict[bytes, dict[str, int]]:
    """pk_hash -> clock counters of the chunk's rows that have a `row_clocks` row (read in the snapshot)."""
    hashes = [key_hash(k) for k in keys]
    found = snap.query(f"SELECT pk_hash, counters FROM {quote_name(meta_db)}.{quote_name(ROW_CLOCKS)} "
                       f"WHERE db = %s AND tbl = %s AND pk_hash IN ({', '.join(['%s'] * len(hashes))})",
                       (t.db, t.table, *hashes))
    return {bytes(pk_hash): orjson.loads(_text(counters)) for pk_hash, counters in found}


def _text(value: Any) -> str:
    return value.decode("utf-8") if isinstance(value, (bytes, bytearray)) else str(value)
