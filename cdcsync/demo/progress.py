"""What the demo's live view shows, where each number comes from, and how it is drawn.

Sources, each chosen for being exact and cheap enough to read every half second:

- change events per region: the producer's `cdcsync_producer_events_total` (summed over tables),
  scraped from its Prometheus endpoint (`regions.<name>.metrics_port`); a restarted producer starts
  from zero again, which the rate treats as a reset;
- conflicts per region: `COUNT(*)` of the region's `<meta_db>.conflict_log`, durable and exactly
  what `cdcsync conflicts` reads (the sinks' `cdcsync_conflicts_total` restarts with the process);
- lag: `cdcsync/tools/status.py`, the same numbers as `cdcsync status` (producer transactions behind its
  server, each sink group's committed offsets behind the high watermarks). One status round opens a
  few Kafka clients per region and takes a second or more, so `LagWatcher` runs it in a thread and
  the view shows its latest round.
"""

from __future__ import annotations

import threading
import time
import urllib.request
from collections import deque
from dataclasses import dataclass, field

from prometheus_client.parser import text_string_to_metric_families
from rich.console import Group
from rich.table import Table
from rich.text import Text

from cdcsync.demo.workload import RegionCounts
from cdcsync.tools.status import RegionStatus, pipeline_status
from common.metadata_tables import CONFLICT_LOG
from common.mysql import connect
from schemas.config import PipelineConfig
from schemas.identifiers import quote_name


def producer_events(port: int, timeout_s: float = 1.0) -> int | None:
    """`cdcsync_producer_events_total` summed over its labels, or None if the endpoint does not answer."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=timeout_s) as response:
            text = response.read().decode()
    except OSError:
        return None
    total = 0.0
    for family in text_string_to_metric_families(text):
        if family.name == "cdcsync_producer_events":
            total += sum(s.value for s in family.samples if s.name == "cdcsync_producer_events_total")
    return int(total)


def conflict_count(config: PipelineConfig, region: str) -> int | None:
    """Records in the region's conflict log, or None if it cannot be read (yet)."""
    try:
        with connect(config.region(region).mysql) as conn, conn.cursor() as cur:
            cur.execute(f"SELECT COUNT(*) FROM {quote_name(config.meta_db)}.{quote_name(CONFLICT_LOG)}")
            return int(cur.fetchone()[0])
    except Exception:   # noqa: BLE001 - shown as "?" in the view, never fatal
        return None


@dataclass(slots=True)
class RegionRate:
    """A counter's recent samples, for a per-second rate over the last few seconds."""

    window_s: float = 3.0
    samples: deque = field(default_factory=deque)
    total: int = 0          # across producer restarts
    _last: int | None = None

    def add(self, now: float, value: int | None) -> None:
        if value is None:
            return
        if self._last is not None:
            self.total += value - self._last if value >= self._last else value   # a restart resets to 0
        else:
            self.total = value
        self._last = value
        self.samples.append((now, self.total))
        while len(self.samples) > 2 and now - self.samples[0][0] > self.window_s:
            self.samples.popleft()

    @property
    def per_second(self) -> float:
        if len(self.samples) < 2:
            return 0.0
        (t0, v0), (t1, v1) = self.samples[0], self.samples[-1]
        return (v1 - v0) / (t1 - t0) if t1 > t0 else 0.0


class LagWatcher:
    """Runs `pipeline_status` over and over in a daemon thread; `latest` is the last full round."""

    def __init__(self, config: PipelineConfig, *, timeout_s: float = 5.0, pause_s: float = 0.5) -> None:
        self.config = config
        self.timeout_s = timeout_s
        self.pause_s = pause_s
        self.latest: list[RegionStatus] | None = None
        self.latest_started: float = 0.0     # monotonic time the latest round began
        self.rounds = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="demo-lag-watcher", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(self.timeout_s * 3)

    def _loop(self) -> None:
        while not self._stop.is_set():
            began = time.monotonic()
            result = pipeline_status(self.config, timeout_s=self.timeout_s)
            self.latest, self.latest_started = result, began
            self.rounds += 1
            self._stop.wait(self.pause_s)

    def round_after(self, moment: float, timeout_s: float) -> list[RegionStatus] | None:
        """The first round that began after `moment` (waits up to `timeout_s`)."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.latest is not None and self.latest_started > moment:
                return self.latest
            time.sleep(0.1)
        return None


def lags(status: RegionStatus) -> tuple[int | None, int | None, int | None]:
    """(producer transactions behind, db-sink lag, cache-sink lag); None where unknown."""
    groups = {g.sink: g.lag for g in status.groups}
    return status.behind_transactions, groups.get("db"), groups.get("cache")


class ProgressView:
    """Samples the fast sources on each `sample()` and draws the live table."""

    def __init__(self, config: PipelineConfig, watcher: LagWatcher) -> None:
        self.config = config
        self.watcher = watcher
        self.events = {r: RegionRate() for r in config.regions}
        self.writes = {r: RegionRate() for r in config.regions}
        self.conflicts: dict[str, int | None] = dict.fromkeys(config.regions)

    def sample(self, counts: dict[str, RegionCounts]) -> None:
        now = time.monotonic()
        for region, settings in self.config.regions.items():
            if settings.metrics_port:
                self.events[region].add(now, producer_events(settings.metrics_port))
            self.writes[region].add(now, counts[region].writes)
            self.conflicts[region] = conflict_count(self.config, region)

    def render(self, phase: str, counts: dict[str, RegionCounts], notes: list[str]) -> Group:
        table = Table("region", "writes", "/s", "events", "/s", "lag: producer db cache", "conflicts", "errors",
                      title=phase, title_justify="left", caption="writes: acknowledged by the region's writers; "
                      "events: change events its producer published; lag: transactions not yet published, "
                      "events its sinks have not yet applied; conflicts: its conflict_log rows",
                      caption_justify="left")
        status = {s.region: s for s in self.watcher.latest or []}
        for region in self.config.regions:
            c = counts[region]
            behind, db, cache = lags(status[region]) if region in status else (None, None, None)
            table.add_row(region, str(c.writes), f"{self.writes[region].per_second:.0f}",
                          str(self.events[region].total), f"{self.events[region].per_second:.0f}",
                          f"{_n(behind)} {_n(db)} {_n(cache)}", _n(self.conflicts[region]),
                          str(c.errors) + (f" ({c.retries} retried)" if c.retries else ""))
        return Group(table, *(Text(n, style="dim") for n in notes))

    def line(self, phase: str, counts: dict[str, RegionCounts]) -> str:
        """One plain line of the same numbers, for logs that are not a terminal."""
        status = {s.region: s for s in self.watcher.latest or []}
        parts = []
        for region in self.config.regions:
            behind, db, cache = lags(status[region]) if region in status else (None, None, None)
            parts.append(f"{region}: {counts[region].writes} writes, {self.events[region].total} events "
                         f"({self.events[region].per_second:.0f}/s), lag {_n(behind)}/{_n(db)}/{_n(cache)}, "
                         f"{_n(self.conflicts[region])} conflicts")
        return f"{phase} | " + "; ".join(parts)


def _n(value: int | None, unit: str = "") -> str:
    return "?" if value is None else f"{value}{unit}"
