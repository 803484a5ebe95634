"""`column-lww`: per-column last-writer-wins, merged write by write, so every region ends the same.

Every write is stamped `(hlc_us, origin)`: its clock's hybrid timestamp and the region that made it
(unique per row: a region's writes of a row have increasing `hlc_us`, and two regions differ by
name). A remote write's *changed columns* are those its before and after images differ in (an
INSERT: all). A column takes a write's value when the write's stamp is greater than the column's
stored stamp. Per column that is `max` over a total order: the result is the value of the
max-stamped write of the column among the writes a region received, whatever their order, with
replays. Every region receives every region's own writes (mesh), so all end the same. The local
writes are stamped by the clock triggers (common/clock_triggers.py) with the same rule (a local
write's `hlc_us` is above every stamp the row holds).

Rows come and go by a row-level rule over the same stamps: the row exists when its greatest
INSERT stamp is above its greatest DELETE stamp. So a delete beats every update, even a later
concurrent one (updates do not bring a row back); an INSERT stamped after the delete does. An
insert stamps every column; the columns written after it keep their own stamps.

The stored state, `row_clocks.col_stamps` (JSON, `ColumnState`):
`{"i": [hlc, origin], "d": [hlc, origin], "c": {column: [hlc, origin]}, "g": {column: value}}`:
- `i`, `d`: the greatest insert and delete stamps (absent: none seen; a row present here without
  `i` existed before its stamps, as if inserted at the lowest stamp);
- `c`: the stamps of the columns written after `i` (a column without an entry has stamp `i`);
- `g` (ghost values): while the row is absent, the values of the columns stamped after `d`, the
  only ones an INSERT that brings the row back can lose to. Written by the sink only (a local delete
  is stamped above every column).

An UPDATE of a row absent here (its INSERT still on its way from another region, or deleted) is
kept as ghost values until an INSERT stamped after the last delete arrives. A SNAPSHOT event is a
copy, not a write: it fills a row never seen here (no local row, no stamps: `cdcsync region add`),
its columns at the lowest stamp, and changes nothing else.

Pure: no database access. consumers/db/column_planning.py calls `merge` per key.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping

import orjson

from consumers.db.delta_merge import version_origin
from schemas.events import ChangeEvent, Op
from schemas.row_version import Values

Stamp = tuple[int, str]
LOWEST: Stamp = (-1, "")


class ColumnStampsError(ValueError):
    """A `row_clocks.col_stamps` text that is not the documented JSON (written by hand, or corrupted)."""


@dataclass(slots=True)
class ColumnState:
    """One row's per-column stamps, as `row_clocks.col_stamps` stores them (see the module docstring)."""

    columns: dict[str, Stamp] = field(default_factory=dict)
    inserted: Stamp | None = None
    deleted: Stamp | None = None
    ghost: dict[str, Any] = field(default_factory=dict)

    def stamp(self, column: str) -> Stamp:
        """The column's stamp: its own entry, or the insert's (which stamps every column)."""
        return max(self.columns.get(column, LOWEST), self.inserted or LOWEST)

    @property
    def live(self) -> bool:
        return self.inserted is not None and (self.deleted is None or self.inserted > self.deleted)


def _stamp(value: Any) -> Stamp:
    if not isinstance(value, list) or len(value) != 2:
        raise ColumnStampsError(f"a stamp must be [hlc_us, origin], not {value!r}")
    return (int(value[0]), str(value[1]))   # the triggers' JSON_ARRAY may write hlc_us as a string


def parse_state(text: str | bytes | None) -> ColumnState:
    if not text:
        return ColumnState()
    try:
        data = orjson.loads(text)
        return ColumnState(columns={str(c): _stamp(s) for c, s in (data.get("c") or {}).items()},
                           inserted=_stamp(data["i"]) if data.get("i") is not None else None,
                           deleted=_stamp(data["d"]) if data.get("d") is not None else None,
                           ghost=dict(data.get("g") or {}))
    except (orjson.JSONDecodeError, AttributeError, TypeError, ValueError) as err:
        raise ColumnStampsError(f"row_clocks.col_stamps {text!r} is not valid: {err}") from None


def state_json(state: ColumnState) -> str:
    data: dict[str, Any] = {}
    if state.inserted is not None:
        data["i"] = list(state.inserted)
    if state.deleted is not None:
        data["d"] = list(state.deleted)
    if state.columns:
        data["c"] = {c: list(s) for c, s in sorted(state.columns.items())}
    if state.ghost:
        data["g"] = dict(sorted(state.ghost.items()))
    return orjson.dumps(data).decode()


def write_stamp(event: ChangeEvent) -> Stamp:
    """The stamp of the write an event carries: its clock's hlc_us and the region that wrote it."""
    return (event.vclock.hlc_us if event.vclock is not None else 0, version_origin(event))


def changed_columns(event: ChangeEvent) -> tuple[str, ...]:
    """The columns a write changed: every column of an INSERT, those whose before and after images
    differ for an UPDATE (the wire values: the trigger compares the stored bytes, which encode alike)."""
    after = event.after or {}
    if event.op is Op.INSERT or event.before is None:
        return tuple(after)
    before = event.before
    return tuple(c for c, v in after.items() if c not in before or before[c] != v)


@dataclass(frozen=True, slots=True)
class Merged:
    """The row afterwards (None: absent), the state to store, and the columns the remote writes set
    here (column -> the stamp of the write whose value it took)."""

    values: Values | None
    state: ColumnState
    taken: dict[str, Stamp]


def merge(state: ColumnState, local: Mapping[str, Any] | None, run: list[ChangeEvent]) -> Merged:
    """The row after a run of remote writes of one key (one origin's, in commit order), given the
    stored `state` and the local row (`local`, None when absent). Idempotent: a write merged before
    changes nothing."""
    state = ColumnState(dict(state.columns), state.inserted, state.deleted, dict(state.ghost))
    if local is None and state.live:
        state.inserted = None             # stamps of a row removed without them (triggers off): not live
    elif local is not None and state.inserted is None:
        state.inserted = LOWEST           # a row older than its stamps
    seen = local is not None or state.inserted is not None or state.deleted is not None
    current: dict[str, Any] = dict(local) if local is not None else dict(state.ghost)
    shape: tuple[str, ...] = tuple(local) if local is not None else ()
    taken: dict[str, Stamp] = {}
    for event in run:
        stamp = write_stamp(event)
        after = event.after or {}
        if event.op is Op.DELETE:
            if state.deleted is None or stamp > state.deleted:
                state.deleted = stamp
            seen = True
            continue
        if event.op is Op.SNAPSHOT:
            if not seen:   # a copy of a row this region never had (`region add`): its columns at the lowest stamp
                seen, state.inserted, current, shape = True, LOWEST, dict(after), tuple(after)
            continue
        was_live = state.live
        for column in changed_columns(event):
            if stamp > state.stamp(column):
                current[column] = after[column]
                taken[column] = stamp
                if event.op is not Op.INSERT:
                    state.columns[column] = stamp
        if event.op is Op.INSERT:
            seen = True
            if state.inserted is None or stamp > state.inserted:
                state.inserted = stamp
            if not was_live and state.live:
                shape = tuple(after)      # brought back: the insert's columns
    # Compact: entries at or below the insert stamp say nothing `i` does not.
    state.columns = {c: s for c, s in state.columns.items() if state.inserted is None or s > state.inserted}
    if state.live:
        state.ghost = {}
        return Merged({c: current[c] for c in shape if c in current}, state, taken)
    floor = state.deleted or LOWEST
    state.ghost = {c: v for c, v in current.items() if state.stamp(c) > floor}
    return Merged(None, state, taken)


def local_write(state: ColumnState, before: Mapping[str, Any] | None, after: Mapping[str, Any] | None,
                stamp: Stamp) -> ColumnState:
    """The stamps after a local write stamped `stamp` (above every stamp of the row), as the clock
    triggers keep them: an insert stamps every column, an update the columns it changed, a delete the
    row. For writes made with the triggers off (`cdcsync verify --repair`, `conflicts resolve`)."""
    if after is None:
        return ColumnState(dict(state.columns), state.inserted, stamp, {})
    if before is None:
        return ColumnState({}, stamp, state.deleted, {})
    changed = {c: stamp for c, v in after.items() if c not in before or before[c] != v}
    return ColumnState({**state.columns, **changed}, state.inserted, state.deleted, dict(state.ghost))


__all__ = ["ColumnState", "ColumnStampsError", "LOWEST", "Merged", "Stamp", "changed_columns", "local_write", "merge",
           "parse_state", "state_json", "write_stamp"]
