"""The poison-flood limit: a sink stops instead of draining its stream into the dead-letter topic.

A broken deploy (a table dropped in the target, a producer that writes garbage, a new
`schema_version` this sink cannot read) turns every event into a dead letter. Publishing them all
would empty the change topics into the dead-letter topic and leave an operator to replay millions
of entries; stopping leaves them where they are, to be applied once the cause is fixed.

`DeadLetterLimit` counts dead letters in a run: a run is the dead letters in consumed order with no
applied (or skipped) record between them, across batches. `admit` is called with each group of
letters BEFORE they are published and before anything of the batch commits; when a run would grow
beyond `max_consecutive`, it raises `DeadLetterFlood` and nothing of the batch is published by
that call, committed in the database or committed in Kafka. The sink stops; on restart it resumes
at the first offset it did not commit (at or before the message where the run went over) and, if
the flood is still there, stops again after at most `max_consecutive` more dead letters.

Owned by the one thread of its runner; `begin` and `end` bracket each batch.
"""

from __future__ import annotations

from collections.abc import Iterable

from consumers.records import SourceRecord

_Where = tuple[str, int, int]


class DeadLetterFlood(RuntimeError):
    """More consecutive dead letters than `sink.max_consecutive_dead_letters`: the sink stops."""


def _where(record: SourceRecord) -> _Where:
    return record.topic, record.partition, record.offset


def _text(where: _Where) -> str:
    return f"{where[0]}[{where[1]}]@{where[2]}"


def short(text: str, width: int) -> str:
    """One line of at most `width` characters."""
    line = " ".join(text.split())
    return line if len(line) <= width else line[:width - 1] + "…"


class DeadLetterLimit:
    def __init__(self, max_consecutive: int, *, region: str, sink: str) -> None:
        """`max_consecutive`: the longest run allowed (0: no limit)."""
        self.max_consecutive = max_consecutive
        self.region, self.sink = region, sink
        self._carried = 0                       # the run at the end of the batches committed so far
        self._batch: list[SourceRecord] = []
        self._dead: set[_Where] = set()

    def begin(self, records: list[SourceRecord]) -> None:
        """A batch starts: `records` in consumed order."""
        self._batch, self._dead = records, set()

    def admit(self, letters: Iterable[tuple[SourceRecord, str]]) -> None:
        """Raise `DeadLetterFlood` if these dead letters ((record, "kind: error") pairs) make a run
        longer than the limit; else count them. A letter for a record outside the batch (a replay)
        is not counted."""
        letters = list(letters)
        dead = self._dead | {_where(r) for r, _ in letters}
        if self.max_consecutive:
            longest, first, over, _ = self._runs(dead)
            if over is not None and first is not None:
                reason = letters[-1][1] if letters else "?"
                raise DeadLetterFlood(
                    f"{self.sink} sink of region {self.region}: {longest} consecutive dead letters, more than "
                    f"sink.max_consecutive_dead_letters = {self.max_consecutive} (the run starts at or before "
                    f"{_text(first)} and goes over at {_text(over)}; last reason: {short(reason, 120)}). Stopped "
                    f"without publishing them or committing anything after the last committed batch. Fix the "
                    f"cause, or raise the limit (0: none) to dead-letter them all, then restart the sink")
        self._dead = dead

    def end(self) -> None:
        """The batch committed: its trailing run carries into the next batch."""
        self._carried = self._runs(self._dead)[3]
        self._batch, self._dead = [], set()

    def _runs(self, dead: set[_Where]) -> tuple[int, _Where | None, _Where | None, int]:
        """(longest run, where the first over-long run starts in this batch, the record where it goes
        over the limit, the run at the end of the batch)."""
        run, longest = self._carried, self._carried
        start: _Where | None = None
        first: _Where | None = None
        over: _Where | None = None
        for record in self._batch:
            where = _where(record)
            if where not in dead:
                run, start = 0, None
                continue
            if start is None:
                start = where
            run += 1
            longest = max(longest, run)
            if over is None and run > self.max_consecutive:
                first, over = start, where
        return longest, first, over, run
