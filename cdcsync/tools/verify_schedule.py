"""`cdcsync verify --every 1h`: verify (and `--repair`) on a schedule, with divergence metrics.

Each round runs `verify`, optionally repairs what it found (cdcsync/tools/repair.py), and sets the
gauges below, served on `--metrics-port` for Prometheus; the `CdcsyncDivergence` and
`CdcsyncVerifyNotRunning` alerts (deploy/prometheus/alerts.yml) read them. A round that cannot read
a region counts an error and keeps the previous gauges.
"""

from __future__ import annotations

import re
import time

from prometheus_client import CollectorRegistry, Counter, Gauge

from cdcsync.tools.verify import VerifyReport

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_interval(text: str) -> float:
    """`90s`, `15m`, `1h`, `1d` (or plain seconds) -> seconds; at least 1 s."""
    found = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smhd]?)\s*", text or "")
    if not found:
        raise ValueError(f"--every {text!r}: give a duration such as 90s, 15m, 1h or 1d")
    seconds = float(found.group(1)) * _UNITS[found.group(2) or "s"]
    if seconds < 1:
        raise ValueError(f"--every {text!r}: at least 1s")
    return seconds


class VerifyMetrics:
    """The scheduled verify's gauges, in their own registry."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        self.rows = Gauge("cdcsync_verify_divergent_rows", "Rows that differ between regions at the last verify",
                          ["table"], registry=self.registry)
        self.caches = Gauge("cdcsync_verify_cache_differences", "Cache entries that differ from their database "
                            "at the last verify", ["table"], registry=self.registry)
        self.last_run = Gauge("cdcsync_verify_last_run_timestamp_seconds", "When the last verify round finished",
                              registry=self.registry)
        self.repairs = Counter("cdcsync_verify_repairs", "Rows written by verify --repair", ["table"],
                               registry=self.registry)
        self.errors = Counter("cdcsync_verify_errors", "Verify rounds that could not read a region",
                              registry=self.registry)

    def record(self, report: VerifyReport, repaired: dict[str, int] | None = None, now: float | None = None) -> None:
        for result in report.tables:
            self.rows.labels(result.table).set(result.row_differences)
            self.caches.labels(result.table).set(result.cache_differences)
        for table, count in (repaired or {}).items():
            self.repairs.labels(table).inc(count)
        self.last_run.set(time.time() if now is None else now)


__all__ = ["VerifyMetrics", "parse_interval"]
