"""The producer's report of local changes published without a clock: counted per table, logged at
most once per interval, single-writer tables and applied copies left out."""

from __future__ import annotations

import logging

from prometheus_client import CollectorRegistry

from producers.metrics import ProducerMetrics
from producers.unclocked import UnclockedWatch
from schemas.config import parse_config


def test_unclocked_local_changes_are_counted_and_logged_once_per_interval(caplog) -> None:
    registry = CollectorRegistry()
    config = parse_config({"regions": {"eu": {"server_id": 1}, "us": {"server_id": 2}},
                           "tables": {"d.single": {"single_writer": True}}})
    now = [0.0]
    watch = UnclockedWatch(config, "eu", ProducerMetrics(registry), interval_s=60, clock=lambda: now[0])

    def change(table: str, **over) -> dict:
        return {"vclock": None, "origin": "eu", "op": "update", "db": "d", "table": table, **over}

    batch = [change("t"), change("single"), change("t", vclock={"counters": {"eu": 1}, "hlc_us": 1}),
             change("t", origin="us"), change("t", op="truncate")]
    with caplog.at_level(logging.ERROR):
        watch.check(batch)
        now[0] = 30.0
        watch.check(batch)
        now[0] = 61.0
        watch.check(batch)

    def count(table: str) -> float | None:
        return registry.get_sample_value("cdcsync_producer_unclocked_events_total",
                                         {"region": "eu", "db": "d", "table": table})
    assert count("t") == 3 and count("single") is None
    logged = [r.getMessage() for r in caplog.records if "carries no clock" in r.getMessage()]
    assert len(logged) == 2 and 'tables."d.t".single_writer = true' in logged[0]
