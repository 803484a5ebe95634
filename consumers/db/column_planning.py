"""The database sink's side of `column-lww`: the stored column stamps, and the plan of one key.

`ClockedPlanner` (consumers/db/local_versions.py) calls `read_states` once per column-lww table (the
clock rows are already locked by then) and `planned` per key, after the clock decision. The clock
decision only gives the clock to store (the merge of both, whatever it says) and whether the
versions were concurrent (a conflict to log); the values are merged write by write, whatever it says
(consumers/db/column_merge.py, pure).
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any, Callable

import pymysql

from common.metadata_tables import read_clock_json
from consumers.db.column_merge import ColumnState, changed_columns, merge, parse_state, state_json
from consumers.db.resolution import Action, Decision
from consumers.records import SourceRecord
from schemas.events import ChangeEvent
from schemas.row_clock_key import key_hash
from schemas.row_version import RowVersion
from schemas.vclock import VectorClock


def read_states(cur: pymysql.cursors.Cursor, meta_db: str, db: str, table: str, keys: list[str]) -> dict[bytes, str]:
    """pk_hash -> `row_clocks.col_stamps` of the keys that have them."""
    return read_clock_json(cur, meta_db, db, table, [key_hash(k) for k in keys], "col_stamps")


def stored_state(text: str | None, local: RowVersion | None) -> ColumnState:
    """The row's stamps; a tombstone from before its table was column-lww: a delete at its clock."""
    state = parse_state(text)
    if text is None and local is not None and local.values is None:
        state.deleted = (local.clock.hlc_us, local.origin)
    return state


def planned(*, record: SourceRecord, run: list[SourceRecord], local: RowVersion | None, decision: Decision,
            stamps: str | None, plan: Callable[[SourceRecord, Decision], Any],
            rewrite: Callable[[SourceRecord, dict | None], SourceRecord]) -> Any:
    """The `Planned` of one key of a column-lww table. `plan` is the planner's own
    (`ClockedPlanner._planned` for this key), `rewrite` turns the record into a write of given values
    (None: a delete)."""
    events: list[ChangeEvent] = [r.event for r in run]  # type: ignore[misc]
    before = stored_state(stamps, local)
    local_values = None if local is None or local.values is None else dict(local.values)
    merged = merge(before, local_values, events)
    stored = state_json(merged.state)
    clock = (local.clock if local is not None else VectorClock()).merge(decision.remote.clock)
    origin = decision.result.origin
    values = None if merged.values is None else dict(merged.values)
    result = RowVersion(values, clock, origin)
    unchanged = values == local_values
    if decision.action is Action.SKIP and unchanged and stamps is not None and merged.state == parse_state(stamps):
        return plan(record, decision)   # a replay: nothing new
    action = Action.RESOLVED if decision.action is Action.RESOLVED else Action.APPLY
    base = plan(record, replace(decision, action=action, result=result,
                                losers=_losers(decision, events, merged.taken, local_values, values)))
    write = None if unchanged else rewrite(record, values)
    clock_row = replace(base.clock, stamps=stored, deleted=values is None)
    conflict = base.conflict
    if conflict is not None:
        conflict = conflict.model_copy(update={"columns": _sources(events, merged.taken)})
    return replace(base, write=write, clock=clock_row, conflict=conflict, action=action)


def _sources(events: list[ChangeEvent], taken: dict[str, Any]) -> dict[str, str]:
    """Each column the remote writes changed -> whose value the row holds now."""
    changed = {c for e in events for c in changed_columns(e)}
    return {c: "remote" if c in taken else "local" for c in sorted(changed)}


def _losers(decision: Decision, events: list[ChangeEvent], taken: dict[str, Any], local: dict | None,
            result: dict | None) -> tuple[RowVersion, ...]:
    """The versions that lost at least one column: the remote one when a column it changed kept the
    local value (or its row stayed away), the local one when the remote one replaced a value of it."""
    if decision.action is not Action.RESOLVED:
        return ()
    losers = []
    changed = {c for e in events for c in changed_columns(e)}
    if (decision.remote.values is not None and result is None) or any(c not in taken for c in changed):
        losers.append(decision.remote)
    if decision.local is not None and (local is not None and (result is None or any(
            c in taken and local.get(c) != result.get(c) for c in changed))):
        losers.append(decision.local)
    return tuple(losers)


__all__ = ["planned", "read_states", "stored_state"]
