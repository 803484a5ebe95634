"""The sinks' continuous report of row changes that arrive without a clock.

A change of a table without clock triggers in its region carries no `vclock`, so the sinks apply it
as it comes, without a decision: two regions writing that row at once diverge without a conflict
(docs/clocks.md, "Tables without clock triggers"). Each such change (a local write of the region it
was read from, not an applied copy) counts in `cdcsync_sink_unclocked_events_total{region,sink,table}`,
and a warning is logged per table at most every `interval_s`. Tables declared `single_writer` are
not reported.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from consumers.metrics import SinkMetrics
from consumers.records import SourceRecord
from schemas.config import PipelineConfig
from schemas.events import ChangeEvent, Op

log = logging.getLogger(__name__)

_ROW_OPS = (Op.INSERT, Op.UPDATE, Op.DELETE, Op.SNAPSHOT)


class UnclockedChanges:
    """Owned by one sink runner's thread."""

    def __init__(self, config: PipelineConfig, sink: str, metrics: SinkMetrics, interval_s: float = 60.0,
                 clock: Any = time.monotonic) -> None:
        self._config, self._sink, self._metrics = config, sink, metrics
        self._interval_s, self._clock = interval_s, clock
        self._exempt: dict[tuple[str, str], bool] = {}
        self._logged: dict[tuple[str, str], float] = {}

    def check(self, records: list[SourceRecord]) -> None:
        for record in records:
            event = record.event
            if not isinstance(event, ChangeEvent) or event.vclock is not None or event.op not in _ROW_OPS \
                    or event.origin != event.region:
                continue
            table = (event.db, event.table)
            exempt = self._exempt.get(table)
            if exempt is None:
                exempt = self._exempt[table] = self._config.table(*table).single_writer
            if exempt:
                continue
            name = f"{event.db}.{event.table}"
            self._metrics.unclocked(self._sink, name)
            now = self._clock()
            last = self._logged.get(table)
            if last is None or now - last >= self._interval_s:
                self._logged[table] = now
                log.warning("%s sink: changes of %s from %s carry no clock (no clock triggers there): applied as "
                            "they come, so concurrent writes to one row diverge silently; run `cdcsync init`, or "
                            'declare the table single-writer (tables."%s".single_writer = true)',
                            self._sink, name, event.region, name)
