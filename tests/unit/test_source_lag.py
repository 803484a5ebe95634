"""Seconds behind the source (consumers/source_lag.py): which timestamp an event counts from, and
the gauge a sink runner sets after each applied batch, moved by a known lag on a fake clock."""

from __future__ import annotations

import pytest
from prometheus_client import CollectorRegistry

from consumers.memory_source import InMemorySource, MemoryBroker
from consumers.metrics import SinkMetrics
from consumers.records import SourceRecord
from consumers.runner import SinkRunner
from consumers.source_lag import BehindSource, newest_by_source, source_time_us
from schemas.codec import encode
from schemas.events import ChangeEvent
from schemas.vclock import VectorClock

COMMIT_S = 1_700_000_000            # the binlog's whole commit second
COMMIT_US = COMMIT_S * 1_000_000


def change(i: int, *, region: str = "eu", ts_us: int = COMMIT_US, hlc_us: int | None = None) -> ChangeEvent:
    clock = None if hlc_us is None else VectorClock(counters={region: i + 1}, hlc_us=hlc_us)
    return ChangeEvent(region=region, origin=region, server_id=1, gtid=None, binlog_file="b.000001",
                       binlog_pos=4 + i, txn_id=f"t{i}", ts_us=ts_us, db="d", table="t", txn_index=0,
                       txn_last=True, op="insert", pk={"id": i}, before=None, after={"id": i},
                       types={"id": "int"}, vclock=clock)


def record(event: ChangeEvent, *, topic: str = "cdcsync.eu.d.t", partition: int = 0, offset: int = 0) -> SourceRecord:
    return SourceRecord(topic, partition, offset, None, b"", event, None)


class FakeClock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def gauge(registry: CollectorRegistry, sink: str, source: str) -> float | None:
    return registry.get_sample_value("cdcsync_sink_seconds_behind_source",
                                     {"region": "us", "sink": sink, "source": source})


def test_the_clock_stamp_counts_when_it_lies_in_the_commit_second() -> None:
    assert source_time_us(change(0, hlc_us=COMMIT_US + 250_000)) == COMMIT_US + 250_000
    assert source_time_us(change(0, hlc_us=COMMIT_US)) == COMMIT_US


def test_otherwise_the_binlog_second_counts() -> None:
    assert source_time_us(change(0)) == COMMIT_US                                   # no clock
    assert source_time_us(change(0, hlc_us=COMMIT_US - 1)) == COMMIT_US             # an older write's stamp
    assert source_time_us(change(0, hlc_us=COMMIT_US - 3_600_000_000)) == COMMIT_US  # a snapshot's old row
    assert source_time_us(change(0, hlc_us=COMMIT_US + 1_000_000)) == COMMIT_US     # a clock running ahead


def test_the_newest_event_per_source_region_counts() -> None:
    records = [record(change(0, hlc_us=COMMIT_US + 100), partition=0, offset=0),
               record(change(1, hlc_us=COMMIT_US + 900), partition=0, offset=1),
               record(change(2, hlc_us=COMMIT_US + 500), partition=1, offset=0),
               record(change(3, region="ap", ts_us=COMMIT_US - 2_000_000), topic="cdcsync.ap.d.t"),
               SourceRecord("cdcsync.eu.d.t", 2, 0, None, b"{", None, "undecodable", "undecodable")]
    assert newest_by_source(records) == {"eu": COMMIT_US + 900, "ap": COMMIT_US - 2_000_000}


def test_the_gauge_follows_a_known_lag() -> None:
    registry = CollectorRegistry()
    clock = FakeClock(COMMIT_S + 0.75)
    behind = BehindSource(SinkMetrics("us", registry), "db", clock=clock)
    behind.applied([record(change(0, hlc_us=COMMIT_US + 250_000))])
    assert gauge(registry, "db", "eu") == pytest.approx(0.5)
    clock.now = COMMIT_S + 12.25        # the next batch is applied 12 s after its write
    behind.applied([record(change(1, hlc_us=COMMIT_US + 250_000))])
    assert gauge(registry, "db", "eu") == pytest.approx(12.0)
    behind.applied([])                  # an empty batch says nothing: the gauge keeps its value
    assert gauge(registry, "db", "eu") == pytest.approx(12.0)
    clock.now = COMMIT_S - 5.0          # the sink's host clock behind the source's: never negative
    behind.applied([record(change(2, hlc_us=COMMIT_US + 250_000))])
    assert gauge(registry, "db", "eu") == 0.0


class _Sink:
    name = "cache"

    def __init__(self) -> None:
        self.batches: list[list[SourceRecord]] = []

    def write_batch(self, records: list[SourceRecord]) -> None:
        self.batches.append(records)

    def close(self) -> None: ...


class _NoDeadLetters:
    limit = None

    def publish(self, letters: list[object]) -> None:
        assert not letters


def test_a_sink_runner_sets_the_gauge_after_each_applied_batch() -> None:
    broker = MemoryBroker()
    broker.create_topic("cdcsync.us.d.t", 1)
    for i in range(3):
        broker.produce("cdcsync.us.d.t", 0, encode(change(i, region="us", hlc_us=COMMIT_US + 100_000 * i)))
    source = InMemorySource(broker, "g", on_revoke=lambda partitions: None)
    source.subscribe(["cdcsync.us.d.t"])
    registry = CollectorRegistry()
    sink = _Sink()
    runner = SinkRunner(source=source, sink=sink, dead_letters=_NoDeadLetters(),  # type: ignore[arg-type]
                        metrics=SinkMetrics("us", registry), batch_max_events=3, batch_max_ms=1000)
    runner.behind_source.clock = FakeClock(COMMIT_S + 2.0)
    for _ in range(20):
        if runner.step():
            break
    assert [len(b) for b in sink.batches] == [3]
    assert gauge(registry, "cache", "us") == pytest.approx(1.8)    # 2.0 s minus the newest event's 0.2 s
    source.close()
