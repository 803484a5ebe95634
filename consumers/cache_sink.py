"""The cache sink: a region's own change events -> its Redis, never moving a key backwards.

Key: `<prefix>:<db>.<table>:<canonical pk>`, a Redis hash holding the row and its version `_v`:
- `cache_format = "hash"`: one field per column, each value JSON-encoded (`"42"`, `"\\"text\\""`);
- `cache_format = "json"`: one field `_json` with the whole row as a JSON object.
A delete leaves a tombstone (`_v` and `_deleted = 1`) that expires after `cache_tombstone_ttl_s`,
so a replayed older insert cannot bring the row back; readers treat a tombstone as absent.

Every write goes through one Lua script that compares the stored version with the new one and
writes only if the new one is greater, so a replayed or reordered event never overwrites a newer
value. Writes of a batch are pipelined.
"""

from __future__ import annotations

import time
from typing import Any

import orjson
import redis

from consumers.metrics import SinkMetrics
from consumers.records import SourceRecord
from consumers.retry import RetryPolicy
from consumers.versions import event_version
from schemas.config import PipelineConfig, RedisConfig, TableConfig
from schemas.events import ChangeEvent, Op

VERSION_FIELD = "_v"
DELETED_FIELD = "_deleted"
JSON_FIELD = "_json"

# KEYS[1] row key. ARGV: version, 'set'|'del', ttl seconds (0 = none), then field, value, ...
CAS_SCRIPT = """
local current = redis.call('HGET', KEYS[1], '_v')
if current and current >= ARGV[1] then return 0 end
redis.call('DEL', KEYS[1])
if ARGV[2] == 'del' then
  redis.call('HSET', KEYS[1], '_v', ARGV[1], '_deleted', '1')
else
  redis.call('HSET', KEYS[1], '_v', ARGV[1], unpack(ARGV, 4))
end
local ttl = tonumber(ARGV[3])
if ttl > 0 then redis.call('EXPIRE', KEYS[1], ttl) end
return 1
"""


def redis_client(cfg: RedisConfig) -> redis.Redis:
    tls: dict[str, object] = {}
    if cfg.ssl:
        tls = {"ssl": True, "ssl_ca_certs": str(cfg.ssl_ca) if cfg.ssl_ca else None,
               "ssl_certfile": str(cfg.ssl_cert) if cfg.ssl_cert else None,
               "ssl_keyfile": str(cfg.ssl_key) if cfg.ssl_key else None}
    return redis.Redis(host=cfg.host, port=cfg.port, db=cfg.db, username=cfg.username,
                       password=cfg.password.get_secret_value() if cfg.password else None,
                       socket_timeout=10, socket_connect_timeout=10, **tls)


def cache_key(prefix: str, db: str, table: str, pk_values: list[Any]) -> str:
    return f"{prefix}:{db}.{table}:{orjson.dumps(pk_values).decode()}"


def row_fields(row: dict[str, Any], table: TableConfig) -> list[Any]:
    """The hash fields of a row, flattened as field, value, field, value, ..."""
    if table.cache_format == "json":
        return [JSON_FIELD, orjson.dumps(row)]
    fields: list[Any] = []
    for column, value in row.items():
        fields.append(column)
        fields.append(orjson.dumps(value))
    return fields


def decode_row(fields: dict[bytes, bytes]) -> dict[str, Any] | None:
    """A cached hash back into a row; None for a tombstone or an empty hash."""
    if not fields or fields.get(DELETED_FIELD.encode()) == b"1":
        return None
    if JSON_FIELD.encode() in fields:
        return orjson.loads(fields[JSON_FIELD.encode()])
    return {k.decode(): orjson.loads(v) for k, v in fields.items() if k != VERSION_FIELD.encode()}


class CacheWriter:
    """Version-checked writes to one region's Redis (shared by the sink and `cache rebuild`)."""

    def __init__(self, config: PipelineConfig, region: str) -> None:
        self.config = config
        self.client = redis_client(config.region(region).redis)
        self._cas = self.client.register_script(CAS_SCRIPT)

    def queue_set(self, pipe: Any, key: str, version: str, row: dict[str, Any], table: TableConfig) -> None:
        self._cas(keys=[key], args=[version, "set", table.cache_ttl_s or 0, *row_fields(row, table)], client=pipe)

    def queue_delete(self, pipe: Any, key: str, version: str) -> None:
        self._cas(keys=[key], args=[version, "del", self.config.cache_tombstone_ttl_s], client=pipe)

    def pipeline(self) -> Any:
        return self.client.pipeline(transaction=False)


class CacheSink:
    """Owned by one thread. `write_batch` returns once Redis has taken every write."""

    name = "cache"

    def __init__(self, config: PipelineConfig, region: str, metrics: SinkMetrics,
                 retry: RetryPolicy | None = None) -> None:
        self.config = config
        self.writer = CacheWriter(config, region)
        self.metrics = metrics
        sink = config.region(region).sink
        self.retry = retry or RetryPolicy(sink.retry_max_attempts, sink.retry_base_ms, sink.retry_max_ms,
                                          on_retry=lambda e, n, d: metrics.retried(self.name))
        self.last_written = 0  # how many CAS writes the last batch won (tests read it)

    def write_batch(self, records: list[SourceRecord]) -> None:
        latest: dict[str, ChangeEvent] = {}
        for record in records:  # one key is always on one partition, so this order is its order
            event = record.event
            if not isinstance(event, ChangeEvent) or event.op is Op.TRUNCATE:
                self.metrics.skipped(self.name, "not_a_row_change")
                continue
            key = cache_key(self.config.prefix, event.db, event.table, list(event.pk.values()))
            latest.pop(key, None)
            latest[key] = event
        if not latest:
            return
        started = time.perf_counter()
        results = self.retry.run(lambda: self._write(latest), transient=_transient)
        self.last_written = sum(1 for r in results if r == 1)
        self.metrics.applied(self.name, len(latest), time.perf_counter() - started)
        if len(latest) > self.last_written:
            self.metrics.skipped(self.name, "older_than_cache", len(latest) - self.last_written)

    def _write(self, latest: dict[str, ChangeEvent]) -> list[Any]:
        pipe = self.writer.pipeline()
        for key, event in latest.items():
            version = event_version(event)
            if event.op is Op.DELETE:
                self.writer.queue_delete(pipe, key, version)
            else:
                self.writer.queue_set(pipe, key, version, event.after or {}, self.config.table(event.db, event.table))
        return pipe.execute()

    def close(self) -> None:
        self.writer.client.close()


def _transient(err: BaseException) -> bool:
    return isinstance(err, (redis.ConnectionError, redis.TimeoutError, redis.BusyLoadingError))
