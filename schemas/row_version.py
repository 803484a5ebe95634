"""One version of one row, as the conflict resolver sees it: values (None = deleted), clock, origin.

`RowVersion` is a frozen value object; the sinks build one from the local row's stored version and
one from the incoming change, and ask `consumers.db.resolution.decide` which to keep.

`siblings` (strategies whose order does not follow causality: `region-priority`, `custom`) are the
concurrent versions a resolved version was computed from, winner first. A later write on top of it
dominates them all, so a write starts with none.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any, Mapping

import orjson

from schemas.vclock import VectorClock

Values = Mapping[str, Any]


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
    siblings: tuple[RowVersion, ...] = ()      # region-priority, custom: the concurrent versions resolved

    @property
    def deleted(self) -> bool:
        return self.values is None

    @property
    def hash(self) -> str:
        return value_hash(self.values)

    def heads(self) -> tuple[RowVersion, ...]:
        """The concurrent versions this one stands for: its siblings, or itself for a plain write."""
        return self.siblings or (self,)
