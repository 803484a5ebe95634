"""The database sink's decision for clocked changes: read the local version under the row lock, decide.

For every incoming change that carries a `vclock`, `plan_clocked` locks the target row
(`SELECT ... FOR UPDATE`, which in REPEATABLE READ also locks the gap of an absent key) and then its
`<meta_db>.row_clocks` row, in the same order as an application's write and its clock trigger. A
local write committed before the lock was granted has already ticked that clock (the trigger runs
in the writer's transaction), and none can commit until the sink's transaction ends: the decision
is made on a clock that counts every local write and cannot move (docs/clocks.md, "the race").

The result is one `Planned` per change: what to write to the table (the change itself, the resolved
values, or nothing), the clock row to upsert, and the conflict record of a resolution.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace
from typing import Any, Callable

import orjson
import pymysql

from common.metadata_tables import ROW_CLOCKS
from common.snapshot_encoding import SnapshotEncoder
from common.table_catalog import snapshot_columns
from consumers.db import dialect as db_dialect
from consumers.db.clock_skew import check_skew
from consumers.db import column_planning, delta_planning
from consumers.db.delta_merge import DeltaColumns
from consumers.db.resolution import Action, Decision, Strategy
from consumers.records import SourceRecord
from schemas import key_fold
from schemas.conflict_record import ConflictRecord, VersionImage
from schemas.events import ChangeEvent, Op
from schemas.identifiers import quote_name
from schemas.row_clock_key import UnsupportedKey, key_hash, row_clock_key, row_identity
from schemas.row_version import RowVersion
from schemas.vclock import VectorClock

Converted = Callable[[ChangeEvent, dict[str, Any], tuple[str, ...]], list[Any]]


@dataclass(frozen=True, slots=True)
class ClockRow:
    db: str
    table: str
    key: str                       # the key's identity (`row_identity`): what pk_hash hashes
    clock: VectorClock
    deleted: bool
    origin: str
    heads: str | None = None       # JSON, see heads_json
    text: str | None = None        # row_clocks.pk: the key text of the version written (None: `key`)
    deltas: str | None = None      # row_clocks.delta_seen (consumers/db/delta_merge.py); None keeps it
    stamps: str | None = None      # row_clocks.col_stamps (consumers/db/column_merge.py); None keeps it


@dataclass(frozen=True, slots=True)
class Planned:
    """One incoming change after the decision. `write` is None when the table stays as it is."""

    record: SourceRecord
    write: SourceRecord | None
    clock: ClockRow | None = None
    conflict: ConflictRecord | None = None
    action: Action | None = None           # None: no clock, applied as it comes
    announce: dict[str, Any] | None = None  # a delete this region publishes (metadata_tables.PUBLISHED_DELETES)


class TableEncoders:
    """`SnapshotEncoder` per target table (wire values of local rows), its key and the key's text
    columns that fold (column -> collation, schemas/key_fold.py), re-read every `ttl_s`."""

    def __init__(self, ttl_s: float = 60.0) -> None:
        self._ttl_s = ttl_s
        self._known: dict[tuple[str, str], tuple[SnapshotEncoder | None, tuple[str, ...], dict[str, str], float]] = {}

    def get(self, conn: pymysql.Connection, db: str,
            table: str) -> tuple[SnapshotEncoder | None, tuple[str, ...], dict[str, str]]:
        known = self._known.get((db, table))
        now = time.monotonic()
        if known is not None and now - known[3] < self._ttl_s:
            return known[0], known[1], known[2]
        try:
            meta = snapshot_columns(conn, db, table)
            fold = key_fold.folding(meta.key_collations(), f"{db}.{table}")
            with conn.cursor() as cur:
                key_fold.ensure(cur, fold)
            found: tuple[SnapshotEncoder | None, tuple[str, ...], dict[str, str]] = (
                SnapshotEncoder(meta), meta.primary_key, fold)
        except LookupError:
            found = (None, (), {})
        self._known[(db, table)] = (*found, now)
        return found


def image(version: RowVersion | None) -> VersionImage | None:
    if version is None:
        return None
    return VersionImage(values=None if version.values is None else dict(version.values), origin=version.origin,
                        counters=dict(version.clock.counters), hlc_us=version.clock.hlc_us, hash=version.hash)


def winner(decision: Decision) -> str:
    result = decision.result
    if result.hash == decision.remote.hash and result.origin == decision.remote.origin:
        return "remote"
    if decision.local is not None and result.hash == decision.local.hash:
        return "local"
    return "merged"


def conflict_record(decision: Decision, *, region: str, record: SourceRecord, gtid_state: str | None) -> ConflictRecord:
    event: ChangeEvent = record.event  # type: ignore[assignment]
    return ConflictRecord(
        logged_at_us=time.time_ns() // 1000, region=region, db=event.db, table=event.table, pk=dict(event.pk),
        strategy=decision.strategy, winner=winner(decision), local=image(decision.local),
        remote=image(decision.remote), result=image(decision.result),  # type: ignore[arg-type]
        losers=[image(v) for v in decision.losers],  # type: ignore[misc]
        source_topic=record.topic, source_partition=record.partition, source_offset=record.offset,
        source_gtid=event.gtid, local_gtid=gtid_state)


def from_image(head: VersionImage) -> RowVersion:
    return RowVersion(head.values, VectorClock(counters=head.counters, hlc_us=head.hlc_us), head.origin)


def heads_json(version: RowVersion) -> str | None:
    """row_clocks.heads of a version: its siblings as version images, or NULL for a plain write."""
    if not version.siblings:
        return None
    return orjson.dumps([image(h).model_dump(mode="json") for h in version.siblings]).decode()  # type: ignore[union-attr]


def remote_version(event: ChangeEvent) -> RowVersion:
    values = None if event.op is Op.DELETE else dict(event.after or {})
    siblings = tuple(from_image(h) for h in event.heads or ())
    # A snapshot event names the version's writer apart from its own origin (the snapshotting region).
    return RowVersion(values, event.vclock or VectorClock(), event.version_origin or event.origin, siblings=siblings)


def rewritten(record: SourceRecord, values: dict[str, Any] | None) -> SourceRecord:
    """The record with its event turned into a write of `values` (None: a delete of its key)."""
    event: ChangeEvent = record.event  # type: ignore[assignment]
    if values is None:
        new = event.model_copy(update={"op": Op.DELETE, "after": None})
    else:
        new = event.model_copy(update={"op": Op.UPDATE, "after": dict(values)})
    return replace(record, event=new)


def _key_text(event: ChangeEvent, values: Any) -> str | None:
    """row_clocks.pk of the version written: the key text of its values (the winner's spelling of a
    key its collation folds), else of the event's key."""
    try:
        if values is not None and all(c in values for c in event.pk):
            return row_clock_key({c: values[c] for c in event.pk}, event.types)
        return row_clock_key(event.pk, event.types)
    except (UnsupportedKey, KeyError):
        return None


def _in_list(columns: tuple[str, ...], count: int) -> str:
    if len(columns) == 1:
        return f"{quote_name(columns[0])} IN ({', '.join(['%s'] * count)})"
    one = "(" + ", ".join(["%s"] * len(columns)) + ")"
    return f"({', '.join(quote_name(c) for c in columns)}) IN ({', '.join([one] * count)})"


def lock_local_rows(cur: pymysql.cursors.Cursor, encoder: SnapshotEncoder, db: str, table: str,
                    key_cols: tuple[str, ...], params: list[list[Any]],
                    fold: dict[str, str] | None = None) -> dict[str, dict[str, Any]]:
    """Key identity -> wire values of the present rows among `params` (key values), row-locked. The
    server matches keys by their collation, so the identity folds text the same way (`fold`)."""
    cur.execute(f"SELECT {encoder.select_list} FROM {quote_name(db)}.{quote_name(table)} "
                f"WHERE {_in_list(key_cols, len(params))} FOR UPDATE", [v for row in params for v in row])
    found = {}
    for row in cur.fetchall():
        values = encoder.encode_row(row)
        found[row_identity({c: values[c] for c in key_cols}, encoder.types, fold)] = values
    return found


def lock_clocks(cur: pymysql.cursors.Cursor, meta_db: str, db: str, table: str,
                keys: list[str]) -> dict[bytes, tuple[VectorClock, bool, str, tuple[RowVersion, ...]]]:
    """pk_hash -> (clock, deleted, origin, heads) of the keys' row_clocks rows, row-locked."""
    cur.execute(f"SELECT pk_hash, counters, hlc_us, deleted, origin, heads "
                f"FROM {quote_name(meta_db)}.{quote_name(ROW_CLOCKS)} "
                f"WHERE db = %s AND tbl = %s AND pk_hash IN ({', '.join(['%s'] * len(keys))}) FOR UPDATE",
                [db, table, *(key_hash(k) for k in keys)])
    return {bytes(h): (VectorClock(counters=orjson.loads(c), hlc_us=int(t)), bool(d), o,
                       tuple(from_image(VersionImage.model_validate(v)) for v in orjson.loads(heads or "[]")))
            for h, c, t, d, o, heads in cur.fetchall()}


def write_clocks(cur: pymysql.cursors.Cursor, meta_db: str, rows: list[ClockRow]) -> None:
    if not rows:
        return
    # Tables with delta columns or column-lww only: no cost elsewhere.
    extra = [name for name, present in (("delta_seen", any(r.deltas is not None for r in rows)),
                                        ("col_stamps", any(r.stamps is not None for r in rows))) if present]
    one = "(" + ", ".join(["%s"] * (9 + len(extra))) + ")"
    params: list[Any] = []
    for r in rows:
        params += [r.db, r.table, key_hash(r.key), r.text or r.key, orjson.dumps(r.clock.counters).decode(), r.clock.hlc_us,
                   1 if r.deleted else 0, r.origin, r.heads]
        params += [r.deltas if name == "delta_seen" else r.stamps for name in extra]
    cur.execute(f"INSERT INTO {quote_name(meta_db)}.{quote_name(ROW_CLOCKS)} "
                f"(db, tbl, pk_hash, pk, counters, hlc_us, deleted, origin, heads{''.join(', ' + n for n in extra)}) "
                f"VALUES {', '.join([one] * len(rows))} "
                f"ON DUPLICATE KEY UPDATE counters = VALUES(counters), hlc_us = VALUES(hlc_us), "
                f"deleted = VALUES(deleted), origin = VALUES(origin), heads = VALUES(heads), pk = VALUES(pk)"
                + "".join(f", {n} = COALESCE(VALUES({n}), {n})" for n in extra), params)


class ClockedPlanner:
    """Decides clocked changes for one region's sink. Owned by the sink's thread."""

    def __init__(self, *, region: str, flavor: str, meta_db: str, strategy: Callable[[str, str], Strategy],
                 decide: Callable[[RowVersion | None, RowVersion, Strategy], Decision],
                 converted: Converted, max_skew_ms: int | None = None,
                 deltas: Callable[[str, str], DeltaColumns | None] = lambda db, table: None,
                 column_lww: Callable[[str, str], bool] = lambda db, table: False) -> None:
        self.region, self.flavor, self.meta_db = region, flavor, meta_db
        self._max_skew_ms = max_skew_ms
        self._strategy, self._decide, self._converted = strategy, decide, converted
        self._deltas = deltas
        self._column_lww = column_lww
        self._encoders = TableEncoders()

    def plan(self, conn: pymysql.Connection, cur: pymysql.cursors.Cursor,
             records: list[SourceRecord], runs: dict[tuple[str, bytes | None], list[SourceRecord]] | None = None
             ) -> list[Planned]:
        """One `Planned` per record, in order. Records without a clock are written as they come.
        `runs`: for tables with delta columns or column-lww, every record of the batch a record stands for
        (by topic and Kafka key, consumers/db/delta_merge.key_runs); without it, the record alone."""
        by_table: dict[tuple[str, str], list[int]] = {}
        planned: list[Planned | None] = []
        for i, record in enumerate(records):
            event: ChangeEvent = record.event  # type: ignore[assignment]
            if event.vclock is None:
                planned.append(Planned(record, record))
                continue
            if self._max_skew_ms is not None:
                check_skew(event, self._max_skew_ms)
            planned.append(None)
            by_table.setdefault((event.db, event.table), []).append(i)
        for (db, table), indexes in by_table.items():
            encoder, key_cols, fold = self._encoders.get(conn, db, table)
            if encoder is None:   # no such table here: the write fails and becomes a dead letter
                for i in indexes:
                    planned[i] = Planned(records[i], records[i])
                continue
            self._plan_table(cur, db, table, encoder, key_cols, [records[i] for i in indexes], planned, indexes,
                             fold, runs)
        if any(p is not None and p.conflict is not None for p in planned):
            # Only a conflict record needs the GTID state: no extra round trip for batches without one.
            cur.execute(db_dialect.gtid_state(self.flavor))
            gtid_state = cur.fetchone()[0]
            planned = [p if p is None or p.conflict is None else
                       replace(p, conflict=p.conflict.model_copy(update={"local_gtid": gtid_state})) for p in planned]
        return planned  # type: ignore[return-value]

    def _plan_table(self, cur: pymysql.cursors.Cursor, db: str, table: str, encoder: SnapshotEncoder,
                    key_cols: tuple[str, ...], records: list[SourceRecord], planned: list[Planned | None],
                    indexes: list[int], fold: dict[str, str] | None = None,
                    runs: dict[tuple[str, bytes | None], list[SourceRecord]] | None = None) -> None:
        # Keys by identity: folded by this server's collation, as its triggers hash them (not the
        # producer's `pk_fold`, which names the key for Kafka and the caches).
        keys: list[str | None] = []
        for record in records:
            event: ChangeEvent = record.event  # type: ignore[assignment]
            try:
                keys.append(row_identity(event.pk, event.types, fold) if tuple(event.pk) == key_cols else None)
            except (UnsupportedKey, KeyError):
                keys.append(None)
        known = [(r, k) for r, k in zip(records, keys) if k is not None]
        local_rows = lock_local_rows(cur, encoder, db, table, key_cols,
                                     [self._converted(r.event, r.event.pk, key_cols) for r, _ in known],  # type: ignore[union-attr]
                                     fold) if known else {}
        clocks = lock_clocks(cur, self.meta_db, db, table, [k for _, k in known]) if known else {}
        strategy = self._strategy(db, table)
        deltas = self._deltas(db, table)
        frontiers = delta_planning.read_frontiers(cur, self.meta_db, db, table, [k for _, k in known]) \
            if deltas is not None and known else {}
        per_column = self._column_lww(db, table)
        stamps = column_planning.read_states(cur, self.meta_db, db, table, [k for _, k in known]) \
            if per_column and known else {}
        for i, record, key in zip(indexes, records, keys):
            if key is None:   # a key this table does not have (schema drift): applied as it comes
                planned[i] = Planned(record, record)
                continue
            values = local_rows.get(key)
            stored = clocks.get(key_hash(key))
            local = None
            if values is not None or stored is not None:
                clock, _, origin, heads = stored if stored is not None else (VectorClock(), False, self.region, ())
                local = RowVersion(values, clock, origin, siblings=heads)
            remote = remote_version(record.event)  # type: ignore[arg-type]
            decision = self._decide(local, remote, strategy)
            if per_column:
                planned[i] = column_planning.planned(
                    record=record, run=(runs or {}).get((record.topic, record.key), [record]), local=local,
                    decision=decision, stamps=stamps.get(key_hash(key)),
                    plan=lambda r, d, key=key: self._planned(r, key, d), rewrite=rewritten)
                continue
            if deltas is None:
                planned[i] = self._planned(record, key, decision)
                continue
            planned[i] = delta_planning.planned(  # type: ignore[assignment]
                deltas, region=self.region, record=record, run=(runs or {}).get((record.topic, record.key), [record]),
                local=local, decision=decision, frontier=frontiers.get(key_hash(key), {}),
                plan=lambda r, d, key=key: self._planned(r, key, d), rewrite=rewritten,
                local_clock_row=lambda v, r=record, key=key: self._local_clock_row(r, key, v))

    def _local_clock_row(self, record: SourceRecord, key: str, version: RowVersion) -> ClockRow:
        event: ChangeEvent = record.event  # type: ignore[assignment]
        return ClockRow(event.db, event.table, key, version.clock, version.deleted, version.origin,
                        heads_json(version), _key_text(event, version.values))

    def _planned(self, record: SourceRecord, key: str, decision: Decision) -> Planned:
        event: ChangeEvent = record.event  # type: ignore[assignment]
        if decision.action is Action.SKIP:
            return Planned(record, None, action=Action.SKIP)
        result = decision.result
        clock = ClockRow(event.db, event.table, key, result.clock, result.deleted, result.origin, heads_json(result),
                         _key_text(event, result.values))
        if decision.action is Action.APPLY:
            return Planned(record, record, clock, action=Action.APPLY)
        local_values = decision.local.values if decision.local is not None else None
        if result.values is None:
            write = rewritten(record, None) if local_values is not None else None
        elif local_values is not None and dict(local_values) == dict(result.values):
            write = None
        else:
            write = rewritten(record, dict(result.values))
        conflict = conflict_record(decision, region=self.region, record=record, gtid_state=None)
        return Planned(record, write, clock, conflict, Action.RESOLVED)
