"""The history of acknowledged writes: what each committed transaction left in each row it touched,
with the clock the row got, read inside the same transaction (so the clock is the write's own).

A transaction that touched a key records one `Ack` for it: the row's values at commit (None when it
left the key absent) and its `row_clocks` clock. Intermediate states inside the transaction are not
versions anyone else can see, so they are not recorded.
"""

from __future__ import annotations

import json
import threading
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from common.metadata_tables import ROW_CLOCKS
import pymysql

from schemas import key_fold
from schemas.row_clock_key import key_hash, key_kind, row_identity
from schemas.vclock import VectorClock
from tests.support.convergence.schema import ModelKey, Table


@dataclass(frozen=True, slots=True)
class Ack:
    """One key's state after one acknowledged transaction."""

    region: str
    client: int
    txn: int                          # the client's transaction number, to tell retries apart
    shape: str
    table: str
    key: ModelKey
    values: dict[str, Any] | None     # None: the key is absent (deleted)
    clock: VectorClock | None         # None: no row_clocks row (a table without triggers)
    generated_key: bool = False       # inserted with an id the server chose (AUTO_INCREMENT)
    delta: dict[str, int] | None = None   # delta columns: after - before of an update (schema.DELTA_COLUMNS)
    # column-lww tables (schema.COLUMN_LWW): the write's op (insert, update, delete) and the columns it changed
    columns: tuple[str, tuple[str, ...]] | None = None

    def describe(self) -> str:
        clock = "no clock" if self.clock is None else f"{self.clock.counters} hlc={self.clock.hlc_us}"
        return f"{self.region}/c{self.client}#{self.txn} {self.shape}: {self.values} [{clock}]"


@dataclass
class History:
    """Thread-safe: the clients of every region append to one history."""

    acks: list[Ack] = field(default_factory=list)
    attempts: int = 0
    refused: dict[str, int] = field(default_factory=lambda: defaultdict(int))   # why a txn was not acked
    # Commits whose outcome the client cannot know (the server went away during COMMIT): neither
    # acknowledged nor refused, so the checker never counts them lost.
    unknown: int = 0
    # What those commits would have left: they may have committed (a kill -9 during COMMIT, then
    # crash recovery), so they may supersede an acknowledged write, but are never required.
    maybe: list[Ack] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def record(self, acks: list[Ack]) -> None:
        with self._lock:
            self.acks.extend(acks)
            self.attempts += 1

    def refuse(self, reason: str) -> None:
        with self._lock:
            self.attempts += 1
            self.refused[reason] += 1

    def unknown_outcome(self, acks: list[Ack] | None = None) -> None:
        with self._lock:
            self.attempts += 1
            self.unknown += 1
            self.maybe.extend(acks or ())

    def merge(self, other: "History") -> None:
        with self._lock:
            self.acks.extend(other.acks)
            self.attempts += other.attempts
            self.unknown += other.unknown
            self.maybe.extend(other.maybe)
            for reason, count in other.refused.items():
                self.refused[reason] += count

    def by_key(self) -> dict[tuple[str, ModelKey], list[Ack]]:
        grouped: dict[tuple[str, ModelKey], list[Ack]] = defaultdict(list)
        for ack in self.acks:
            grouped[(ack.table, ack.key)].append(ack)
        return grouped

    def maybe_by_key(self) -> dict[tuple[str, ModelKey], list[Ack]]:
        grouped: dict[tuple[str, ModelKey], list[Ack]] = defaultdict(list)
        for ack in self.maybe:
            grouped[(ack.table, ack.key)].append(ack)
        return grouped

    def shape_counts(self) -> dict[str, int]:
        counts: dict[str, int] = defaultdict(int)
        for ack in self.acks:
            counts[ack.shape] += 1
        return dict(counts)


# The checker's tables take the server's default collation (deploy/local/mariadb.cnf.tmpl).
KEY_COLLATION = "utf8mb4_unicode_ci"


def clock_row_key(cur: Any, table: Table, row: Mapping[str, Any]) -> str:
    """The key identity `row_clocks.pk_hash` hashes for a row (text folded by the column's collation,
    schemas/key_fold.py, with the region server's own weights). The ONE place that knows how the
    triggers identify a key."""
    fold = {column: KEY_COLLATION for column, kind in table.key if key_kind(kind)[0] == "text"}
    if fold:
        with cur.connection.cursor(pymysql.cursors.Cursor) as plain:
            key_fold.ensure(plain, fold)
    return row_identity(table.key_values(row), dict(table.key), fold or None)


def read_clock(cur: Any, meta_db: str, db: str, table: Table, row: Mapping[str, Any],
               *, lock: bool = True) -> VectorClock | None:
    """The `row_clocks` clock of `row` (the stored spelling of its key), or None when it has none."""
    cur.execute(f"SELECT counters, hlc_us FROM `{meta_db}`.`{ROW_CLOCKS}` WHERE db = %s AND tbl = %s "
                f"AND pk_hash = %s{' FOR UPDATE' if lock else ''}",
                (db, table.name, key_hash(clock_row_key(cur, table, row))))
    found = cur.fetchone()
    if found is None:
        return None
    counters, hlc_us = (found["counters"], found["hlc_us"]) if isinstance(found, dict) else found
    return VectorClock(counters=json.loads(counters), hlc_us=hlc_us)
