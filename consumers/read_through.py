"""Writing a row read from the database back into the cache, without ever replacing a newer value.

The rule (KEYS[1] the cache key): write only if the key is absent, or if it holds a clock `_c`
strictly before the clock read from `<meta_db>.row_clocks` in the same statement as the row. A row
without a clock (table without `cdcsync init`, or no local write since) is written only into an
absent key. An entry without `_c` (written by a sink that only keeps `_v`) is never replaced: its
order against ours is unknown. Tombstones are entries like any other: a delete's clock is newer
than the row it deleted, so a stale read never resurrects it.

The written entry has `_c` (when the row has a clock) and no `_v`: the cache sink's compare-and-
set then treats it as older than any version it applies, so the sink always wins over a read.
"""

from __future__ import annotations

from typing import Any

import orjson
import redis

from consumers.cache_sink import row_fields
from schemas.config import TableConfig

CLOCK_FIELD = "_c"

# KEYS[1] cache key. ARGV[1] clock counters JSON ('' = none), ARGV[2] ttl (0 = none), ARGV[3..] fields.
WRITE_BACK_SCRIPT = """
local function before(a, b)
  local less = false
  for r, n in pairs(a) do
    local m = tonumber(b[r] or 0)
    if tonumber(n) > m then return false elseif tonumber(n) < m then less = true end
  end
  for r, m in pairs(b) do
    if tonumber(a[r] or 0) < tonumber(m) then less = true end
  end
  return less
end
if redis.call('EXISTS', KEYS[1]) == 1 then
  if ARGV[1] == '' then return 0 end
  local current = redis.call('HGET', KEYS[1], '_c')
  if not current then return 0 end
  if not before(cjson.decode(current), cjson.decode(ARGV[1])) then return 0 end
  redis.call('DEL', KEYS[1])
end
if ARGV[1] ~= '' then redis.call('HSET', KEYS[1], '_c', ARGV[1]) end
redis.call('HSET', KEYS[1], unpack(ARGV, 3))
local ttl = tonumber(ARGV[2])
if ttl > 0 then redis.call('EXPIRE', KEYS[1], ttl) end
return 1
"""


class ReadThroughWriter:
    def __init__(self, client: redis.Redis) -> None:
        self._script = client.register_script(WRITE_BACK_SCRIPT)

    def queue(self, pipe: Any, key: str, row: dict[str, Any], clock: dict[str, int] | None,
              table: TableConfig) -> None:
        """Queue the compare-and-set write of `row` (with its `clock` counters) on `pipe`."""
        encoded = orjson.dumps(clock, option=orjson.OPT_SORT_KEYS).decode() if clock else ""
        self._script(keys=[key], args=[encoded, table.cache_ttl_s or 0, *row_fields(row, table)], client=pipe)
