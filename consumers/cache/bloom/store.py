"""Where a region's Bloom filters live: in the region's Redis, shared by every process.

Keys (`<p>` = `<prefix>:bloom:<region>`; a table key always holds a dot, the region keys never):

| key | type | holds |
|---|---|---|
| `<p>:<db>.<table>` | hash | `format`, `current` generation, `building` generation (during a rebuild) |
| `<p>:<db>.<table>:g:<gen>` | hash | sizing, `rows_at_build`, `added` (new keys), `deleted`, `rejected`, `fp` |
| `<p>:<db>.<table>:g:<gen>:bits` | string | the bitmap |
| `<p>:_positions` | hash | `<topic>|<partition>` -> next offset the filters have not applied yet |
| `<p>:_fresh` | string | Redis-clock µs: every change committed before it is in the filters (the proof) |
| `<p>:_tables` | set | tables that have a filter |
| `<p>:_wanted` | string | set (1 s TTL) by a reader waiting for a proof: the maintainer proves more often |
| `<p>:_lease` | string | the one running maintainer's id (expires) |
| `<prefix>:neg:<db>.<table>:<pk json>` | string | negative cache: `absent` (from a database read) or `inserted` |

Only the maintainer (`cdcsync bloom`, one per region, held by the lease) writes filters, positions
and the proof; bits and positions of a batch are written in one MULTI, so the bits always cover
the positions stored with them (also after a Redis restart from a snapshot). Readers only read
(and count their answers in `rejected` / `fp`).
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field

import redis

from consumers.cache.bloom.format import FORMAT, Sizing, offsets

# KEYS[1] bitmap, KEYS[2] generation meta. ARGV[1] offsets per key, ARGV[2] the counter to add the
# new keys to, then the offsets, key after key. A key whose bits were all set already is (most
# likely) in the filter: it is not counted again, so replayed and re-scanned keys do not look like growth.
SETBITS_SCRIPT = """
local k = tonumber(ARGV[1])
local new = 0
for i = 3, #ARGV, k do
  local fresh = 0
  for j = i, i + k - 1 do fresh = fresh + (1 - redis.call('SETBIT', KEYS[1], ARGV[j], 1)) end
  if fresh > 0 then new = new + 1 end
end
if new > 0 then redis.call('HINCRBY', KEYS[2], ARGV[2], new) end
return new
"""

# KEYS[1] table hash, KEYS[2] new generation's meta, KEYS[3] new bits. ARGV[1] new gen, ARGV[2] key prefix
# of generations. The swap: readers check `current` inside their own script, so none ever reads the
# old bits after this runs, and none reads the new ones before.
SWAP_SCRIPT = """
local old = redis.call('HGET', KEYS[1], 'current')
if redis.call('HGET', KEYS[1], 'building') ~= ARGV[1] then return 0 end
redis.call('HSET', KEYS[1], 'current', ARGV[1], 'format', ARGV[3])
redis.call('HDEL', KEYS[1], 'building')
redis.call('HSET', KEYS[2], 'built_at_ms', ARGV[4])
if old and old ~= ARGV[1] then
  redis.call('DEL', ARGV[2] .. old, ARGV[2] .. old .. ':bits')
end
return 1
"""

LEASE_SCRIPT = """
local holder = redis.call('GET', KEYS[1])
if holder and holder ~= ARGV[1] then return 0 end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return 1
"""


class BloomKeys:
    def __init__(self, prefix: str, region: str) -> None:
        self.prefix = prefix
        self.base = f"{prefix}:bloom:{region}"

    def table(self, table: str) -> str:
        return f"{self.base}:{table}"

    def gen_prefix(self, table: str) -> str:
        return f"{self.base}:{table}:g:"

    def gen_meta(self, table: str, gen: str) -> str:
        return f"{self.base}:{table}:g:{gen}"

    def bits(self, table: str, gen: str) -> str:
        return f"{self.base}:{table}:g:{gen}:bits"

    @property
    def positions(self) -> str:
        return f"{self.base}:_positions"

    @property
    def fresh(self) -> str:
        return f"{self.base}:_fresh"

    @property
    def tables(self) -> str:
        return f"{self.base}:_tables"

    @property
    def wanted(self) -> str:
        return f"{self.base}:_wanted"

    @property
    def lease(self) -> str:
        return f"{self.base}:_lease"

    def neg(self, table: str, key: str) -> str:
        return f"{self.prefix}:neg:{table}:{key}"


@dataclass(frozen=True, slots=True)
class Generation:
    gen: str
    sizing: Sizing


@dataclass(slots=True)
class FilterStats:
    """One table's current filter, as the maintainer and metrics see it."""

    table: str
    gen: str
    sizing: Sizing
    added: int = 0
    deleted: int = 0
    rows_at_build: int = 0
    built_at_ms: int = 0
    rejected: int = 0
    fp: int = 0
    building: str | None = None
    bitmap_bytes: int = 0
    extra: dict[str, str] = field(default_factory=dict)

    @property
    def keys(self) -> int:
        return self.rows_at_build + self.added

    @property
    def observed_fp_rate(self) -> float | None:
        """False positives over absent-key lookups the filter answered (rejected + false positives)."""
        total = self.rejected + self.fp
        return self.fp / total if total else None


def _decode(fields: dict[bytes, bytes]) -> dict[str, str]:
    return {k.decode(): v.decode() for k, v in fields.items()}


class BloomStore:
    def __init__(self, client: redis.Redis, prefix: str, region: str) -> None:
        self.client = client
        self.keys = BloomKeys(prefix, region)
        self._setbits = client.register_script(SETBITS_SCRIPT)
        self._swap = client.register_script(SWAP_SCRIPT)
        self._lease = client.register_script(LEASE_SCRIPT)

    # -- reading ----------------------------------------------------------------------------------
    def current(self, table: str) -> Generation | None:
        """The table's current filter, or None (none built yet, or of another format)."""
        head = _decode(self.client.hgetall(self.keys.table(table)))
        gen = head.get("current")
        if not gen or head.get("format") != FORMAT:
            return None
        meta = _decode(self.client.hgetall(self.keys.gen_meta(table, gen)))
        return Generation(gen, Sizing.from_fields(meta)) if meta else None

    def live(self, table: str) -> list[Generation]:
        """Current and building generations: the ones a new key must be added to."""
        head = _decode(self.client.hgetall(self.keys.table(table)))
        gens = []
        for role in ("current", "building"):
            gen = head.get(role)
            if gen and (role == "building" or head.get("format") == FORMAT):
                meta = _decode(self.client.hgetall(self.keys.gen_meta(table, gen)))
                if meta:
                    gens.append(Generation(gen, Sizing.from_fields(meta)))
        return gens

    def stats(self, table: str) -> FilterStats | None:
        head = _decode(self.client.hgetall(self.keys.table(table)))
        gen = head.get("current")
        if not gen or head.get("format") != FORMAT:
            return None
        meta = _decode(self.client.hgetall(self.keys.gen_meta(table, gen)))
        if not meta:
            return None
        ints = {k: int(meta.get(k, 0)) for k in ("added", "deleted", "rows_at_build", "built_at_ms", "rejected", "fp")}
        return FilterStats(table, gen, Sizing.from_fields(meta), building=head.get("building"),
                           bitmap_bytes=int(self.client.strlen(self.keys.bits(table, gen))), **ints)

    def tables(self) -> list[str]:
        """Tables that have (or are building) a filter."""
        return sorted(t.decode() for t in self.client.smembers(self.keys.tables))

    def positions(self) -> dict[tuple[str, int], int]:
        result = {}
        for k, v in self.client.hgetall(self.keys.positions).items():
            topic, _, partition = k.decode().rpartition("|")
            result[(topic, int(partition))] = int(v)
        return result

    def fresh_us(self) -> int:
        raw = self.client.get(self.keys.fresh)
        return int(raw) if raw else 0

    def now_us(self) -> int:
        """The Redis server's clock: the one clock every reader and the maintainer share."""
        seconds, micros = self.client.time()
        return int(seconds) * 1_000_000 + int(micros)

    # -- writing (the maintainer only) --------------------------------------------------------------
    def begin_build(self, table: str, sizing: Sizing) -> Generation:
        """Register a new generation as `building`: from now on every applied key is added to it too."""
        gen = f"{int(time.time() * 1000)}-{uuid.uuid4().hex[:6]}"
        pipe = self.client.pipeline(transaction=True)
        pipe.hset(self.keys.gen_meta(table, gen), mapping={**sizing.to_fields(), "added": 0, "deleted": 0,
                                                           "rows_at_build": 0, "rejected": 0, "fp": 0})
        pipe.hset(self.keys.table(table), "building", gen)
        pipe.sadd(self.keys.tables, table)
        pipe.execute()
        return Generation(gen, sizing)

    def add_scanned(self, table: str, generation: Generation, offsets: list[int]) -> None:
        """Add scanned keys' offsets (`slices` per key, key after key) to a generation being built."""
        self._setbits(keys=[self.keys.bits(table, generation.gen), self.keys.gen_meta(table, generation.gen)],
                      args=[generation.sizing.slices, "rows_at_build", *offsets])

    def finish_build(self, table: str, generation: Generation) -> bool:
        """Atomically make `generation` current and drop the previous one."""
        return bool(self._swap(keys=[self.keys.table(table), self.keys.gen_meta(table, generation.gen),
                                     self.keys.bits(table, generation.gen)],
                               args=[generation.gen, self.keys.gen_prefix(table), FORMAT, int(time.time() * 1000)]))

    def drop(self, table: str) -> None:
        """Remove a table's filter: readers ask the database until a new one is built."""
        head = _decode(self.client.hgetall(self.keys.table(table)))
        pipe = self.client.pipeline(transaction=True)
        pipe.delete(self.keys.table(table))
        pipe.srem(self.keys.tables, table)
        for role in ("current", "building"):
            if head.get(role):
                pipe.delete(self.keys.gen_meta(table, head[role]), self.keys.bits(table, head[role]))
        pipe.execute()

    def abandon_build(self, table: str, generation: Generation) -> None:
        pipe = self.client.pipeline(transaction=True)
        pipe.hdel(self.keys.table(table), "building")
        pipe.delete(self.keys.gen_meta(table, generation.gen), self.keys.bits(table, generation.gen))
        pipe.execute()

    def apply(self, live: dict[str, list[Generation]], adds: dict[str, list[str]], deletes: dict[str, int],
              positions: dict[tuple[str, int], int], neg_ttl_s: int) -> None:
        """One batch, in one MULTI: the bits of every added key in every live generation of its table,
        counters, an `inserted` negative-cache entry per added key (so a racing `absent` can never be
        written over it), and the stream positions the batch brings the filters to."""
        pipe = self.client.pipeline(transaction=True)
        for table, keys in adds.items():
            for key in keys:
                pipe.set(self.keys.neg(table, key), "inserted", ex=neg_ttl_s)
            for generation in live.get(table, []):
                offs = [o for key in keys for o in offsets(generation.sizing, key)]
                self._setbits(keys=[self.keys.bits(table, generation.gen), self.keys.gen_meta(table, generation.gen)],
                              args=[generation.sizing.slices, "added", *offs], client=pipe)
        for table, count in deletes.items():
            for generation in live.get(table, []):
                pipe.hincrby(self.keys.gen_meta(table, generation.gen), "deleted", count)
        if positions:
            pipe.hset(self.keys.positions, mapping={f"{t}|{p}": o for (t, p), o in positions.items()})
        pipe.execute()

    def set_fresh(self, us: int) -> None:
        self.client.set(self.keys.fresh, us)

    def hold_lease(self, holder: str, ttl_ms: int) -> bool:
        return bool(self._lease(keys=[self.keys.lease], args=[holder, ttl_ms]))

    def release_lease(self, holder: str) -> None:
        if self.client.get(self.keys.lease) == holder.encode():
            self.client.delete(self.keys.lease)
