"""One version of one row, as the conflict resolver sees it: values (None = deleted), clock, origin.

`RowVersion` is a frozen value object; the sinks build one from the local row's stored version and
one from the incoming change, and ask `consumers.resolution.decide` which to keep.

Per-column registers (`cells`, `tomb`) are only needed by the `column-merge` strategy. A cell is
the last write of one column: `(hlc_us, origin, value)`; `tomb` is the stamp `(hlc_us, origin)` of
the last delete. A deleted version keeps its cells, so a concurrent later write can bring the row
back with the newest value of every column whatever the delivery order. `RowVersion.write` builds
them: a write stamps only the columns it changed (every column for an insert or re-insert).

`siblings` (strategies whose order does not follow causality: `region-priority`, `custom`) are the
concurrent versions a resolved version was computed from, winner first. A later write on top of it
dominates them all, so a write starts with none.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any, Mapping, NamedTuple

import orjson

from schemas.vclock import VectorClock

Values = Mapping[str, Any]


class Cell(NamedTuple):
    """The last write of one column."""

    hlc_us: int
    origin: str
    value: Any


Stamp = tuple[int, str]  # (hlc_us, origin) of a delete


def value_hash(values: Values | None) -> str:
    """SHA-256 of the canonical JSON of `values` (sorted keys): the same in every process and region.

    Never Python's `hash()`, which is salted per process. `None` (a deleted row) hashes as `null`.
    """
    return hashlib.sha256(orjson.dumps(values, option=orjson.OPT_SORT_KEYS)).hexdigest()


@dataclass(frozen=True, slots=True)
class RowVersion:
    """A row's values (None = deleted, a tombstone), the clock of the write, and the region that made it."""

    values: Values | None
    clock: VectorClock
    origin: str
    cells: Mapping[str, Cell] | None = None    # column-merge only; see the module docstring
    tomb: Stamp | None = None                  # column-merge only
    siblings: tuple[RowVersion, ...] = ()      # region-priority, custom: the concurrent versions resolved

    @property
    def deleted(self) -> bool:
        return self.values is None

    @property
    def hash(self) -> str:
        return value_hash(self.values)

    @classmethod
    def write(cls, prev: RowVersion | None, values: Values | None, clock: VectorClock, origin: str) -> RowVersion:
        """The version a write in `origin` makes on top of `prev` (None: no row yet), with per-column stamps.

        An insert, or a write on a deleted row, stamps every column; an update stamps the columns whose
        value changed; a delete (`values=None`) moves the tombstone stamp and keeps the cells.
        """
        stamp = clock.hlc_us
        cells = dict(prev.cells_or_whole_row()) if prev is not None else {}
        tomb = prev.tomb_or_whole_row() if prev is not None else None
        if values is None:
            return cls(None, clock, origin, cells, (stamp, origin))
        fresh = prev is None or prev.values is None
        for column, value in values.items():
            if fresh or column not in prev.values or prev.values[column] != value:  # type: ignore[union-attr]
                cells[column] = Cell(stamp, origin, value)
        return cls(dict(values), clock, origin, cells, tomb)

    def heads(self) -> tuple[RowVersion, ...]:
        """The concurrent versions this one stands for: its siblings, or itself for a plain write."""
        return self.siblings or (self,)

    def cells_or_whole_row(self) -> Mapping[str, Cell]:
        """The cells, or, for a version without them, every column stamped by this version's write."""
        if self.cells is not None:
            return self.cells
        return {c: Cell(self.clock.hlc_us, self.origin, v) for c, v in (self.values or {}).items()}

    def tomb_or_whole_row(self) -> Stamp | None:
        if self.cells is not None or self.values is not None:
            return self.tomb
        return (self.clock.hlc_us, self.origin)
