"""Partitions a sink holds: paused at a record it cannot apply yet, released by a periodic check.

A sink (the database sink, consumers/db/schema_waits.py) calls `hold(tp, offset, ...)` for the
first record of a partition it cannot apply; from then on, that partition's records at or after
`offset` are neither applied nor committed. The runner (consumers/runner.py) pauses the partition
at `offset` on its source (`Source.hold`: later records are fetched again after the release) and,
every `recheck_ms`, calls `recheck()`, which asks the sink's `check` which holds may go and
resumes those (`Source.release`). Other partitions keep flowing.

Not thread-safe: owned by the runner's thread, like the sink and the source.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from consumers.records import SourceRecord, TopicPartition

__all__ = ["Hold", "PartitionHolds"]


@dataclass(frozen=True, slots=True)
class Hold:
    tp: TopicPartition
    offset: int          # the first record not applied: the partition resumes here
    table: str           # `db.table` of that record
    reason: str
    since_us: int


class PartitionHolds:
    def __init__(self, recheck_ms: int, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.recheck_s = recheck_ms / 1000
        self._clock = clock
        self.holds: dict[TopicPartition, Hold] = {}
        self._new: dict[TopicPartition, int] = {}
        self._checked = clock()
        # Set by the sink: which holds may go (their partitions are resumed), and what to do when
        # a hold is dropped because its partition left this member.
        self.check: Callable[[list[Hold]], list[TopicPartition]] = lambda holds: []
        self.on_forget: Callable[[list[Hold]], None] = lambda holds: None

    def hold(self, tp: TopicPartition, offset: int, table: str, reason: str) -> Hold | None:
        """Hold `tp` from `offset` on; returns the new hold, or None when it is held already (at an
        earlier offset, which wins)."""
        current = self.holds.get(tp)
        if current is not None and current.offset <= offset:
            return None
        hold = self.holds[tp] = Hold(tp, offset, table, reason, time.time_ns() // 1000)
        self._new[tp] = offset
        return hold

    def held(self, record: SourceRecord) -> bool:
        hold = self.holds.get(record.tp)
        return hold is not None and record.offset >= hold.offset

    def take_new(self) -> dict[TopicPartition, int]:
        """The holds made since the last call, partition -> offset: for the runner to pause."""
        new, self._new = self._new, {}
        return new

    def recheck(self, force: bool = False) -> list[TopicPartition]:
        """Every `recheck_ms` (or at once with `force`): the partitions the sink's `check` lets go,
        no longer held. The caller resumes them."""
        if not self.holds or (not force and self._clock() - self._checked < self.recheck_s):
            return []
        self._checked = self._clock()
        released = list(dict.fromkeys(tp for tp in self.check(list(self.holds.values())) if tp in self.holds))
        for tp in released:
            del self.holds[tp]
            self._new.pop(tp, None)
        return released

    def due_now(self) -> None:
        """The next `recheck` runs the check at once (a hold that may be released soon)."""
        self._checked = float("-inf")

    def forget(self, partitions: list[TopicPartition]) -> None:
        """The partitions left this member (revoked): their next owner meets the record again."""
        gone = [self.holds.pop(tp) for tp in partitions if tp in self.holds]
        for tp in partitions:
            self._new.pop(tp, None)
        if gone:
            self.on_forget(gone)
