"""Building one table's filter generation from a key scan, safely next to the running stream.

Order matters (docs/lookup.md, "Builds and rebuilds"): the new generation is registered as
`building` first, so every key the maintainer applies from then on goes into it as well; only then
is the consistent snapshot opened and scanned. A key that exists after the snapshot was either in
the snapshot or was written after it, and then its change is applied after the registration. The
swap to `current` is one Lua script, so readers see the old filter or the new one, never a half.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from common.mysql import connect
from common.snapshot_reader import ConsistentSnapshot, snapshot_key_values
from consumers.cache.bloom.format import Sizing, key_text, offsets
from consumers.cache.bloom.policy import capacity_for
from consumers.cache.bloom.store import BloomStore, Generation
from schemas.config import PipelineConfig
from schemas.identifiers import quote_name

log = logging.getLogger(__name__)


def row_count(config: PipelineConfig, region: str, table: str) -> int:
    db, name = table.split(".", 1)
    with connect(config.region(region).mysql) as conn, conn.cursor() as cur:
        cur.execute(f"SELECT COUNT(*) FROM {quote_name(db)}.{quote_name(name)}")
        return int(cur.fetchone()[0])


def build_table(config: PipelineConfig, region: str, store: BloomStore, table: str, lock: threading.Lock,
                on_registered: Callable[[], None]) -> int:
    """Build a new generation of `table`'s filter and swap it in; returns the keys scanned.

    `lock` is the maintainer's apply lock: registration happens between two applied batches, and
    `on_registered` lets the maintainer refresh its list of live generations under it."""
    cfg = config.region(region)
    sizing = Sizing.for_capacity(capacity_for(row_count(config, region, table), config.lookup), config.lookup.fp_rate)
    with lock:
        generation = store.begin_build(table, sizing)
        on_registered()
    try:
        scanned = _scan(config, region, store, table, generation, cfg.producer.snapshot_chunk_rows)
    except BaseException:
        with lock:
            store.abandon_build(table, generation)
            on_registered()
        raise
    with lock:
        store.finish_build(table, generation)
        on_registered()
    log.info("bloom %s: generation %s current (%d keys scanned, capacity %d)", table, generation.gen, scanned,
             sizing.capacity)
    return scanned


def _scan(config: PipelineConfig, region: str, store: BloomStore, table: str, generation: Generation,
          chunk_rows: int) -> int:
    cfg = config.region(region)
    scanned = 0
    with ConsistentSnapshot(cfg.mysql, config.meta_db, chunk_rows) as snap:
        tables = snap.tables(cfg.producer, only=table)
        if not tables:
            raise LookupError(f"table {table} is not a base table in region {region}")
        t = tables[0]
        for rows in snap.chunks(t):
            if not rows:
                continue
            offs = [o for row in rows
                    for o in offsets(generation.sizing, key_text(snapshot_key_values(t, row)))]
            store.add_scanned(table, generation, offs)
            scanned += len(rows)
    return scanned
