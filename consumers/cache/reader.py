"""`CacheReader`: read rows through a region's cache, with a Bloom filter against cache penetration.

    reader = CacheReader(config, "eu")
    row = reader.get("shop.users", 42)              # dict, or None if the row does not exist
    rows = reader.get_many("shop.users", [1, 2, 3])

A lookup goes, per key: the cache (the cache sink's hash; a tombstone counts as a miss) -> the
table's Bloom filter and the negative cache -> the region's database by primary key. A row found
in the database is written back with the cache sink's read-through fill (`CacheWriter.
queue_read_through`), a compare-and-set that never replaces a newer value; a row not found gets a
short-TTL `absent` negative entry (`lookup.negative_ttl_s`), which absorbs repeated false positives.

No false negatives: an `absent` answer from the filter or the negative cache is given only once
the filter has proven it covers every change committed before the lookup started (the
maintainer's freshness proof, `_fresh`, compared on the Redis clock inside the lookup script). If
no proof arrives within `lookup.freshness_wait_ms`, or the newest proof is older than that, the
database answers instead. See docs/lookup.md.

Keys are primary-key values in key order, as the change events carry them: a scalar for a one-
column key, else a list or tuple. Not thread-safe: use one reader per thread.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import orjson
import pymysql

from common.metadata_tables import ROW_CLOCKS
from common.mysql import connect
from common.snapshot_encoding import SnapshotEncoder
from common.table_catalog import snapshot_columns
from consumers.cache.bloom.format import FORMAT, key_text, offsets
from consumers.cache.bloom.store import BloomStore, Generation
from consumers.cache.lookup_metrics import LookupMetrics
from consumers.cache.sink import JSON_FIELD, CacheWriter, cache_key, decode_row
from schemas import key_fold
from schemas.config import PipelineConfig
from schemas.identifiers import quote_name
from schemas.row_clock_key import UnsupportedKey, sql_key_identity

# One call per batch of keys. KEYS: table head, generation meta, bitmap, proof. ARGV: the generation the
# caller hashed for ('' = none), the format, then per key: cache key, negative key, its bit offsets
# (comma-separated). The per-key names are arguments, not KEYS: a region's cache is one Redis
# server, never a cluster. Returns {now, proof, 'stale'} when the caller's generation is not current
# (reload and retry), else {now, proof, 'ok', answer per key}: the cached fields (a hit), 2 (negative
# entry), 3 (the filter rejects the key), or why the database must answer.
LOOKUP_SCRIPT = """
local current = redis.call('HGET', KEYS[1], 'current') or ''
if redis.call('HGET', KEYS[1], 'format') ~= ARGV[2] then current = '' end
local t = redis.call('TIME')
local now = tostring(t[1]) .. string.format('%06d', tonumber(t[2]))
local proof = redis.call('GET', KEYS[4]) or '0'
if current ~= ARGV[1] then return {now, proof, 'stale'} end
local out = {now, proof, 'ok'}
local rejected = 0
for i = 3, #ARGV, 3 do
  local row = redis.call('HGETALL', ARGV[i])
  local dead = false
  for j = 1, #row, 2 do if row[j] == '_deleted' and row[j + 1] == '1' then dead = true end end
  local answer
  if #row > 0 and not dead then
    answer = row
  else
    local neg = redis.call('GET', ARGV[i + 1])
    if neg == 'absent' then answer = 2
    elseif current == '' then answer = 'no_filter'
    elseif neg == 'inserted' then answer = 'recent_insert'
    else
      answer = 'filter_positive'
      for offset in string.gmatch(ARGV[i + 2], '%d+') do
        if redis.call('GETBIT', KEYS[3], offset) == 0 then
          answer = 3
          rejected = rejected + 1
          break
        end
      end
    end
  end
  out[#out + 1] = answer
end
if rejected > 0 then redis.call('HINCRBY', KEYS[2], 'rejected', rejected) end
return out
"""

BATCH = 1000     # keys per lookup script call: bounds how long one call holds the Redis server


@dataclass(frozen=True, slots=True)
class Lookup:
    """One key's answer: the row (or None), the layer that answered, and why the database was asked."""

    row: dict[str, Any] | None
    layer: str
    detail: str = ""


@dataclass(frozen=True, slots=True)
class _TableInfo:
    db: str
    table: str
    encoder: SnapshotEncoder
    key_columns: tuple[str, ...]
    clock_expression: str | None     # SQL of the row's key identity (row_clocks.pk_hash), None without clocks
    fold: dict[str, str]             # key column -> collation, for text key columns that fold

    def key_values(self, pk: Any) -> list[Any]:
        """An application's key (one value or a list in key order) as the cache names it: text
        folded by its collation, so every spelling the database matches finds the same entry."""
        values = _pk_list(pk)
        if not self.fold:
            return values
        named = dict(zip(self.key_columns, values))
        return key_fold.key_values(named, key_fold.fold_pk(named, self.fold))


def _pk_list(pk: Any) -> list[Any]:
    return list(pk) if isinstance(pk, (list, tuple)) else [pk]


@dataclass(frozen=True, slots=True)
class _HitPath:
    """What a cache hit of one table needs, resolved once: the cache-key prefix, how to read the
    row in one command, and the `cache_hit` counter child (no label lookup per call).

    A `json` table's row is the one `_json` field: HGET replies with just that value, as a GET would.
    A tombstone never has it (the cache sink's CAS script deletes the hash before each write), so
    HGET's nil is every kind of miss. A `hash` table needs HGETALL, and `decode_row` drops tombstones.
    A nil or empty reply is only "not a plain hit": `lookup_many` then decides, so a hash left in
    the other format (after a `cache_format` change) is still found there."""

    prefix: bytes
    hash_format: bool
    counter: Any
    info: _TableInfo

    def key(self, pk: Any) -> bytes:
        return self.prefix + orjson.dumps(self.info.key_values(pk))

    def read(self, client: Any, key: bytes) -> Any:
        return client.hgetall(key) if self.hash_format else client.hget(key, JSON_FIELD)

    def row(self, reply: Any) -> dict[str, Any] | None:
        """`read`'s reply as a row; None when it is not a plain hit."""
        if self.hash_format:
            return decode_row(reply)
        return None if reply is None else orjson.loads(reply)


class CacheReader:
    def __init__(self, config: PipelineConfig, region: str, *, metrics: LookupMetrics | None = None,
                 use_filter: bool = True) -> None:
        """`use_filter=False` is a plain read-through cache (every miss asks the database): for
        comparisons, and as the fallback if the filters must be turned off."""
        self.config = config
        self.region = region
        self.settings = config.region(region)
        self._writer = CacheWriter(config, region)      # the cache sink's writer: its read-through fill
        self.redis = self._writer.client
        self.store = BloomStore(self.redis, config.prefix, region)
        self.metrics = metrics or LookupMetrics(region)
        self._lookup = self.redis.register_script(LOOKUP_SCRIPT)
        self._views: dict[str, Generation | None] = {}
        self._tables: dict[str, _TableInfo] = {}
        self._conn: pymysql.Connection | None = None
        self.use_filter = use_filter
        self._hit_paths: dict[str, _HitPath] = {}
        self.db_queries = 0           # statements this reader sent to the database

    # -- public -----------------------------------------------------------------------------------
    def get(self, table: str, pk: Any) -> dict[str, Any] | None:
        hit = self._hit_path(table)
        row = hit.row(hit.read(self.redis, hit.key(pk)))
        if row is not None:
            hit.counter.inc()
            return row
        return self.lookup_many(table, [pk])[0].row

    def get_many(self, table: str, pks: Sequence[Any]) -> list[dict[str, Any] | None]:
        hit = self._hit_path(table)
        rows: list[dict[str, Any] | None] = [None] * len(pks)
        misses: list[int] = []
        for chunk in range(0, len(pks), BATCH):
            pipe = self.redis.pipeline(transaction=False)
            for pk in pks[chunk:chunk + BATCH]:
                hit.read(pipe, hit.key(pk))
            for i, reply in enumerate(pipe.execute(), chunk):
                row = hit.row(reply)
                if row is None:
                    misses.append(i)
                else:
                    rows[i] = row
        if len(misses) < len(pks):
            hit.counter.inc(len(pks) - len(misses))
        if misses:
            for i, answer in zip(misses, self.lookup_many(table, [pks[i] for i in misses])):
                rows[i] = answer.row
        return rows

    def lookup_many(self, table: str, pks: Sequence[Any]) -> list[Lookup]:
        """`get_many` with the layer that answered each key (what `cdcsync lookup --explain` shows)."""
        if table.count(".") != 1:
            raise ValueError(f"table {table!r} must be `db.table`")
        db, name = table.split(".")
        info = self._table_info(table)
        named = [info.key_values(pk) for pk in pks]
        texts = [key_text(values) for values in named]
        keys = [cache_key(self.config.prefix, db, name, values) for values in named]
        answers: list[Lookup | None] = [None] * len(pks)
        to_db: dict[int, str] = {}
        misses = list(range(len(pks)))
        if not self.use_filter:
            pipe = self.redis.pipeline(transaction=False)
            for key in keys:
                pipe.hgetall(key)
            for i, fields in enumerate(pipe.execute()):
                row = decode_row(fields)
                if row is not None:
                    answers[i] = Lookup(row, "cache_hit")
                else:
                    to_db[i] = "filter_disabled"
            misses = []
        started: dict[int, int] = {}     # index -> Redis µs of its first filter check: after the lookup began
        offsets_of: dict[tuple[str, int], str] = {}
        for _ in range(4):
            if not misses:
                break
            view = self._view(table)
            again, unproven = [], []
            for chunk in range(0, len(misses), BATCH):
                indexes = misses[chunk:chunk + BATCH]
                args: list[Any] = [view.gen if view else "", FORMAT]
                for i in indexes:
                    if view is not None and (view.gen, i) not in offsets_of:
                        offsets_of[(view.gen, i)] = ",".join(map(str, offsets(view.sizing, texts[i])))
                    args += [keys[i], self.store.keys.neg(table, texts[i]), offsets_of.get((view.gen, i), "")
                             if view else ""]
                k = self.store.keys
                gen = view.gen if view else ""
                result = self._lookup(keys=[k.table(table), k.gen_meta(table, gen), k.bits(table, gen), k.fresh],
                                      args=args)
                now, proof = int(result[0]), int(result[1])
                if result[2] == b"stale":
                    self._views.pop(table, None)
                    again.extend(indexes)
                    continue
                for i, answer in zip(indexes, result[3:]):
                    if isinstance(answer, list):
                        answers[i] = Lookup(decode_row(dict(zip(answer[::2], answer[1::2]))), "cache_hit")
                    elif isinstance(answer, int):
                        start = started.setdefault(i, now)
                        if proof >= start:
                            # The proof was stored before this check: the bits checked hold every key
                            # committed before the lookup began.
                            layer = "negative_cache_hit" if answer == 2 else "filter_rejected"
                            answers[i] = Lookup(None, layer, f"lookup at {start} us, filter proven fresh at {proof} us")
                        else:
                            unproven.append(i)
                    else:
                        to_db[i] = answer.decode()
            if unproven:
                # Wait for a proof covering the oldest start, then check those keys again: bits
                # checked before the proof was stored may miss a key it covers.
                if self._await_proof(table, max(started[i] for i in unproven)):
                    again.extend(unproven)
                else:
                    to_db.update((i, "filter_unproven") for i in unproven)
            misses = again
        for i in misses:
            to_db[i] = "filter_changing"
        if to_db:
            self._from_db(table, texts, keys, to_db, answers, [_pk_list(pk) for pk in pks])
        counts: dict[str, int] = {}
        for answer in answers:
            assert answer is not None
            counts[answer.layer] = counts.get(answer.layer, 0) + 1
        for layer, count in counts.items():
            self.metrics.answered(table, layer, count)
        return answers  # type: ignore[return-value]

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None
        self.redis.close()

    def __enter__(self) -> "CacheReader":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _hit_path(self, table: str) -> _HitPath:
        hit = self._hit_paths.get(table)
        if hit is None:
            if table.count(".") != 1:
                raise ValueError(f"table {table!r} must be `db.table`")
            db, name = table.split(".")
            hit = self._hit_paths[table] = _HitPath(
                cache_key(self.config.prefix, db, name, []).removesuffix("[]").encode(),
                self.config.table(db, name).cache_format != "json",
                self.metrics.lookups.labels(self.region, table, "cache_hit"), self._table_info(table))
        return hit

    # -- filter and proof -------------------------------------------------------------------------
    def _view(self, table: str) -> Generation | None:
        if table not in self._views:
            self._views[table] = self.store.current(table)
        return self._views[table]

    def _await_proof(self, table: str, needed: int) -> bool:
        """Wait (up to `freshness_wait_ms`) for a freshness proof at or after `needed` (Redis µs).
        Gives up at once when the newest proof is older than the wait: the maintainer is down or far
        behind, and the database answers."""
        wait_us = self.config.lookup.freshness_wait_ms * 1000
        fresh = self.store.fresh_us()
        if fresh >= needed:
            return True
        if needed - fresh <= wait_us:
            self.redis.set(self.store.keys.wanted, 1, px=1000)
            deadline = time.monotonic() + wait_us / 1e6
            while time.monotonic() < deadline:
                time.sleep(0.005)
                if self.store.fresh_us() >= needed:
                    return True
        self.metrics.unproven.labels(self.region, table).inc()
        return False

    # -- database ---------------------------------------------------------------------------------
    def _connection(self) -> pymysql.Connection:
        if self._conn is None:
            self._conn = connect(self.settings.mysql, autocommit=True)
            with self._conn.cursor() as cur:
                cur.execute("SET SESSION time_zone = '+00:00'")   # TIMESTAMP text in UTC, as on the wire
        return self._conn

    def _table_info(self, table: str) -> _TableInfo:
        info = self._tables.get(table)
        if info is None:
            db, name = table.split(".")
            conn = self._connection()
            meta = snapshot_columns(conn, db, name)
            if not meta.primary_key:
                raise ValueError(f"table {table} has no primary key; CacheReader looks rows up by primary key")
            with conn.cursor() as cur:
                cur.execute("SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA = %s "
                            "AND TABLE_NAME = %s", (self.config.meta_db, ROW_CLOCKS))
                has_clocks = bool(cur.fetchone()[0])
            types = {c.name: c.column_type for c in meta.columns}
            collations = meta.key_collations()
            fold = key_fold.folding(collations, table)
            with conn.cursor() as cur:
                key_fold.ensure(cur, fold)
            expression = None
            if has_clocks:
                try:
                    expression = sql_key_identity([(c, types[c], collations.get(c)) for c in meta.primary_key], "t")
                except UnsupportedKey:
                    expression = None
            info = self._tables[table] = _TableInfo(db, name, SnapshotEncoder(meta), tuple(meta.primary_key),
                                                    expression, fold)
        return info

    def _from_db(self, table: str, texts: list[str], keys: list[str], to_db: dict[int, str],
                 answers: list[Lookup | None], pks: list[list[Any]]) -> None:
        info = self._table_info(table)
        wanted: dict[str, list[int]] = {}
        for i in to_db:
            wanted.setdefault(texts[i], []).append(i)
        started = time.monotonic()
        # One primary-key point query per key: a key that reaches the database costs exactly one
        # statement, which is what the penetration bound counts.
        found = {}
        for indexes in wanted.values():
            found.update(self._select(info, [pks[indexes[0]]]))
        settings = self.config.table(info.db, info.table)
        view = self._views.get(table)
        pipe = self.redis.pipeline(transaction=False)
        fp = 0
        negative_safe = time.monotonic() - started < self.config.lookup.negative_ttl_s / 2
        for text, indexes in wanted.items():
            hit = found.get(text)
            if hit is not None:
                row, clock = hit
                self._writer.queue_read_through(pipe, keys[indexes[0]], clock, row, settings)
            else:
                if negative_safe:
                    # NX: an `inserted` entry the maintainer wrote meanwhile must win.
                    pipe.set(self.store.keys.neg(table, text), "absent", nx=True, ex=self.config.lookup.negative_ttl_s)
                if any(to_db[i] == "filter_positive" for i in indexes):
                    fp += 1
            for i in indexes:
                answers[i] = Lookup(hit[0] if hit else None, "db_hit" if hit else "db_miss", to_db[i])
        if fp and view is not None:
            pipe.hincrby(self.store.keys.gen_meta(table, view.gen), "fp", fp)
        pipe.execute()

    def _select(self, info: _TableInfo,
                pks: list[list[Any]]) -> dict[str, tuple[dict[str, Any], dict[str, int] | None]]:
        """Rows by primary key, each with its clock, read in one statement (one read view)."""
        source = f"{quote_name(info.db)}.{quote_name(info.table)}"
        columns = ", ".join(quote_name(c) for c in info.key_columns)
        one = "(" + ", ".join(["%s"] * len(info.key_columns)) + ")"
        clock = ""
        params: list[Any] = []
        if info.clock_expression is not None:
            clock = (f", (SELECT rc.counters FROM {quote_name(self.config.meta_db)}.{quote_name(ROW_CLOCKS)} rc "
                     f"WHERE rc.db = %s AND rc.tbl = %s AND rc.pk_hash = UNHEX(SHA2({info.clock_expression}, 256)))")
            params += [info.db, info.table]
        sql = (f"SELECT {info.encoder.select_list}{clock} FROM {source} AS t "
               f"WHERE ({columns}) IN ({', '.join([one] * len(pks))})")
        params += [v for pk in pks for v in pk]
        with self._connection().cursor() as cur:
            cur.execute(sql, params)
            rows = cur.fetchall()
        self.db_queries += 1
        width = len(info.encoder.types)
        result = {}
        for raw in rows:
            row = info.encoder.encode_row(raw[:width])
            # {} for a row without a clock row yet, None when the table has no clocks at all.
            counters = None if info.clock_expression is None else orjson.loads(raw[width] or "{}")
            result[key_text(info.key_values([row[c] for c in info.key_columns]))] = (row, counters)
        return result
