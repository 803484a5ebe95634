"""`cdcsync verify --every` (cdcsync/tools/verify_schedule.py): the interval and the divergence gauges."""

from __future__ import annotations

import pytest

from cdcsync.tools.verify import TableResult, VerifyReport
from cdcsync.tools.verify_schedule import VerifyMetrics, parse_interval


def test_intervals() -> None:
    assert [parse_interval(t) for t in ("90", "90s", "15m", "1h", "1d", "1.5h")] == [90, 90, 900, 3600, 86400, 5400]
    for bad in ("", "h", "1w", "-1h", "0.1s"):
        with pytest.raises(ValueError, match="--every"):
            parse_interval(bad)


def test_gauges_follow_the_last_round() -> None:
    metrics = VerifyMetrics()
    report = VerifyReport(("eu", "us"), 1000, True, 20,
                          tables=[TableResult("shop.a", row_differences=3, cache_differences=1), TableResult("shop.b")])
    metrics.record(report, {"shop.a": 3}, now=1234.0)
    value = metrics.registry.get_sample_value
    assert value("cdcsync_verify_divergent_rows", {"table": "shop.a"}) == 3
    assert value("cdcsync_verify_divergent_rows", {"table": "shop.b"}) == 0
    assert value("cdcsync_verify_cache_differences", {"table": "shop.a"}) == 1
    assert value("cdcsync_verify_repairs_total", {"table": "shop.a"}) == 3
    assert value("cdcsync_verify_last_run_timestamp_seconds") == 1234.0
    metrics.record(VerifyReport(("eu", "us"), 1000, True, 20, tables=[TableResult("shop.a")]), now=1300.0)
    assert value("cdcsync_verify_divergent_rows", {"table": "shop.a"}) == 0    # repaired: the alert clears
