"""Attaching `<meta_db>.row_clocks` rows to the row changes of the same transaction.

Every local write to a table with clock triggers upserts the row's clock in the writer's own
transaction, after the row itself (AFTER triggers); the database sink writes the clock of every
version it applies in its transaction too. So a transaction's clock rows name, by (db, table,
canonical key), the clock of each of its row changes. They are paired per key in order: the k-th
change of a key gets the k-th clock row of that key. A change left without one (the sink wrote the
data but not the clock, or more changes than clock rows) takes the last clock of its key; a key
with no clock row at all keeps `vclock = None` (a table without triggers).
"""

from __future__ import annotations

from collections import defaultdict, deque
from collections.abc import Iterable
from typing import Any

import orjson

from schemas.row_clock_key import UnsupportedKey, key_hash, key_identity


def _text(value: Any) -> str:
    return value.decode("utf-8") if isinstance(value, (bytes, bytearray)) else str(value)


def _hash(value: Any) -> bytes:
    # BINARY(32): the binlog drops trailing 0x00 bytes, the stored value always has 32.
    return (value if isinstance(value, (bytes, bytearray)) else str(value).encode("latin-1")).ljust(32, b"\0")


class ClockRows:
    """The clock rows of one transaction, in binlog order."""

    __slots__ = ("_by_key",)

    def __init__(self) -> None:
        # (db, table, pk_hash) -> (clock, heads) of each clock row, in order. By the hash of the key's
        # identity (text folded by collation): the trigger's `pk` shows one spelling, the change another.
        self._by_key: dict[tuple[str, str, bytes], deque[tuple[dict[str, Any], Any]]] = defaultdict(deque)

    def __bool__(self) -> bool:
        return bool(self._by_key)

    def add(self, rows: Iterable[dict[str, Any]]) -> None:
        """Rows of a row_clocks Rows event, as the library decodes them (`values` or `after_values`)."""
        for row in rows:
            image = row.get("after_values") or row.get("values") or {}
            counters = orjson.loads(_text(image["counters"]))
            clock = {"counters": {r: int(c) for r, c in sorted(counters.items()) if int(c) > 0},
                     "hlc_us": int(image["hlc_us"])}
            heads = image.get("heads")
            version = (clock, orjson.loads(_text(heads)) if heads else None)
            self._by_key[(_text(image["db"]), _text(image["tbl"]), _hash(image["pk_hash"]))].append(version)

    def attach(self, messages: Iterable[dict[str, Any]]) -> None:
        """Set `vclock` (and `heads`) on the change messages whose key has clock rows."""
        tables = {(db, tbl) for db, tbl, _ in self._by_key}
        last: dict[tuple[str, str, bytes], tuple[dict[str, Any], Any]] = {}
        for message in messages:
            if message.get("kind") != "change" or (message["db"], message["table"]) not in tables:
                continue
            try:
                key = (message["db"], message["table"],
                       key_hash(key_identity(message["pk"], message["types"], message.get("pk_fold"))))
            except UnsupportedKey:
                continue
            queue = self._by_key.get(key)
            if queue:
                last[key] = queue.popleft()
            version = last.get(key)
            if version is not None:
                message["vclock"], message["heads"] = version
