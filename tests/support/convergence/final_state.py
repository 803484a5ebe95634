"""What one region holds at the end, read directly (not through `cdcsync verify`): the rows, as
values and as HEX of every column (so a key's spelling counts), the `row_clocks` rows, the cache
entries, the conflict log's losers and the dead letters."""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

import pymysql
import pymysql.cursors

from cdcsync.tools.dlq_reader import DlqEntry, read_dead_letters
from common.metadata_tables import CONFLICT_LOG, ROW_CLOCKS
from consumers.cache.sink import cache_key, decode_row, redis_client
from schemas.config import PipelineConfig
from schemas.events import ChangeEvent
from schemas.row_clock_key import split_key
from schemas.vclock import VectorClock
from tests.support.convergence.history import read_clock
from tests.support.convergence.schema import TABLES, ModelKey, Table, fold

TableKey = tuple[str, ModelKey]


@dataclass(frozen=True, slots=True)
class ClockRow:
    pk: str
    clock: VectorClock
    deleted: bool
    origin: str

    def describe(self) -> str:
        state = "tombstone" if self.deleted else "live"
        return f"pk={self.pk!r} {self.clock.counters} hlc={self.clock.hlc_us} {state} origin={self.origin}"


@dataclass(frozen=True, slots=True)
class Loser:
    region: str                     # the region whose conflict log has it
    record_id: int
    table: str
    key: ModelKey
    values: dict[str, Any] | None
    clock: VectorClock
    origin: str | None


@dataclass(frozen=True, slots=True)
class DeadLetter:
    region: str
    entry: DlqEntry
    event: ChangeEvent | None       # None: the entry is not a decodable change

    @property
    def table_key(self) -> TableKey | None:
        if self.event is None or self.event.table not in TABLES:
            return None
        return self.event.table, TABLES[self.event.table].model_key(self.event.pk)


@dataclass
class RegionState:
    region: str
    rows: dict[TableKey, dict[str, Any]] = field(default_factory=dict)
    hex_rows: dict[TableKey, tuple[str, ...]] = field(default_factory=dict)
    row_clock: dict[TableKey, VectorClock | None] = field(default_factory=dict)   # of each stored row
    clock_rows: dict[TableKey, list[ClockRow]] = field(default_factory=lambda: defaultdict(list))
    cache: dict[TableKey, list[tuple[str, dict[str, Any]]]] = field(default_factory=lambda: defaultdict(list))
    losers: list[Loser] = field(default_factory=list)
    dead_letters: list[DeadLetter] = field(default_factory=list)

    def final_clock(self, key: TableKey) -> VectorClock | None:
        """The key's clock: the stored row's, or for an absent key the merge of its tombstones."""
        if key in self.rows:
            return self.row_clock[key]
        clocks = [c.clock for c in self.clock_rows.get(key, [])]
        if not clocks:
            return None
        merged = clocks[0]
        for clock in clocks[1:]:
            merged = merged.merge(clock)
        return merged


def clock_model_key(table: Table, pk_text: str) -> ModelKey:
    """The model key of a `row_clocks.pk` text (folded, whatever spelling the text keeps)."""
    texts = split_key(pk_text)
    return tuple(fold(text) if kind.startswith("varchar") else int(text)
                 for text, (_, kind) in zip(texts, table.key, strict=True))


def _hex_select(table: Table) -> str:
    return ", ".join(f"COALESCE(HEX(`{c}`), 'NULL') AS `__hex_{c}`" for c in table.columns)


def read_database(conn: pymysql.Connection, state: RegionState, *, meta_db: str, db: str) -> None:
    with conn.cursor(pymysql.cursors.DictCursor) as cur:
        for table in TABLES.values():
            cur.execute(f"SELECT *, {_hex_select(table)} FROM `{db}`.`{table.name}`")
            for found in cur.fetchall():
                row = {c: found[c] for c in table.columns}
                key = (table.name, table.model_key(row))
                if key in state.rows:
                    raise AssertionError(f"{state.region}: two rows of {key} (the model key folds too much)")
                state.rows[key] = row
                state.hex_rows[key] = tuple(found[f"__hex_{c}"] for c in table.columns)
                state.row_clock[key] = read_clock(cur, meta_db, db, table, row, lock=False)
        cur.execute(f"SELECT tbl, pk, counters, hlc_us, deleted, origin FROM `{meta_db}`.`{ROW_CLOCKS}` "
                    f"WHERE db = %s", (db,))
        for r in cur.fetchall():
            table = TABLES.get(r["tbl"])
            if table is None:
                continue
            state.clock_rows[(table.name, clock_model_key(table, r["pk"]))].append(
                ClockRow(r["pk"], VectorClock(counters=json.loads(r["counters"]), hlc_us=r["hlc_us"]),
                         bool(r["deleted"]), r["origin"]))
        cur.execute(f"SELECT id, tbl, pk, losers FROM `{meta_db}`.`{CONFLICT_LOG}` WHERE db = %s ORDER BY id", (db,))
        for r in cur.fetchall():
            table = TABLES.get(r["tbl"])
            if table is None:
                continue
            key = table.model_key(json.loads(r["pk"]))
            for version in json.loads(r["losers"]):
                state.losers.append(Loser(state.region, r["id"], table.name, key, version.get("values"),
                                          VectorClock(counters=version["counters"], hlc_us=version["hlc_us"]),
                                          version.get("origin")))


def read_cache(config: PipelineConfig, state: RegionState, *, db: str) -> None:
    """Every live cache entry of the seed's tables (tombstones left out), under its model key."""
    client = redis_client(config.region(state.region).redis)
    try:
        for table in TABLES.values():
            prefix = cache_key(config.prefix, db, table.name, []).removesuffix("[]")
            for name in client.scan_iter(match=prefix + "*", count=500):
                row = decode_row(client.hgetall(name))
                if row is not None:
                    state.cache[(table.name, table.model_key(row))].append((name.decode(), row))
    finally:
        client.close()


def read_dlq(config: PipelineConfig, state: RegionState) -> None:
    for entry in read_dead_letters(config, state.region):
        record = entry.record()
        event = record.event if record is not None and isinstance(record.event, ChangeEvent) else None
        state.dead_letters.append(DeadLetter(state.region, entry, event))


def read_region(config: PipelineConfig, region: str, conn: pymysql.Connection, *, db: str) -> RegionState:
    state = RegionState(region)
    read_database(conn, state, meta_db=config.meta_db, db=db)
    read_cache(config, state, db=db)
    read_dlq(config, state)
    return state
