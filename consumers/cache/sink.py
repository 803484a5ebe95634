"""The cache sink: a region's own change events -> its Redis, never moving a key backwards.

The layout of keys and fields is the contract in schemas/cache_layout.py; in short, key
`<prefix>:<db>.<table>:<canonical pk>` (text folded by collation: `event_key_values`), a Redis hash holding the row and its versions:
- `cache_format = "hash"`: one field per column, each value JSON-encoded (`"42"`, `"\\"text\\""`);
- `cache_format = "json"`: one field `_json` with the whole row as a JSON object;
- `_v`: the binlog-position version (consumers/cache/versions.py), always written;
- `_c`: the version's vector-clock counters as compact JSON with sorted keys (`{"eu":2,"us":1}`),
  written when the version has a clock (the event's `vclock`, or `row_clocks` for a rebuild).
A delete leaves a tombstone (`_v`, `_c` and `_deleted = 1`) that expires after
`cache_tombstone_ttl_s`, so a replayed older insert cannot bring the row back; readers treat a
tombstone as absent.

Every write goes through one Lua script (`CAS_SCRIPT`) that decides against the stored entry:
1. both the stored entry and the new version have a clock: write only if the new clock is strictly
   after the stored one; equal or before is skipped, so a cache never holds a version that its
   database replaced (the database sink's decision made the later version dominate it);
2. the clocks are concurrent, or either side has none: write only if the new `_v` is greater. A
   region's own stream orders the versions of a key by commit, so for the sink's writes this only
   backs the clocks up.
Writes of a batch are pipelined.

`_v` orders one binlog history only. After RESET MASTER or a failover (a new producer epoch,
common/checkpoint_store.py) the positions restart lower, so a version without a clock would lose to
the old history's entries: the sink logs the new epoch and counts it
(`cdcsync_sink_source_resets_total{sink="cache"}`); flush the region's cache and run `cdcsync cache
rebuild` (docs/apply.md, "Cache versions"). Versions with clocks are decided by the clocks and unaffected. `CacheWriter.queue_read_through` is the separate rule for a
reader that fills the cache from the database (see its docstring).

Schema changes: the sink also reads the region's `_schema` topic. After an `ALTER TABLE` of a table
of its region, the rows it cached before have other fields than the table's rows now (a column
added or dropped); once the batch's row changes are written it rewrites that table's cached rows
from a consistent snapshot of the database (consumers/cache/rebuild.py with `force`: an entry
whose clock equals the row's is rewritten too, a newer one is kept). Tombstones and absent keys are
left alone, so the Bloom filters and the lookups' freshness proof are unaffected. The rebuild
blocks the sink for as long as it reads the table; a failure is retried, then stops the sink with
the DDL not committed, so it is refreshed again after the restart.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Mapping
from typing import Any

import redis

from common.redis_connect import redis_client
from common.retry import RetryPolicy
from consumers.cache.versions import event_version
from consumers.metrics import SinkMetrics
from consumers.records import SourceRecord
from schemas.cache_layout import READ_THROUGH_VERSION, cache_key, clock_json, event_key_values, row_fields
from schemas.config import PipelineConfig, TableConfig
from schemas.events import ChangeEvent, DdlEvent, Op

log = logging.getLogger(__name__)


# KEYS[1] row key. ARGV: version, mode, ttl seconds (0 = none), clock JSON ('' = none), field, value, ...
# mode: 'set' | 'del' (a tombstone) compare as the module docstring says; 'reset' is 'set' that also
# rewrites an entry whose clock equals the new one (same version, other columns: a schema change);
# 'fill-set' | 'fill-del' are
# read-through fills: only into an absent key, or over a stored clock strictly before the new one.
# Returns 1 when written, 0 when skipped.
CAS_SCRIPT = """
local function order(a, b)  -- a against b: 'before', 'after', 'equal' or 'concurrent'
  local less, greater = false, false
  for region, n in pairs(a) do
    local m = b[region] or 0
    if n < m then less = true elseif n > m then greater = true end
  end
  for region, m in pairs(b) do
    if a[region] == nil and m > 0 then less = true end
  end
  if less and greater then return 'concurrent' end
  if less then return 'before' end
  if greater then return 'after' end
  return 'equal'
end
local stored = redis.call('HMGET', KEYS[1], '_v', '_c')
local current, clock, mode = stored[1], stored[2], ARGV[2]
local fill = string.sub(mode, 1, 5) == 'fill-'
if fill then
  if redis.call('EXISTS', KEYS[1]) == 1 then
    if not clock or ARGV[4] == '' then return 0 end
    if order(cjson.decode(ARGV[4]), cjson.decode(clock)) ~= 'after' then return 0 end
  end
else
  local newer = false
  if clock and ARGV[4] ~= '' then
    local o = order(cjson.decode(ARGV[4]), cjson.decode(clock))
    if o == 'after' or (mode == 'reset' and o == 'equal') then newer = true elseif o ~= 'concurrent' then return 0 end
  end
  if not newer and current and current >= ARGV[1] then return 0 end
end
redis.call('DEL', KEYS[1])
local meta = {'_v', ARGV[1]}
if ARGV[4] ~= '' then meta[3] = '_c'; meta[4] = ARGV[4] end
if mode == 'del' or mode == 'fill-del' then
  redis.call('HSET', KEYS[1], '_deleted', '1', unpack(meta))
else
  redis.call('HSET', KEYS[1], unpack(meta))
  if #ARGV > 4 then redis.call('HSET', KEYS[1], unpack(ARGV, 5)) end
end
local ttl = tonumber(ARGV[3])
if ttl > 0 then redis.call('EXPIRE', KEYS[1], ttl) end
return 1
"""


class CacheWriter:
    """Version-checked writes to one region's Redis (shared by the sink, `cache rebuild` and readers).

    `counters` is the version's vector-clock counters (region -> counter), or None when it has no
    clock; it is stored as `_c` (`clock_json`). Each `queue_*` adds one script call to `pipe`, whose
    result is 1 when the write was made and 0 when it was skipped.
    """

    def __init__(self, config: PipelineConfig, region: str) -> None:
        self.config = config
        self.client = redis_client(config.region(region).redis, report=True)
        self._cas = self.client.register_script(CAS_SCRIPT)

    def queue_set(self, pipe: Any, key: str, version: str, row: dict[str, Any], table: TableConfig,
                  counters: Mapping[str, int] | None = None, *, reset: bool = False) -> None:
        """`reset`: also over an entry with an equal clock (the same version with other columns)."""
        self._cas(keys=[key], args=[version, "reset" if reset else "set", table.cache_ttl_s or 0,
                                    clock_json(counters), *row_fields(row, table)], client=pipe)

    def queue_delete(self, pipe: Any, key: str, version: str, counters: Mapping[str, int] | None = None) -> None:
        self._cas(keys=[key], args=[version, "del", self.config.cache_tombstone_ttl_s, clock_json(counters)],
                  client=pipe)

    def queue_read_through(self, pipe: Any, key: str, counters: Mapping[str, int] | None,
                           row: dict[str, Any] | None, table: TableConfig) -> None:
        """Fill the cache with a version read from the database (a read-through miss).

        `counters`: the row's clock counters read from `row_clocks` in the same transaction as the
        row (`{}` for a row without a clock row, None when the table has no clocks); `row`: the row's
        wire values, or None for a row that does not exist (a tombstone is written, expiring after
        `cache_tombstone_ttl_s`; a live row expires after the table's `cache_ttl_s`, if any).

        Written only if the key is absent, or its stored `_c` is strictly before `counters`. Never
        over an entry without `_c` (its version is unknown), nor over an equal, later or concurrent
        clock. `_v` is `READ_THROUGH_VERSION` (""), below every binlog version: the cache sink's
        next change of the key then replaces the fill when it has no clock, and when it has one,
        the clocks decide as usual (equal or before is skipped). So a fill can never hide a change
        the sink applied, and a fill that raced the sink (it read an older version) loses.
        """
        if row is None:
            args = [READ_THROUGH_VERSION, "fill-del", self.config.cache_tombstone_ttl_s, clock_json(counters)]
        else:
            args = [READ_THROUGH_VERSION, "fill-set", table.cache_ttl_s or 0, clock_json(counters),
                    *row_fields(row, table)]
        self._cas(keys=[key], args=args, client=pipe)

    def pipeline(self) -> Any:
        return self.client.pipeline(transaction=False)


class CacheSink:
    """Owned by one thread. `write_batch` returns once Redis has taken every write."""

    name = "cache"

    def __init__(self, config: PipelineConfig, region: str, metrics: SinkMetrics,
                 retry: RetryPolicy | None = None) -> None:
        self.config = config
        self.region = region
        self.writer = CacheWriter(config, region)
        self.metrics = metrics
        sink = config.region(region).sink
        cache = config.region(region).redis
        self.retry = retry or RetryPolicy(sink.retry_max_attempts, sink.retry_base_ms, sink.retry_max_ms,
                                          on_retry=lambda e, n, d: metrics.retried(self.name),
                                          server=f"Redis {cache.host}:{cache.port}", connection_lost=_transient)
        self.last_written = 0  # how many CAS writes the last batch won (tests read it)
        self._epochs: dict[tuple[str, int], str] = {}   # the producer epoch last seen per partition

    def write_batch(self, records: list[SourceRecord]) -> None:
        latest: dict[str, ChangeEvent] = {}
        altered: list[str] = []   # `db.table` of the batch's ALTER TABLEs of this region
        skipped = {"not_a_row_change": 0, "forwarded": 0}   # counted once per batch: a metric per event costs
        for record in records:  # one key is always on one partition, so this order is its order
            event = record.event
            if (isinstance(event, DdlEvent) and event.partitions is None and _alters_columns(event)
                    and event.region == self.region):   # from `_schema` (a marker on a change topic is not)
                name = f"{event.db}.{event.table}"
                if name not in altered:
                    altered.append(name)
                continue
            if not isinstance(event, ChangeEvent) or event.op is Op.TRUNCATE:
                skipped["not_a_row_change"] += 1
                continue
            if event.region != self.region:   # a star hub's forwarded version, not its database's state
                skipped["forwarded"] += 1
                continue
            self._check_epoch(record, event)
            key = cache_key(self.config.prefix, event.db, event.table, event_key_values(event))
            latest.pop(key, None)
            latest[key] = event
        for reason, count in skipped.items():
            if count:
                self.metrics.skipped(self.name, reason, count)
        if latest:
            self._write_latest(latest)
        for table in altered:
            self._refresh(table)

    def _refresh(self, table: str) -> None:
        """Rewrite the table's cached rows from the database after an ALTER of it (module docstring)."""
        from common.retry import is_transient
        from consumers.cache.rebuild import rebuild_cache

        started = time.perf_counter()
        written = self.retry.run(lambda: rebuild_cache(self.config, self.region, table=table, force=True),
                                 transient=lambda e: is_transient(e) or _transient(e))
        log.info("%s: altered; rewrote its %d cached rows from the database in %.1fs", table,
                 sum(written.values()), time.perf_counter() - started)

    def _write_latest(self, latest: dict[str, ChangeEvent]) -> None:
        started = time.perf_counter()
        results = self.retry.run(lambda: self._write(latest), transient=_transient)
        self.last_written = sum(1 for r in results if r == 1)
        self.metrics.applied(self.name, len(latest), time.perf_counter() - started)
        if len(latest) > self.last_written:
            self.metrics.skipped(self.name, "older_than_cache", len(latest) - self.last_written)

    def _check_epoch(self, record: SourceRecord, event: ChangeEvent) -> None:
        """A new producer epoch restarts binlog positions: say so (see the module docstring)."""
        if event.epoch is None:
            return
        seen = self._epochs.get((record.topic, record.partition))
        self._epochs[(record.topic, record.partition)] = event.epoch
        if seen is not None and seen != event.epoch:
            self.metrics.source_reset(self.name, "epoch_changed")
            log.warning("%s[%d]@%d: the source's producer epoch changed (%s -> %s): its binlog positions restarted. "
                        "Cached rows of tables without clocks keep their old versions until you flush the cache and "
                        "run `cdcsync cache rebuild --region %s`", record.topic, record.partition, record.offset,
                        seen, event.epoch, self.region)

    def _write(self, latest: dict[str, ChangeEvent]) -> list[Any]:
        pipe = self.writer.pipeline()
        for key, event in latest.items():
            version = event_version(event)
            counters = event.vclock.counters if event.vclock is not None else None
            if event.op is Op.DELETE:
                self.writer.queue_delete(pipe, key, version, counters)
            else:
                self.writer.queue_set(pipe, key, version, event.after or {},
                                      self.config.table(event.db, event.table), counters)
        return pipe.execute()

    def close(self) -> None:
        self.writer.client.close()


def _transient(err: BaseException) -> bool:
    return isinstance(err, (redis.ConnectionError, redis.TimeoutError, redis.BusyLoadingError))


def _alters_columns(event: DdlEvent) -> bool:
    """An ALTER TABLE (whatever it changes: a column added, dropped, renamed or retyped changes
    the cached fields or their values' form; an index alone costs one needless refresh)."""
    return event.table is not None and _ALTER.match(event.statement) is not None


_ALTER = re.compile(r"\s*(?:/\*.*?\*/\s*)*ALTER\s", re.IGNORECASE | re.DOTALL)
