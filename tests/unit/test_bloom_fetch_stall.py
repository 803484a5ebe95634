"""A Bloom maintainer whose partitions hold records it does not fetch says which, recovers by
recreating its consumer at the explicit stored positions, and exits with one line when that does
not help; it assigns new partitions at explicit offsets, never OFFSET_BEGINNING (docs/lookup.md,
"When the stream stalls"). Fakes stand in for Kafka, Redis and MySQL: only the maintainer's rules
are exercised here (tests/integration/test_bloom_outages.py runs the recovery on a real broker)."""

from __future__ import annotations

import logging
from typing import Any

import pytest
from confluent_kafka import TopicPartition as KafkaTP

from consumers.cache.bloom import maintainer as module
from consumers.cache.bloom.fetch_watch import FetchStalled, FetchWatch
from consumers.cache.bloom.maintainer import BloomMaintainer

TOPIC = "p.eu.db.t"


class FakeConsumer:
    """Answers metadata and watermarks, records assignments, fetches nothing (the stuck consumer)."""

    def __init__(self, partitions: int = 2, lows: int = 0) -> None:
        self.partitions, self.lows = partitions, lows
        self.assigned: list[tuple[str, int, int]] = []
        self.closed = False

    def list_topics(self, timeout: float) -> Any:
        meta = type("T", (), {"partitions": {p: None for p in range(self.partitions)}})()
        return type("M", (), {"topics": {TOPIC: meta, "other.topic": meta}})()

    def get_watermark_offsets(self, tp: KafkaTP, timeout: float) -> tuple[int, int]:
        return self.lows, 20

    def incremental_assign(self, partitions: list[KafkaTP]) -> None:
        self.assigned += [(p.topic, p.partition, p.offset) for p in partitions]

    def consume(self, n: int, timeout: float) -> list[Any]:
        return []

    def close(self) -> None:
        self.closed = True


class FakeStore:
    def __init__(self, stored: dict[tuple[str, int], int]) -> None:
        self.stored, self.fresh = stored, 0

    def positions(self) -> dict[tuple[str, int], int]:
        return dict(self.stored)

    def now_us(self) -> int:
        return 1

    def set_fresh(self, w: int) -> None:
        self.fresh = w

    def hold_lease(self, holder: str, ms: int) -> bool:
        return True


def maintainer(monkeypatch: pytest.MonkeyPatch, stored: dict[tuple[str, int], int], *,
               high: int = 20) -> tuple[BloomMaintainer, list[FakeConsumer]]:
    import re
    import threading
    import time

    m = BloomMaintainer.__new__(BloomMaintainer)          # no servers: fakes below
    consumers = [FakeConsumer()]
    m.region, m.proof_timeout_s, m._kafka = "eu", 0.3, {}
    m._pattern = re.compile(r"^p\.eu\.")
    m._consumer, m._next, m.store = consumers[0], {}, FakeStore(stored)
    m._stop, m._lock, m._lease_renewed, m._holder = threading.Event(), threading.Lock(), time.monotonic(), "h"
    m._proven_head, m.proofs, m._fetch_watch = None, 0, FetchWatch("eu")

    def new_consumer() -> FakeConsumer:
        consumers.append(FakeConsumer())
        return consumers[-1]

    m._new_consumer = new_consumer  # type: ignore[method-assign]
    m._mysql = lambda: None  # type: ignore[method-assign]
    m._producer_covers = lambda head: True  # type: ignore[method-assign]
    heads = iter(range(1, 1000))
    monkeypatch.setattr(module, "_binlog_head", lambda conn: ("bin.000001", next(heads)))
    monkeypatch.setattr(module, "watermarks",
                        lambda settings, tps, timeout_s: {(tp.topic, tp.partition): (0, high) for tp in tps})
    return m, consumers


def test_new_partitions_are_assigned_at_explicit_offsets(monkeypatch: pytest.MonkeyPatch) -> None:
    m, consumers = maintainer(monkeypatch, stored={(TOPIC, 1): 7})
    m._discover()
    # Partition 0 has no stored position: its low watermark (0), as a number, not OFFSET_BEGINNING (-2).
    assert consumers[0].assigned == [(TOPIC, 0, 0), (TOPIC, 1, 7)]


def test_a_stuck_partition_is_named_then_the_consumer_recreated_then_it_exits(
        monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, "consumers.cache.bloom.maintainer")
    m, consumers = maintainer(monkeypatch, stored={(TOPIC, 0): 20, (TOPIC, 1): 3})

    assert m.prove() is False
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 1, lines
    assert f"1 partition(s) hold records past this maintainer's position" in lines[0]
    assert f"{TOPIC}[1] at 3 of 20" in lines[0] and f"{TOPIC}[0]" not in lines[0]
    assert "recreating the Kafka consumer" in lines[0] and "(recovery 1 of 2)" in lines[0]
    # The old consumer is closed; the new one has every partition at its explicit stored position.
    assert consumers[0].closed and m._consumer is consumers[1]
    assert consumers[1].assigned == [(TOPIC, 0, 20), (TOPIC, 1, 3)]

    assert m.prove() is False and "(recovery 2 of 2)" in caplog.records[-1].getMessage()
    with pytest.raises(FetchStalled, match=rf"{TOPIC}\[1\] at 3 of 20.*recreating the Kafka consumer 2 time"):
        m.prove()
    assert m.store.fresh == 0           # no proof was published on the way


def test_a_partition_that_moves_is_slow_not_stuck(monkeypatch: pytest.MonkeyPatch,
                                                  caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, "consumers.cache.bloom.maintainer")
    m, consumers = maintainer(monkeypatch, stored={(TOPIC, 0): 20, (TOPIC, 1): 3})
    monkeypatch.setattr(module, "watermarks",        # partition 0 is caught up; 1 keeps growing
                        lambda settings, tps, timeout_s: {(tp.topic, tp.partition): (0, 20 if tp.partition == 0
                                                                                        else 10**9) for tp in tps})

    def one_record_per_poll(timeout_s: float = 0.1) -> int:
        m._next[(TOPIC, 1)] += 1        # moves, but does not reach the end in time
        return 1

    m.poll_once = one_record_per_poll  # type: ignore[method-assign]
    for _ in range(4):                  # never `FetchStalled`: it moves
        assert m.prove() is False
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 4 and all("still applying" in line and f"{TOPIC}[1] at " in line and
                                   " of 1000000000 (moving, slowly)" in line for line in lines), lines
    assert f"{TOPIC}[0]" not in lines[0]            # caught up: not named
    assert len(consumers) == 1          # no recreation


def test_a_proof_in_between_starts_the_count_again(monkeypatch: pytest.MonkeyPatch) -> None:
    m, consumers = maintainer(monkeypatch, stored={(TOPIC, 0): 20, (TOPIC, 1): 3})
    for _ in range(2):
        assert m.prove() is False
    m._next[(TOPIC, 1)] = 20            # caught up: the next proof succeeds
    assert m.prove() is True and m.store.fresh == 1
    m._next[(TOPIC, 1)] = 3             # stuck again later: recovering again, not exiting at once
    assert m.prove() is False and len(consumers) == 4


def test_cdcsync_bloom_exits_1_with_the_line(monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> None:
    from typer.testing import CliRunner

    from cdcsync.cli import app
    from cdcsync.commands import lookup
    from schemas.config import parse_config

    class Stalled:
        def __init__(self, *args: object, **kw: object) -> None:
            pass

        def request_stop(self, *args: object) -> None:
            pass

        def run(self) -> None:
            raise FetchStalled("bloom eu: no freshness proof in 30 s: ... p.eu.db.t[1] at 3 of 20; still so after "
                               "recreating the Kafka consumer 2 time(s): exiting")

    monkeypatch.setattr(lookup, "load", lambda path: parse_config({"regions": {"eu": {"server_id": 1}}}))
    monkeypatch.setattr(module, "BloomMaintainer", Stalled)
    result = CliRunner().invoke(app, ["bloom", "--config", str(tmp_path / "c.toml"), "--region", "eu"])
    assert result.exit_code == 1, result.output
    assert "error: bloom eu: no freshness proof in 30 s" in result.output and "Traceback" not in result.output
