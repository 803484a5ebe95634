"""Prometheus metrics of the producer. Names follow Prometheus conventions (`_total`, `_seconds`)."""

from __future__ import annotations

import time

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge


class ProducerMetrics:
    """One set per process; pass a private registry in tests to keep them apart."""

    def __init__(self, registry: CollectorRegistry = REGISTRY) -> None:
        self.events = Counter("cdcsync_producer_events_total", "Row changes published",
                              ["region", "db", "table"], registry=registry)
        self.ddl_events = Counter("cdcsync_producer_ddl_events_total", "DDL and TRUNCATE statements published",
                                  ["region"], registry=registry)
        self.ddl_not_replicated = Counter("cdcsync_producer_ddl_not_replicated_total",
                                          "DDL of a table with a schema_owner run in another region: reported, not "
                                          "replicated (docs/schema-changes.md)", ["region", "table"], registry=registry)
        self.errors = Counter("cdcsync_producer_errors_total", "Errors, by kind", ["region", "kind"],
                              registry=registry)
        self.lag = Gauge("cdcsync_producer_lag_seconds", "Now minus the commit time of the last event read",
                         ["region"], registry=registry)
        self.checkpoint_time = Gauge("cdcsync_producer_checkpoint_timestamp_seconds",
                                     "When the checkpoint last advanced (unix time)", ["region"], registry=registry)
        self.checkpoint_pos = Gauge("cdcsync_producer_checkpoint_binlog_position",
                                    "Binlog offset of the last checkpoint within its file", ["region"],
                                    registry=registry)
        self.unclocked_events = Counter("cdcsync_producer_unclocked_events_total",
                                        "Local row changes published without a clock (table without clock triggers, "
                                        "not declared single_writer)", ["region", "db", "table"], registry=registry)
        self.snapshot_rows = Counter("cdcsync_producer_snapshot_rows_total", "Rows published by snapshots",
                                     ["region", "db", "table"], registry=registry)
        # labels() costs a lock and a tuple hash per call; the hot path keeps the children instead.
        self._events: dict[tuple[str, str, str], Counter] = {}
        self._lag: dict[str, Gauge] = {}

    def events_counter(self, region: str, db: str, table: str) -> Counter:
        key = (region, db, table)
        child = self._events.get(key)
        if child is None:
            child = self._events[key] = self.events.labels(region, db, table)
        return child

    def lag_gauge(self, region: str) -> Gauge:
        child = self._lag.get(region)
        if child is None:
            child = self._lag[region] = self.lag.labels(region)
        return child

    def ddl(self, region: str) -> None:
        self.ddl_events.labels(region).inc()

    def ddl_outside_owner(self, region: str, table: str) -> None:
        self.ddl_not_replicated.labels(region, table).inc()

    def error(self, region: str, kind: str) -> None:
        self.errors.labels(region, kind).inc()

    def observed_commit(self, region: str, commit_ts_s: float) -> None:
        self.lag_gauge(region).set(max(0.0, time.time() - commit_ts_s))

    def checkpointed(self, region: str, binlog_pos: int) -> None:
        self.checkpoint_time.labels(region).set(time.time())
        self.checkpoint_pos.labels(region).set(binlog_pos)
