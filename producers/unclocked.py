"""The producer's continuous report of changes published without a clock.

A local write to a replicated table that has no clock triggers (no `cdcsync init`, a table created
later, triggers dropped) reaches the binlog without a `row_clocks` row, so its change event carries
no `vclock` and every sink applies it as it comes: two regions writing that row at once end with
each other's values and no conflict. The producer cannot fix a change already in the binlog, and
stopping would not stop the application's writes (only the replication of every other table), so
it reports: every such change counts in `cdcsync_producer_unclocked_events_total{region,db,table}`
and logs an error per table at most every `interval_s`. Tables declared `single_writer` are not
reported. At start, `report_tables` names the tables without triggers before any write happens.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from typing import Any

from producers.metrics import ProducerMetrics
from schemas.config import PipelineConfig

log = logging.getLogger(__name__)

_ROW_OPS = ("insert", "update", "delete")


class UnclockedWatch:
    """Owned by the capture thread."""

    def __init__(self, config: PipelineConfig, region: str, metrics: ProducerMetrics, interval_s: float = 60.0,
                 clock: Any = time.monotonic) -> None:
        self._config = config
        self._region = region
        self._metrics = metrics
        self._interval_s = interval_s
        self._clock = clock
        # (db, table) -> its counter child, or None for a single-writer table (labels() is slow per event)
        self._counters: dict[tuple[str, str], Any] = {}
        self._logged: dict[tuple[str, str], float] = {}

    def check(self, messages: Iterable[dict[str, Any]]) -> None:
        """Count and report the local row changes among `messages` that carry no clock."""
        region = self._region
        counts: dict[tuple[str, str], int] = {}   # one counter increment and log check per table, not per change
        for message in messages:
            if message.get("vclock") is not None or message.get("origin") != region \
                    or message.get("op") not in _ROW_OPS:
                continue
            table = (message["db"], message["table"])
            counts[table] = counts.get(table, 0) + 1
        for table, count in counts.items():
            if table not in self._counters:
                self._counters[table] = (None if self._config.table(*table).single_writer
                                         else self._metrics.unclocked_events.labels(self._region, *table))
            counter = self._counters[table]
            if counter is None:
                continue
            counter.inc(count)
            now = self._clock()
            last = self._logged.get(table)
            if last is None or now - last >= self._interval_s:
                self._logged[table] = now
                log.error("region %s: a write to %s.%s carries no clock (the table has no clock triggers): "
                          "its change is applied blindly elsewhere, and a concurrent write to the same row in "
                          "another region diverges silently; run `cdcsync init`, or declare the table "
                          'single-writer (tables."%s.%s".single_writer = true)', self._region, *table, *table)
