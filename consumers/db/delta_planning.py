"""The database sink's side of delta columns: the stored frontiers, and the plan of one key.

`ClockedPlanner` (consumers/db/local_versions.py) calls `read_frontiers` once per table with delta
columns (the clock rows are already locked by then) and `planned` per key, after the clock decision.
The merge itself is pure: consumers/db/delta_merge.py.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Callable

import pymysql

from common.metadata_tables import read_clock_json
from consumers.db.delta_merge import DeltaColumns, Frontier, frontier_json, merge, parse_frontier
from consumers.db.resolution import Action, Decision
from consumers.records import SourceRecord
from schemas.events import ChangeEvent
from schemas.row_clock_key import key_hash
from schemas.row_version import RowVersion


def read_frontiers(cur: pymysql.cursors.Cursor, meta_db: str, db: str, table: str, keys: list[str]) -> dict[bytes, Frontier]:
    """pk_hash -> the frontier (`row_clocks.delta_seen`) of the keys that have one."""
    stored = read_clock_json(cur, meta_db, db, table, [key_hash(k) for k in keys], "delta_seen")
    return {h: parse_frontier(text) for h, text in stored.items()}


def planned(columns: DeltaColumns, *, region: str, record: SourceRecord, run: list[SourceRecord],
            local: RowVersion | None, decision: Decision, frontier: Frontier,
            plan: Callable[[SourceRecord, Decision], object], rewrite: Callable[[SourceRecord, dict | None], SourceRecord],
            local_clock_row: Callable[[RowVersion], object]) -> object:
    """The `Planned` of one key of a table with delta columns. `plan` is the planner's own
    (`ClockedPlanner._planned` for this key), `rewrite` turns the record into a write of given values,
    `local_clock_row` is the clock row that keeps the local version (for a skipped version whose
    delta still counts)."""
    events: list[ChangeEvent] = [r.event for r in run]  # type: ignore[misc]
    skipped = decision.action is Action.SKIP
    merged = merge(columns, region=region, local=local, result=decision.result, skipped=skipped, run=events,
                   frontier=frontier)
    stored = frontier_json(merged.frontier) if merged.frontier else None
    if skipped:
        if local is None:
            return plan(record, decision)
        clock = replace(local_clock_row(local), deltas=stored)  # type: ignore[type-var]
        if merged.values is None or local.values is None or dict(merged.values) == dict(local.values):
            # Nothing to write but the frontier (a clock row of the same version: maintenance, never published).
            return replace(plan(record, decision), clock=clock if stored != _stored(frontier) else None)  # type: ignore[type-var]
        return replace(plan(record, decision), write=rewrite(record, dict(merged.values)), clock=clock,
                       action=Action.APPLY)  # type: ignore[type-var]
    result = replace(decision.result, values=merged.values)
    base = plan(record, replace(decision, result=result))
    event: ChangeEvent = record.event  # type: ignore[assignment]
    write = base.write  # type: ignore[attr-defined]
    if decision.action is Action.APPLY and merged.values is not None and dict(merged.values) != dict(event.after or {}):
        write = rewrite(record, dict(merged.values))
    clock = base.clock  # type: ignore[attr-defined]
    return replace(base, write=write, clock=None if clock is None else replace(clock, deltas=stored))  # type: ignore[type-var]


def _stored(frontier: Frontier) -> str | None:
    return frontier_json(frontier) if frontier else None


__all__ = ["planned", "read_frontiers"]
