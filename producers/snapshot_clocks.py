"""The row clocks of a snapshot: each row's version as `<meta_db>.row_clocks` holds it, read in the
snapshot's own consistent read, and the table's tombstones.

A snapshot event must carry what a streamed change of the row would carry, so that every sink
decides it the same way (docs/capture.md, "Snapshot clocks"):

- a row with a clock row: its clock (`vclock`), its heads, and the region that wrote the version
  (`version_origin`, the clock row's `origin`; the event's `origin` stays the snapshotting region,
  so every region's sink reads it);
- a row without a clock row, in a table with clock triggers: the empty clock (written before
  `cdcsync init`, or only by clockless applies): the database sink sees such a local row the same
  way, so it is copied only where the key has no version at all;
- a table without clock triggers (or a region without `row_clocks`): no clock, as when streaming;
- every tombstone (`deleted = 1`) whose row is absent: a delete event with the tombstone's clock.
  A delete made while the producer was not publishing (between the discarded checkpoint and a
  `--resnapshot`) exists nowhere else, and a region that missed a delete learns it; a region
  holding a newer or equal version skips it, a concurrent one resolves it, as for any delete.
  Clock rows that are not tombstones but have no row (a TRUNCATE's leftovers) are not published:
  the database sink of the snapshotting region sees them as deleted, but no delete was ever
  decided for them.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import orjson

from common.clock_triggers import CLOCK_EVENTS, trigger_name
from common.metadata_tables import ROW_CLOCKS
from common.snapshot_reader import ConsistentSnapshot, SnapshotTable
from schemas.identifiers import quote_name
from schemas.row_clock_key import UnsupportedKey, key_hash, key_kind, key_values, row_clock_key

log = logging.getLogger(__name__)

EMPTY_CLOCK: dict[str, Any] = {"counters": {}, "hlc_us": 0}


@dataclass(frozen=True, slots=True)
class SnapshotVersion:
    """The clock fields of one snapshot event."""

    vclock: dict[str, Any]
    heads: list[dict[str, Any]] | None
    origin: str | None       # the region that wrote the version; None: unknown (no clock row)

    def fields(self) -> dict[str, Any]:
        return {"vclock": self.vclock, "heads": self.heads, "version_origin": self.origin}


def _text(value: Any) -> str:
    return value.decode("utf-8") if isinstance(value, (bytes, bytearray)) else str(value)


def _version(counters: Any, hlc_us: Any, origin: Any, heads: Any) -> SnapshotVersion:
    clock = {"counters": {r: int(c) for r, c in sorted(orjson.loads(_text(counters)).items()) if int(c) > 0},
             "hlc_us": int(hlc_us)}
    return SnapshotVersion(clock, orjson.loads(_text(heads)) if heads else None, _text(origin) if origin else None)


class SnapshotClocks:
    """Reads clocks inside one `ConsistentSnapshot` (the same transaction as its rows)."""

    def __init__(self, snap: ConsistentSnapshot, meta_db: str, chunk_rows: int = 5000) -> None:
        self._snap = snap
        self._meta = meta_db
        self._chunk = chunk_rows
        self._source = f"{quote_name(meta_db)}.{quote_name(ROW_CLOCKS)}"
        self._has_row_clocks = bool(snap.query(
            "SELECT 1 FROM information_schema.TABLES WHERE TABLE_SCHEMA = %s AND TABLE_NAME = %s",
            (meta_db, ROW_CLOCKS)))
        self._revived: set[tuple[str, str, bytes]] = set()

    def clocked(self, table: SnapshotTable) -> bool:
        """Whether the table's rows have clocks: a `row_clocks` table, a primary key of a supported
        type, and its three clock triggers, or (for a reader without the TRIGGER privilege, to whom
        information_schema shows no triggers) at least one clock row."""
        if not (self._has_row_clocks and table.has_primary_key):
            return False
        try:
            for column in table.key_columns:
                key_kind(table.encoder.types[column])
        except UnsupportedKey:
            return False
        names = [trigger_name(table.table, event) for event in CLOCK_EVENTS]
        found = self._snap.query(
            f"SELECT COUNT(*) FROM information_schema.TRIGGERS WHERE TRIGGER_SCHEMA = %s "
            f"AND EVENT_OBJECT_TABLE = %s AND TRIGGER_NAME IN ({', '.join(['%s'] * len(names))})",
            (table.db, table.table, *names))
        if int(found[0][0]) == len(names):
            return True
        return bool(self._snap.query(f"SELECT 1 FROM {self._source} WHERE db = %s AND tbl = %s LIMIT 1",
                                     (table.db, table.table)))

    def for_rows(self, table: SnapshotTable, rows: list[dict[str, Any]]) -> list[SnapshotVersion]:
        """The version of each row, in order (the empty clock for a row without a clock row)."""
        keys = [row_clock_key({c: row[c] for c in table.key_columns}, table.encoder.types) for row in rows]
        if not keys:
            return []
        found = self._snap.query(
            f"SELECT pk_hash, counters, hlc_us, origin, heads, deleted FROM {self._source} "
            f"WHERE db = %s AND tbl = %s AND pk_hash IN ({', '.join(['%s'] * len(keys))})",
            (table.db, table.table, *(key_hash(k) for k in keys)))
        by_hash = {}
        for h, counters, hlc_us, origin, heads, deleted in found:
            by_hash[bytes(h)] = _version(counters, hlc_us, origin, heads)
            if deleted:   # a row a clockless apply re-inserted over its tombstone: published as the row
                self._revived.add((table.db, table.table, bytes(h)))
        empty = SnapshotVersion(EMPTY_CLOCK, None, None)
        return [by_hash.get(key_hash(k), empty) for k in keys]

    def tombstones(self, table: SnapshotTable) -> Iterator[list[tuple[dict[str, Any], SnapshotVersion]]]:
        """(wire pk, version) of the table's tombstones, chunk by chunk in `pk_hash` order. Call it
        after `for_rows` has seen every row of the table: a tombstone whose row exists (re-inserted
        by a clockless apply) is left out, the row was published with that clock."""
        last = b""
        skipped = 0
        while True:
            rows = self._snap.query(
                f"SELECT pk_hash, pk, counters, hlc_us, origin, heads FROM {self._source} "
                f"WHERE db = %s AND tbl = %s AND deleted = 1 AND pk_hash > %s ORDER BY pk_hash LIMIT {self._chunk}",
                (table.db, table.table, last))
            chunk = []
            for h, pk, counters, hlc_us, origin, heads in rows:
                if (table.db, table.table, bytes(h)) in self._revived:
                    continue
                try:
                    values = key_values(_text(pk), table.encoder.types, table.key_columns)
                except (ValueError, KeyError, UnsupportedKey):
                    skipped += 1     # written under another key shape (schema drift): no row of this table
                    continue
                chunk.append((values, _version(counters, hlc_us, origin, heads)))
            if chunk:
                yield chunk
            if len(rows) < self._chunk:
                break
            last = bytes(rows[-1][0])
        if skipped:
            log.warning("snapshot of %s.%s: %d tombstone(s) whose key does not fit the table's key were not "
                        "published", table.db, table.table, skipped)
