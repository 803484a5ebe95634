"""Delta columns: numeric columns merged as counters, so every region's increments count once everywhere.

A table's `delta_columns` (schemas/config.py) are merged operation by operation: each remote UPDATE
adds its own `after - before` of those columns to the local value, exactly once per version, whatever
the clock decision (consumers/db/resolution.py) says about the other columns: skipped (dominated),
applied (newer) or resolved (concurrent). Addition commutes, so the order in which the regions receive
the versions does not matter (docs/conflicts.md, "delta columns").

Exactly once: a version is named by its origin region and that region's counter in its clock (a
region's writes of one row tick its counter one by one, and reach every other region in commit order
per key). `row_clocks.delta_seen` keeps, per row, the highest counter of every origin whose delta is
counted here (the frontier). A version at or below it is not counted again: replays, restarts, a
changed history that the markers cannot prove applied, the same version read twice.

Whole-row cases: an INSERT, a DELETE or a snapshot is an assignment, not an increment. When the run of
versions being applied holds one, or the row is absent here (never seen, or a tombstone), the row is
what the table's strategy decides, delta columns included; when that takes the remote values, the
frontier becomes at least the remote clock (its values hold the deltas of the versions it counts).

Pure: no database access. The planner (consumers/db/local_versions.py) calls `merge` per key.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Mapping

import orjson

from schemas.events import ChangeEvent, Op
from schemas.row_version import RowVersion, Values

Frontier = dict[str, int]
Number = int | Decimal

_INTEGER = re.compile(r"^(tinyint|smallint|mediumint|int|integer|bigint)(\(\d+\))?( unsigned| zerofill)*$")
_DECIMAL = re.compile(r"^(decimal|numeric)\((\d+),(\d+)\)")


class DeltaColumnError(ValueError):
    """A delta column that cannot be merged as a counter: not an integer or DECIMAL column, NULL, or a
    key column. The sink stops on it (a delta it cannot count would make the regions diverge)."""


def decimal_scale(sql_type: str) -> int | None:
    """The scale of a DECIMAL column type (`decimal(10,2)` -> 2), None for an integer type; raises
    `DeltaColumnError` for any other type."""
    kind = " ".join(sql_type.strip().lower().split())
    found = _DECIMAL.match(kind.replace(" ", ""))
    if found:
        return int(found.group(3))
    if _INTEGER.match(kind):
        return None
    raise DeltaColumnError(f"type {sql_type!r} is not an integer or DECIMAL type")


def _number(value: Any, scale: int | None, where: str) -> Number:
    if value is None:
        raise DeltaColumnError(f"{where} is NULL; delta columns must be NOT NULL")
    if scale is None:
        if isinstance(value, bool) or not isinstance(value, int):
            raise DeltaColumnError(f"{where} holds {value!r}, not an integer")
        return value
    if not isinstance(value, str):
        raise DeltaColumnError(f"{where} holds {value!r}, not a DECIMAL string")
    return Decimal(value)


def _wire(value: Number, scale: int | None) -> Any:
    """The wire value of a counter: a JSON integer, or the DECIMAL string with the column's scale."""
    if scale is None:
        return value
    return format(Decimal(value).quantize(Decimal(1).scaleb(-scale)), "f")


@dataclass(frozen=True, slots=True)
class DeltaColumns:
    """The delta columns of one table, as its config names them."""

    table: str                  # `db.table`, for error messages
    columns: tuple[str, ...]

    def scales(self, event: ChangeEvent) -> dict[str, int | None]:
        scales = {}
        for column in self.columns:
            if column in event.pk:
                raise DeltaColumnError(f'tables."{self.table}".delta_columns: {column!r} is a key column')
            sql_type = event.types.get(column)
            if sql_type is None:
                raise DeltaColumnError(f'tables."{self.table}".delta_columns: the table has no column {column!r}')
            try:
                scales[column] = decimal_scale(sql_type)
            except DeltaColumnError as err:
                raise DeltaColumnError(f'tables."{self.table}".delta_columns: column {column!r}: {err}') from None
        return scales

    def delta(self, event: ChangeEvent, scales: Mapping[str, int | None]) -> dict[str, Number]:
        """`after - before` of every delta column of an UPDATE."""
        before, after = event.before or {}, event.after or {}
        where = f"{self.table} key {dict(event.pk)}"
        return {c: _number(after.get(c), s, f"{where}: column {c!r} after the change")
                - _number(before.get(c), s, f"{where}: column {c!r} before the change") for c, s in scales.items()}


def version_origin(event: ChangeEvent) -> str:
    return event.version_origin or event.origin


def counter(event: ChangeEvent) -> int:
    """The version's number among its origin's writes of the row: its origin's counter."""
    return (event.vclock.counters.get(version_origin(event), 0)) if event.vclock is not None else 0


def frontier_json(frontier: Frontier) -> str:
    return orjson.dumps(dict(sorted(frontier.items()))).decode()


def parse_frontier(text: str | bytes | None) -> Frontier:
    return {str(k): int(v) for k, v in orjson.loads(text).items()} if text else {}


@dataclass(frozen=True, slots=True)
class Merged:
    """The row afterwards (None: absent) and the frontier to store with its clock."""

    values: Values | None
    frontier: Frontier


def merge(columns: DeltaColumns, *, region: str, local: RowVersion | None, result: RowVersion,
          skipped: bool, run: list[ChangeEvent], frontier: Frontier) -> Merged:
    """The row after a run of one origin's versions of one key (in commit order; the last is the one
    the clock decision was made on), given the decision's `result` (`skipped`: the decision kept the
    local version) and the local row (`local`, None or a tombstone when absent)."""
    last = run[-1]
    origin = version_origin(last)
    seen = frontier.get(origin, 0)
    fresh = [e for e in run if counter(e) > seen]
    updated = dict(frontier)
    # A snapshot event is another region's copy of a version, not its writer's own change: the
    # writer's updates up to that counter may still be on their way here, so it moves no frontier.
    writes = [e for e in fresh if e.op is not Op.SNAPSHOT]
    if writes:
        updated[origin] = max(seen, *(counter(e) for e in writes))
    local_present = local is not None and local.values is not None
    assignment = any(e.op is not Op.UPDATE for e in fresh)
    if result.values is None:
        return Merged(None, updated)
    if not local_present or assignment:
        # Whole row: the strategy's values. Taken from the remote: they count what its clock counts.
        if not skipped and dict(result.values) != dict(local.values if local_present else {}):  # type: ignore[union-attr]
            for region_name, count in result.clock.counters.items():
                if region_name != region and count > updated.get(region_name, 0):
                    updated[region_name] = count
        return Merged(result.values, updated)
    scales = columns.scales(last)
    values = dict(result.values)
    base = local.values  # type: ignore[union-attr]
    for column, scale in scales.items():
        total: Number = _number(base.get(column), scale, f"{columns.table} key {dict(last.pk)}: local {column!r}")
        for event in fresh:
            total += columns.delta(event, {column: scale})[column]
        values[column] = _wire(total, scale)
    return Merged(values, updated)


def key_runs(events: list[Any]) -> dict[tuple[str, bytes | None], list[Any]]:
    """Records by (topic, Kafka key), in order: the versions a batch reduces to its last one per key."""
    runs: dict[tuple[str, bytes | None], list[Any]] = {}
    for record in events:
        runs.setdefault((record.topic, record.key), []).append(record)
    return runs


__all__ = ["DeltaColumnError", "DeltaColumns", "Frontier", "Merged", "counter", "decimal_scale", "frontier_json",
           "key_runs", "merge", "parse_frontier", "version_origin"]
