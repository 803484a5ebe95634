"""The Bloom filter part of the verdict (docs/lookup.md): no false negative after quiescence.

For every region, once its maintainer has published a freshness proof taken after quiescence (so
its filters hold every change committed before it):

1. every table of the seed has a current filter;
2. every key present in the region's database has all its bits set in that filter ("maybe
   present"): the keys are read by the same consistent key scan a build uses, the bits straight
   from Redis;
3. `CacheReader.lookup_many` finds every present key (it never answers "absent" for one).
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry

from consumers.cache.bloom.format import offsets
from schemas.codec import canonical_pk
from consumers.cache.bloom.store import BloomStore
from consumers.cache.reader import CacheReader
from common.redis_connect import redis_client
from consumers.cache.lookup_metrics import LookupMetrics
from common.snapshot_reader import ConsistentSnapshot, snapshot_key_values
from schemas.config import PipelineConfig
from tests.support.convergence.checker import Problem
from tests.support.producer import wait_until


def _wait_fresh(store: BloomStore, region: str, timeout_s: float) -> str | None:
    """Wait for a proof newer than now; the reason when none comes."""
    wanted = store.now_us()
    try:
        wait_until(lambda: store.fresh_us() >= wanted, timeout=timeout_s, interval=0.2,
                   what=f"a freshness proof of {region}'s Bloom maintainer")
    except AssertionError as err:
        return str(err)
    return None


def bloom_problems(config: PipelineConfig, db: str, *, timeout_s: float = 90.0) -> list[Problem]:
    problems: list[Problem] = []
    for region in config.regions:
        settings = config.region(region)
        client = redis_client(settings.redis)
        try:
            store = BloomStore(client, config.prefix, region)
            late = _wait_fresh(store, region, timeout_s)
            if late is not None:
                problems.append(Problem("bloom", None, f"{region}: {late}"))
                continue
            problems.extend(_region_problems(config, region, db, store))
        finally:
            client.close()
    return problems


def _region_problems(config: PipelineConfig, region: str, db: str, store: BloomStore) -> list[Problem]:
    settings = config.region(region)
    problems: list[Problem] = []
    with ConsistentSnapshot(settings.mysql, config.meta_db) as snap, \
            CacheReader(config, region, metrics=LookupMetrics(region, CollectorRegistry())) as reader:
        for table in snap.tables(settings.producer):
            if table.db != db:
                continue
            name = f"{table.db}.{table.table}"
            rows = [row for chunk in snap.chunks(table) for row in chunk]
            keys = [snapshot_key_values(table, row) for row in rows]     # text keys by their fold, as filters hold them
            generation = store.current(name)
            if generation is None:
                problems.append(Problem("bloom", None, f"{region}: {name} has no current filter "
                                                       f"({len(keys)} rows)"))
                continue
            bits = store.keys.bits(name, generation.gen)
            pipe = store.client.pipeline(transaction=False)
            for values in keys:
                for offset in offsets(generation.sizing, canonical_pk(values)):
                    pipe.getbit(bits, offset)
            replies = pipe.execute()
            slices = generation.sizing.slices
            missing = [canonical_pk(values) for i, values in enumerate(keys)
                       if not all(replies[i * slices:(i + 1) * slices])]
            if missing:
                problems.append(Problem("bloom", None, f"{region}: {len(missing)} of {len(keys)} keys of {name} "
                                                       f"absent from filter {generation.gen} (false negatives): "
                                                       f"{missing[:10]}"))
            if rows:
                # As an application asks: the key as stored (CacheReader folds it itself).
                asked = [[row[c] for c in table.key_columns] for row in rows]
                answers = reader.lookup_many(name, asked)
                absent = [f"{k} ({a.layer})" for k, a in zip(asked, answers, strict=True) if a.row is None]
                if absent:
                    problems.append(Problem("bloom", None, f"{region}: CacheReader answered absent for "
                                                           f"{len(absent)} present keys of {name}: {absent[:10]}"))
    return problems
