"""How far a sink is behind its sources, in seconds (Debezium's MilliSecondsBehindSource).

After each batch a sink made durable, per source region: now minus the source time of the newest
event of that region in the batch, never below 0. Exported as the gauge
`cdcsync_sink_seconds_behind_source{region, sink, source}` (consumers/metrics.py).

The source time of an event. MariaDB binlogs stamp a transaction with whole seconds (`ts_us` is
that second), so on its own it overstates the lag by up to 1 s. A row with a clock (the clock
triggers, docs/clocks.md) carries `hlc_us`, the trigger's `SYSDATE(6)` at the write, in µs: when
it falls inside the transaction's commit second it is this write's own stamp, taken a statement
before the commit, and it is used. Outside that second it belongs to an older write (a version
applied from another region, a snapshot of an old row, a clock from a region whose clock runs
ahead) and the binlog second is used. Either way the figure is at most 1 s above the true lag,
and below it only by clock differences between the hosts (the sink's, the source database's, and
a region's whose clock ran ahead and left its stamp on the row: the trigger never lowers it).
A version applied from another region within the second of its original write keeps that
write's stamp: the cache of the applying region then reports the lag from the original write,
end to end.

The gauge moves only when a batch is applied: a sink that stops applying keeps its last value,
which the consumer-lag metric (`cdcsync_sink_consumer_lag_messages`) and /healthz report instead.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from typing import Any

from consumers.metrics import SinkMetrics
from consumers.records import SourceRecord

SECOND_US = 1_000_000


def source_time_us(event: Any) -> int:
    """The source time of one event, µs since the epoch (see the module docstring)."""
    commit_us: int = event.ts_us
    clock = getattr(event, "vclock", None)
    if clock is not None and commit_us <= clock.hlc_us < commit_us + SECOND_US:
        return clock.hlc_us
    return commit_us


def newest_by_source(records: Iterable[SourceRecord]) -> dict[str, int]:
    """Per source region, the newest source time (µs) among the decoded records."""
    last: dict[tuple[str, int], SourceRecord] = {}
    for record in records:   # a partition's records are in commit order: its last is its newest
        if record.event is not None:
            last[(record.topic, record.partition)] = record
    newest: dict[str, int] = {}
    for record in last.values():
        event = record.event
        stamp = source_time_us(event)
        if stamp > newest.get(event.region, -1):
            newest[event.region] = stamp
    return newest


class BehindSource:
    """Sets the seconds-behind-source gauge of one sink after each applied batch."""

    def __init__(self, metrics: SinkMetrics, sink: str, clock: Callable[[], float] = time.time) -> None:
        self.metrics = metrics
        self.sink = sink
        self.clock = clock

    def applied(self, records: Iterable[SourceRecord]) -> None:
        newest = newest_by_source(records)
        if not newest:
            return
        now_us = self.clock() * SECOND_US
        for source, stamp in newest.items():
            self.metrics.behind_source(self.sink, source, max(0.0, (now_us - stamp) / SECOND_US))
