"""Prometheus metrics of cache lookups (`CacheReader`) and of the Bloom filters (`cdcsync bloom`)."""

from __future__ import annotations

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge

# Which layer answered a lookup.
LAYERS = ("cache_hit", "filter_rejected", "negative_cache_hit", "db_hit", "db_miss")


_LOOKUP_COUNTERS: dict[int, tuple[Counter, Counter]] = {}


class LookupMetrics:
    """Every reader of a process shares the counters of its registry (an application may create a
    reader per thread; a metric can be registered only once)."""

    def __init__(self, region: str, registry: CollectorRegistry = REGISTRY) -> None:
        self.region = region
        counters = _LOOKUP_COUNTERS.get(id(registry))
        if counters is None:
            counters = _LOOKUP_COUNTERS[id(registry)] = (
                Counter("cdcsync_lookup_total", "Lookups by the layer that answered", ["region", "table", "layer"],
                        registry=registry),
                Counter("cdcsync_lookup_unproven_total",
                        "Absent answers the filter could not prove in time (the database answered)",
                        ["region", "table"], registry=registry))
        self.lookups, self.unproven = counters

    def answered(self, table: str, layer: str, count: int = 1) -> None:
        self.lookups.labels(self.region, table, layer).inc(count)


class FilterMetrics:
    def __init__(self, region: str, registry: CollectorRegistry = REGISTRY) -> None:
        self.region = region
        labels = ["region", "table"]
        self.fp_observed = Gauge("cdcsync_bloom_fp_rate_observed", "False positives / absent-key lookups answered",
                                 labels, registry=registry)
        self.fp_configured = Gauge("cdcsync_bloom_fp_rate_configured", "The false-positive rate filters are sized for",
                                   labels, registry=registry)
        self.keys = Gauge("cdcsync_bloom_keys", "Keys in the filter (scanned + added)", labels, registry=registry)
        self.capacity = Gauge("cdcsync_bloom_capacity", "Keys the filter is sized for", labels, registry=registry)
        self.bytes = Gauge("cdcsync_bloom_bytes", "Size of the filter's bitmap", labels, registry=registry)
        self.age = Gauge("cdcsync_bloom_age_seconds", "Time since the filter was built", labels, registry=registry)
        self.stale = Gauge("cdcsync_bloom_deleted_ratio", "Deleted keys / keys", labels, registry=registry)
        self.fresh_lag = Gauge("cdcsync_bloom_proof_age_seconds", "Age of the newest freshness proof", ["region"],
                               registry=registry)
        self.rebuilds = Counter("cdcsync_bloom_rebuilds_total", "Filter builds, by reason", ["region", "reason"],
                                registry=registry)
