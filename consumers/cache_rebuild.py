"""`cdcsync cache rebuild`: repopulate a region's cache from its database (after a Redis flush).

Rows are read inside one consistent snapshot and written with the snapshot's binlog position as
their version, through the cache sink's compare-and-set. A value the running cache sink wrote from
a later change is therefore kept, and a later change the sink applies after the rebuild wins over
the rebuilt value. It is safe to run while the cache sink runs.
"""

from __future__ import annotations

from collections.abc import Callable

from consumers.cache_sink import CacheWriter, cache_key
from consumers.versions import binlog_version
from producers.snapshot_reader import ConsistentSnapshot
from schemas.config import PipelineConfig


def rebuild_cache(config: PipelineConfig, region: str, *, table: str | None = None,
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
        for t in tables:
            name = f"{t.db}.{t.table}"
            settings = config.table(t.db, t.table)
            done = 0
            for rows in snap.chunks(t):
                pipe = writer.pipeline()
                for row in rows:
                    key = cache_key(config.prefix, t.db, t.table, [row[c] for c in t.key_columns])
                    writer.queue_set(pipe, key, version, row, settings)
                pipe.execute()
                done += len(rows)
                if progress is not None:
                    progress(name, done, t.estimated_rows)
            written[name] = done
    writer.client.close()
    return written
