"""Secondary UNIQUE keys: two rows (different primary keys) that claim one unique value, decided
the same way in every region (docs/conflicts.md, "Unique keys").

Two regions may insert different primary keys with the same unique value at the same time; each
region's sink then finds the value held by a local row when it applies the other's. The rule: the
version with the greater `unique_rank` (hlc_us, origin region, key text) keeps the value, and the
other row is removed:

- the **remote** version loses: it is not written; its key gets a tombstone of this region (the
  planned clock + this region's tick, so a re-delivery is dominated and skipped), the local row of
  that key, if any, is deleted with it, and the delete is published as this region's (a
  `published_deletes` row in the sink's transaction, which the producer turns into a delete
  event): the other regions may never meet the collision, since the local winner can be replaced
  before it reaches them (the checker's seed 10);
- the **local** row loses: it is deleted as a *local write* of this region (clock triggers on, its
  own transaction, before the batch is applied again), so the deletion is published and reaches
  every region as an ordinary delete that dominates the loser. A region that never saw the
  collision (its loser was already replaced there) still converges, because it receives that delete.

Both log a conflict record of kind `unique` (strategy `unique`), published and counted like any
resolution. A change without a clock cannot be ranked: its collision stays a dead letter.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace
from typing import Any, Callable

import pymysql

from consumers.db import conflict_log
from consumers.db.local_versions import ClockRow, Planned, TableEncoders, rewritten, image, lock_clocks
from consumers.db.resolution import Action
from schemas.conflict_record import ConflictRecord
from schemas.events import ChangeEvent, Op
from schemas.identifiers import quote_name
from schemas.row_clock_key import key_hash, row_identity
from schemas.row_version import RowVersion
from schemas.vclock import VectorClock

STRATEGY = "unique"
Converted = Callable[[ChangeEvent, dict[str, Any], tuple[str, ...]], list[Any]]


def unique_rank(version: RowVersion, key: str) -> tuple[int, str, str]:
    """Who keeps a unique value: the greatest (hlc_us, origin region, canonical key text)."""
    return (version.clock.hlc_us, version.origin, key)


@dataclass(frozen=True, slots=True)
class Collision:
    """A planned write (`index` into the plans) whose unique value a local row of another key holds."""

    index: int
    db: str
    table: str
    holder_pk: dict[str, Any]         # wire values
    holder_key: str
    holder: RowVersion
    remote_wins: bool
    where: str = ""                   # the colliding unique columns' condition, and its parameters
    params: tuple[Any, ...] = ()


class UniqueIndexes:
    """The secondary UNIQUE indexes of target tables (their column lists), re-read every `ttl_s`."""

    def __init__(self, ttl_s: float = 60.0) -> None:
        self._ttl_s = ttl_s
        self._known: dict[tuple[str, str], tuple[list[tuple[str, ...]], float]] = {}

    def get(self, cur: pymysql.cursors.Cursor, db: str, table: str) -> list[tuple[str, ...]]:
        known = self._known.get((db, table))
        now = time.monotonic()
        if known is not None and now - known[1] < self._ttl_s:
            return known[0]
        cur.execute("SELECT INDEX_NAME, COLUMN_NAME FROM information_schema.STATISTICS WHERE TABLE_SCHEMA = %s "
                    "AND TABLE_NAME = %s AND NON_UNIQUE = 0 AND INDEX_NAME <> 'PRIMARY' "
                    "ORDER BY INDEX_NAME, SEQ_IN_INDEX", (db, table))
        indexes: dict[str, list[str]] = {}
        for name, column in cur.fetchall():
            indexes.setdefault(name, []).append(column)
        found = [tuple(cols) for cols in indexes.values()]
        self._known[(db, table)] = (found, now)
        return found


def find_collisions(conn: pymysql.Connection, cur: pymysql.cursors.Cursor, meta_db: str, plans: list[Planned],
                    indexes: UniqueIndexes, encoders: TableEncoders, converted: Converted) -> list[Collision]:
    """The clocked upserts of `plans` whose unique values local rows of other keys hold, under a
    row lock (`FOR UPDATE`). Rows the plans themselves write are not holders: the batch replaces them."""
    written = {(p.clock.db, p.clock.table, p.clock.key) for p in plans if p.write is not None and p.clock is not None}
    found: list[Collision] = []
    for i, plan in enumerate(plans):
        write, clock = plan.write, plan.clock
        if write is None or clock is None or clock.deleted:
            continue
        event: ChangeEvent = write.event  # type: ignore[assignment]
        if event.op is Op.DELETE or not event.after:
            continue
        unique = indexes.get(cur, event.db, event.table)
        if not unique:
            continue
        encoder, key_cols, fold = encoders.get(conn, event.db, event.table)
        if encoder is None or not key_cols:
            continue
        remote = RowVersion(dict(event.after), clock.clock, clock.origin)
        seen: set[str] = set()
        for cols in unique:
            if any(event.after.get(c) is None for c in cols):
                continue          # NULL never collides; a column the event lacks cannot be checked
            where = " AND ".join(f"{quote_name(c)} = %s" for c in cols)
            params = tuple(converted(event, event.after, cols))
            cur.execute(f"SELECT {encoder.select_list} FROM {quote_name(event.db)}.{quote_name(event.table)} "
                        f"WHERE {where} FOR UPDATE", params)
            for row in cur.fetchall():
                values = encoder.encode_row(row)
                holder_pk = {c: values[c] for c in key_cols}
                holder_key = row_identity(holder_pk, encoder.types, fold)   # as ClockRow.key
                if holder_key == clock.key or holder_key in seen or (event.db, event.table, holder_key) in written:
                    continue
                seen.add(holder_key)
                stored = lock_clocks(cur, meta_db, event.db, event.table, [holder_key]).get(key_hash(holder_key))
                holder_clock, origin = (stored[0], stored[2]) if stored is not None else (VectorClock(), "")
                holder = RowVersion(values, holder_clock, origin)
                wins = unique_rank(remote, clock.key) > unique_rank(holder, holder_key)
                found.append(Collision(i, event.db, event.table, holder_pk, holder_key, holder, wins, where, params))
    return found


def _record(*, region: str, db: str, table: str, pk: dict[str, Any], winner: str, local: RowVersion,
            remote: RowVersion, loser: RowVersion, plan: Planned, gtid_state: str | None) -> ConflictRecord:
    record = plan.record
    event: ChangeEvent = record.event  # type: ignore[assignment]
    return ConflictRecord(
        kind="unique", logged_at_us=time.time_ns() // 1000, region=region, db=db, table=table, pk=dict(pk),
        strategy=STRATEGY, winner=winner, local=image(local), remote=image(remote),  # type: ignore[arg-type]
        result=image(remote if winner == "remote" else local),  # type: ignore[arg-type]
        losers=[image(loser)],  # type: ignore[list-item]
        source_topic=record.topic, source_partition=record.partition, source_offset=record.offset,
        source_gtid=event.gtid, local_gtid=gtid_state)


def losing_remote(plan: Planned, collision: Collision, *, region: str, now_us: int) -> Planned:
    """The plan of a remote version that lost its unique value: its key becomes a tombstone of
    this region (the planned clock + this region's tick), any local row of that key is deleted, the
    conflict is logged, and the delete is published (`announce`): the other regions may never meet
    this collision (the local winner can be replaced before it reaches them), so the decision must
    reach them as a delete that dominates the loser."""
    clock: ClockRow = plan.clock  # type: ignore[assignment]
    event: ChangeEvent = plan.write.event  # type: ignore[union-attr]
    remote = RowVersion(dict(event.after or {}), clock.clock, clock.origin)
    conflict = _record(region=region, db=collision.db, table=collision.table, pk=event.pk, winner="local",
                       local=collision.holder, remote=remote, loser=remote, plan=plan, gtid_state=None)
    ticked = clock.clock.increment(region, now_us)
    tombstone = replace(clock, clock=ticked, deleted=True, origin=region, heads=None)
    announce = {"db": event.db, "table": event.table, "pk": dict(event.pk), "before": dict(event.after or {}),
                "types": dict(event.types), "pk_fold": event.pk_fold,
                "vclock": {"counters": dict(ticked.counters), "hlc_us": ticked.hlc_us}}
    return Planned(plan.record, rewritten(plan.write, None), tombstone, conflict, Action.RESOLVED,  # type: ignore[arg-type]
                   announce=announce)


def remove_local_losers(conn: pymysql.Connection, meta_db: str, region: str, plans: list[Planned],
                        collisions: list[Collision], *, applying: str, gtid_statement: str) -> list[ConflictRecord]:
    """Delete the local rows that lost their unique value, as local writes of this region (clock
    triggers on: they tick the loser's clock and the producer publishes the delete). One
    transaction; a row that no longer holds the value (changed meanwhile) is left alone.
    `applying` is the session variable the triggers test; it is set back before returning."""
    records: list[ConflictRecord] = []
    with conn.cursor() as cur:
        conn.begin()
        cur.execute(f"SET {applying} = NULL")
        try:
            cur.execute(gtid_statement)
            gtid_state = cur.fetchone()[0]
            for c in collisions:
                plan = plans[c.index]
                event: ChangeEvent = plan.write.event  # type: ignore[union-attr]
                by_key = " AND ".join(f"{quote_name(k)} = %s" for k in c.holder_pk)
                params = [_param(event, c.holder_pk, k) for k in c.holder_pk]
                cur.execute(f"SELECT 1 FROM {quote_name(c.db)}.{quote_name(c.table)} WHERE {by_key} AND {c.where} "
                            f"FOR UPDATE", [*params, *c.params])
                held = cur.fetchone() is not None
                stored = lock_clocks(cur, meta_db, c.db, c.table, [c.holder_key]).get(key_hash(c.holder_key))
                if not held or (stored[0] if stored is not None else VectorClock()) != c.holder.clock:
                    continue      # changed since it was ranked: the batch's next attempt decides again
                cur.execute(f"DELETE FROM {quote_name(c.db)}.{quote_name(c.table)} WHERE {by_key}", params)
                clock: ClockRow = plan.clock  # type: ignore[assignment]
                remote = RowVersion(dict(event.after or {}), clock.clock, clock.origin)
                record = _record(region=region, db=c.db, table=c.table, pk=c.holder_pk, winner="remote",
                                 local=c.holder, remote=remote, loser=c.holder, plan=plan, gtid_state=gtid_state)
                conflict_log.insert(cur, meta_db, record, key=c.holder_key)
                records.append(record)
            conn.commit()
        except BaseException:
            conn.rollback()
            raise
        finally:
            cur.execute(f"SET {applying} = 1")
    return records


def release_values(cur: pymysql.cursors.Cursor, plans: list[Planned], indexes: UniqueIndexes) -> None:
    """Set the secondary UNIQUE columns of the rows `plans` upsert to NULL (NULL never collides), so
    that rows of one batch holding each other's values (a swap whose intermediate steps the batch
    collapsed) can then be written in any order. Only columns the new image carries: writing it
    restores them. A NOT NULL unique column refuses this (1048, strict mode): the caller rolls back."""
    for plan in plans:
        event: ChangeEvent | None = plan.write.event if plan.write is not None else None  # type: ignore[assignment]
        if event is None or event.op is Op.DELETE or not event.after:
            continue
        columns = sorted({c for cols in indexes.get(cur, event.db, event.table) for c in cols if c in event.after})
        if not columns:
            continue
        by_key = " AND ".join(f"{quote_name(k)} = %s" for k in event.pk)
        cur.execute(f"UPDATE {quote_name(event.db)}.{quote_name(event.table)} SET "
                    f"{', '.join(f'{quote_name(c)} = NULL' for c in columns)} WHERE {by_key}",
                    [_param(event, event.pk, k) for k in event.pk])


def _param(event: ChangeEvent, pk: dict[str, Any], column: str) -> Any:
    from consumers.db.params import param_converter

    value = pk[column]
    convert = param_converter(event.types.get(column, ""))
    return value if convert is None or value is None else convert(value)
