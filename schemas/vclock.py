"""Vector clocks carried by row versions: region -> counter, plus a hybrid-logical timestamp.

A missing region counts as 0, and zero counters are dropped, so equal clocks are equal objects.
Regions are the actors: a clock never has more entries than there are regions. Removing a region
(`without`) is an explicit operation, never a silent pruning.

Partial order (the definition the property tests check):
- a == b  iff every counter is equal;
- a <  b  (a happened before b) iff every counter of a is <= b's and at least one is smaller;
- otherwise a and b are concurrent.
The hybrid-logical timestamp `hlc_us` does not take part in that order; it only breaks ties
between concurrent versions (last-writer-wins), and it never goes backwards within a region.
"""

from __future__ import annotations

from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field, field_validator


class Order(StrEnum):
    BEFORE = "before"          # self happened before other: other dominates
    AFTER = "after"            # self dominates other
    EQUAL = "equal"
    CONCURRENT = "concurrent"


class VectorClock(BaseModel):
    """Region -> counter, plus a hybrid-logical timestamp in µs that never goes backwards in a region."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    counters: dict[str, int] = Field(default_factory=dict)
    hlc_us: int = Field(0, ge=0)

    @field_validator("counters")
    @classmethod
    def _canonical(cls, counters: dict[str, int]) -> dict[str, int]:
        for region, count in counters.items():
            if count < 0:
                raise ValueError(f"counter of {region!r} is negative ({count})")
        return {r: counters[r] for r in sorted(counters) if counters[r] > 0}

    def __hash__(self) -> int:
        return hash((tuple(self.counters.items()), self.hlc_us))

    def compare(self, other: "VectorClock") -> Order:
        less = greater = False
        for region in self.counters.keys() | other.counters.keys():
            mine, theirs = self.counters.get(region, 0), other.counters.get(region, 0)
            if mine < theirs:
                less = True
            elif mine > theirs:
                greater = True
            if less and greater:
                return Order.CONCURRENT
        if less:
            return Order.BEFORE
        if greater:
            return Order.AFTER
        return Order.EQUAL

    def dominates(self, other: "VectorClock") -> bool:
        """self counts every event other counts (after or equal)."""
        return self.compare(other) in (Order.AFTER, Order.EQUAL)

    def merge(self, other: "VectorClock") -> "VectorClock":
        """Element-wise maximum of the counters and of the timestamps: commutative, associative,
        idempotent, and it dominates both inputs."""
        counters = dict(self.counters)
        for region, count in other.counters.items():
            if count > counters.get(region, 0):
                counters[region] = count
        return VectorClock(counters=counters, hlc_us=max(self.hlc_us, other.hlc_us))

    def increment(self, region: str, now_us: int) -> "VectorClock":
        """The clock of a new write in `region` on top of this version: its counter + 1, and a
        timestamp after both this version's and the wall clock's."""
        counters = dict(self.counters)
        counters[region] = counters.get(region, 0) + 1
        return VectorClock(counters=counters, hlc_us=max(self.hlc_us + 1, now_us))

    def without(self, region: str) -> "VectorClock":
        """This clock with a removed region's entry dropped (see docs: removing a region)."""
        return VectorClock(counters={r: c for r, c in self.counters.items() if r != region}, hlc_us=self.hlc_us)
