"""Prometheus metrics of the sinks."""

from __future__ import annotations

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge, Histogram


class SinkMetrics:
    def __init__(self, region: str, registry: CollectorRegistry = REGISTRY) -> None:
        self.region = region
        self.applied_events = Counter("cdcsync_sink_events_applied_total", "Events applied", ["region", "sink"],
                                      registry=registry)
        self.skipped_events = Counter("cdcsync_sink_events_skipped_total",
                                      "Events deliberately not applied, by reason", ["region", "sink", "reason"],
                                      registry=registry)
        self.batch_size = Histogram("cdcsync_sink_batch_events", "Events per applied batch", ["region", "sink"],
                                    buckets=(1, 10, 50, 100, 250, 500, 1000, 2000, 5000), registry=registry)
        self.apply_seconds = Histogram("cdcsync_sink_apply_seconds", "Time to apply one transaction or pipeline",
                                       ["region", "sink"], registry=registry)
        self.retries = Counter("cdcsync_sink_retries_total", "Transient errors retried", ["region", "sink"],
                               registry=registry)
        self.broker_unreachable_seconds = Gauge(
            "cdcsync_sink_broker_unreachable_seconds",
            "How long the sink has been retrying a batch the broker does not answer for (topic id lookup, "
            "forwarding, dead letters); 0 once it answers", ["region", "sink"], registry=registry)
        self.dlq = Counter("cdcsync_sink_dead_letters_total", "Events sent to the dead-letter topic",
                           ["region", "sink"], registry=registry)
        self.lag = Gauge("cdcsync_sink_consumer_lag_messages", "High watermark minus committed position",
                         ["region", "sink", "topic", "partition"], registry=registry)
        self.behind_source_seconds = Gauge(
            "cdcsync_sink_seconds_behind_source",
            "Seconds between the source write of the newest event the sink applied and that batch's apply, per "
            "source region (consumers/source_lag.py)", ["region", "sink", "source"], registry=registry)
        self.unclocked_events = Counter("cdcsync_sink_unclocked_events_total",
                                        "Row changes received without a clock (table without clock triggers in its "
                                        "region, not declared single_writer)", ["region", "sink", "table"],
                                        registry=registry)
        self.conflicts = Counter("cdcsync_conflicts_total", "Concurrent versions resolved by the database sink",
                                 ["region", "table", "strategy"], registry=registry)

        self.schema_waits = Gauge("cdcsync_sink_waiting_for_schema",
                                  "Partitions of a table the database sink holds because the target cannot hold "
                                  "their next event yet (docs/schema-changes.md)", ["region", "table"],
                                  registry=registry)
        self.ddl_applied = Counter("cdcsync_sink_ddl_total",
                                   "Schema owner DDL the database sink applied (additive, destructive) or refused",
                                   ["region", "table", "kind"], registry=registry)
        self.source_resets = Counter("cdcsync_sink_source_resets_total",
                                     "Source history or topic changes seen by replay detection (docs/apply.md)",
                                     ["region", "sink", "kind"], registry=registry)

    def waiting_for_schema(self, table: str, partitions: int) -> None:
        self.schema_waits.labels(self.region, table).set(partitions)

    def ddl(self, table: str, kind: str) -> None:
        self.ddl_applied.labels(self.region, table, kind).inc()

    def behind_source(self, sink: str, source: str, seconds: float) -> None:
        self.behind_source_seconds.labels(self.region, sink, source).set(seconds)

    def source_reset(self, sink: str, kind: str) -> None:
        self.source_resets.labels(self.region, sink, kind).inc()

    def conflict(self, table: str, strategy: str) -> None:
        self.conflicts.labels(self.region, table, strategy).inc()

    def unclocked(self, sink: str, table: str) -> None:
        self.unclocked_events.labels(self.region, sink, table).inc()

    def applied(self, sink: str, events: int, seconds: float) -> None:
        self.applied_events.labels(self.region, sink).inc(events)
        self.apply_seconds.labels(self.region, sink).observe(seconds)

    def batch(self, sink: str, events: int) -> None:
        self.batch_size.labels(self.region, sink).observe(events)

    def skipped(self, sink: str, reason: str, count: int = 1) -> None:
        self.skipped_events.labels(self.region, sink, reason).inc(count)

    def retried(self, sink: str) -> None:
        self.retries.labels(self.region, sink).inc()

    def broker_unreachable(self, sink: str, seconds: float) -> None:
        self.broker_unreachable_seconds.labels(self.region, sink).set(seconds)

    def dead_lettered(self, sink: str, count: int) -> None:
        self.dlq.labels(self.region, sink).inc(count)
