"""The cache's layout in Redis: the contract between the cache sink, its readers and operators' tools.

Key: `<prefix>:<db>.<table>:<canonical pk>` (`schemas.codec.canonical_pk` of the key's values, text
folded by collation), a Redis hash holding the row and its versions:
- `cache_format = "hash"`: one field per column, each value JSON-encoded (`"42"`, `"\\"text\\""`);
- `cache_format = "json"`: one field `_json` with the whole row as a JSON object;
- `_v`: the binlog-position version (consumers/cache/versions.py), always written;
- `_c`: the version's vector-clock counters as compact JSON with sorted keys (`{"eu":2,"us":1}`),
  written when the version has a clock;
- `_deleted = 1` on a tombstone, which readers treat as absent.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson

from schemas import key_fold
from schemas.codec import canonical_pk
from schemas.config import TableConfig
from schemas.events import ChangeEvent

__all__ = ["CLOCK_FIELD", "DELETED_FIELD", "JSON_FIELD", "META_FIELDS", "READ_THROUGH_VERSION", "VERSION_FIELD",
           "cache_key", "clock_json", "decode_row", "event_key_values", "row_fields"]

VERSION_FIELD = "_v"
CLOCK_FIELD = "_c"
DELETED_FIELD = "_deleted"
JSON_FIELD = "_json"
META_FIELDS = frozenset(f.encode() for f in (VERSION_FIELD, CLOCK_FIELD, DELETED_FIELD))  # never columns
READ_THROUGH_VERSION = ""   # below every binlog version: any clockless change replaces a read-through fill


def clock_json(counters: Mapping[str, int] | None) -> str:
    """The `_c` text of clock counters: compact JSON, sorted keys, zero entries dropped; '' for none."""
    if counters is None:
        return ""
    return orjson.dumps({r: int(counters[r]) for r in sorted(counters) if counters[r]}).decode()


def cache_key(prefix: str, db: str, table: str, pk_values: list[Any]) -> str:
    """`pk_values`: the key's values with text folded by collation (`key_fold.key_values`), so every
    spelling of one key has one cache entry."""
    return f"{prefix}:{db}.{table}:{canonical_pk(pk_values)}"


def event_key_values(event: ChangeEvent) -> list[Any]:
    """The values naming an event's row: its key, with the producer's folds of text key columns."""
    return key_fold.key_values(event.pk, event.pk_fold)


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
    """A cached hash back into a row (without `_v`, `_c`); None for a tombstone or an empty hash."""
    if not fields or fields.get(DELETED_FIELD.encode()) == b"1":
        return None
    if JSON_FIELD.encode() in fields:
        return orjson.loads(fields[JSON_FIELD.encode()])
    return {k.decode(): orjson.loads(v) for k, v in fields.items() if k not in META_FIELDS}
