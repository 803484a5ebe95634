"""InMemorySource keeps the Source contract (consumers/source_protocol.py) that the runner's suite
relies on: revokes on the consume thread before partitions move, nothing committed on its own, a
crashed member's successor resumes at the committed offsets."""

from __future__ import annotations

import threading

import pytest

from consumers.memory_source import InMemorySource, MemoryBroker, SourceClosed
from consumers.records import SourceRecord, TopicPartition

T0, T1 = TopicPartition("t", 0), TopicPartition("t", 1)


def broker_with(partitions: int, per_partition: int) -> MemoryBroker:
    broker = MemoryBroker()
    broker.create_topic("t", partitions)
    for p in range(partitions):
        for i in range(per_partition):
            broker.produce("t", p, b"not json", key=str(i).encode())
    return broker


def offsets(records: list[SourceRecord]) -> list[tuple[int, int]]:
    return [(r.partition, r.offset) for r in records]


def test_a_new_member_after_a_crash_resumes_at_the_committed_offsets() -> None:
    broker = broker_with(1, 5)
    first = InMemorySource(broker, "g", on_revoke=lambda _: pytest.fail("a crash revokes nothing"))
    first.subscribe(["t"])
    records = first.consume(10, 0)
    first.commit(records[:2])
    first.crash()                                  # offsets 2..4 consumed, never committed
    with pytest.raises(SourceClosed):
        first.consume(10, 0)
    second = InMemorySource(broker, "g", on_revoke=lambda _: None)
    second.subscribe(["t"])
    assert offsets(second.consume(10, 0)) == [(0, 2), (0, 3), (0, 4)]
    assert broker.committed("g", T0) == 2


def test_the_revoke_callback_runs_on_the_consume_thread_before_the_partition_moves() -> None:
    broker = broker_with(2, 2)
    seen: list[tuple[list[TopicPartition], str, int | None]] = []
    a: InMemorySource

    def on_revoke(partitions: list[TopicPartition]) -> None:
        seen.append((partitions, threading.current_thread().name, None))
        a.commit(held)                             # still assigned: the commit holds

    a = InMemorySource(broker, "g", on_revoke=on_revoke)
    a.subscribe(["^t$"])
    held = a.consume(10, 0)
    assert a.assigned == {T0, T1}
    b = InMemorySource(broker, "g", on_revoke=lambda _: None)
    b.subscribe(["t"])
    assert b.consume(10, 0) == [], "B took a partition A had not given up yet"
    assert a.consume(10, 0) == []                  # the revoke runs here
    assert seen == [([T1], threading.current_thread().name, None)]
    assert a.assigned == {T0}
    assert offsets(b.consume(10, 0)) == [] and b.assigned == {T1}, "B must start at the committed offset 2"
    broker.produce("t", 1, b"x")
    assert offsets(b.consume(10, 0)) == [(1, 2)]


def test_a_commit_for_a_partition_this_member_no_longer_holds_is_refused() -> None:
    broker = broker_with(2, 1)
    a = InMemorySource(broker, "g", on_revoke=lambda _: None)   # flushes nothing: the runner's bug
    a.subscribe(["t"])
    held = a.consume(10, 0)
    b = InMemorySource(broker, "g", on_revoke=lambda _: None)
    b.subscribe(["t"])
    a.consume(10, 0)
    a.commit(held)
    assert a.refused_commits == [(T1, 1)]
    assert broker.committed("g", T1) is None and broker.committed("g", T0) == 1


def test_close_revokes_through_the_callback_commits_nothing_and_an_error_in_it_propagates() -> None:
    broker = broker_with(1, 3)
    calls: list[list[TopicPartition]] = []
    a = InMemorySource(broker, "g", on_revoke=calls.append)
    a.subscribe(["t"])
    a.consume(10, 0)
    a.close()
    assert calls == [[T0]] and broker.committed("g", T0) is None

    def refuse(_: list[TopicPartition]) -> None:
        raise RuntimeError("sink down")
    b = InMemorySource(broker, "g", on_revoke=refuse)
    b.subscribe(["t"])
    b.consume(10, 0)
    c = InMemorySource(broker, "g", on_revoke=lambda _: None)
    c.subscribe(["t"])
    with pytest.raises(RuntimeError, match="sink down"):
        b.close()
    assert b.assigned == set(), "a failing callback still revokes the partitions"
    assert offsets(c.consume(10, 0)) == [(0, 0), (0, 1), (0, 2)]


def test_consume_waits_for_a_record_produced_from_another_thread() -> None:
    broker = broker_with(1, 0)
    a = InMemorySource(broker, "g", on_revoke=lambda _: None)
    a.subscribe(["t"])
    timer = threading.Timer(0.05, broker.produce, args=("t", 0, b"x"))
    timer.start()
    assert offsets(a.consume(10, 5.0)) == [(0, 0)]
    timer.join()
    assert a.consume(10, 0.01) == []
