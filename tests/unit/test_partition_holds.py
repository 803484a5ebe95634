"""A sink that holds a partition (consumers/partition_holds.py): the runner commits nothing of it
from the held record on, pauses it on the source, other partitions keep flowing, and a recheck
that lets it go delivers the held records again."""

from __future__ import annotations

from prometheus_client import CollectorRegistry

from consumers.memory_source import InMemorySource, MemoryBroker
from consumers.metrics import SinkMetrics
from consumers.partition_holds import Hold, PartitionHolds
from consumers.records import SourceRecord, TopicPartition
from consumers.runner import SinkRunner
from tests.support.runner_rules import FakeDeadLetters, Journal, event

T0, T1 = TopicPartition("t", 0), TopicPartition("t", 1)


class HoldingSink:
    """Applies every record but those whose id is in `blocked` while `ready` is False: it holds
    their partition there, as the database sink does for an event its target cannot hold."""

    name = "db"

    def __init__(self, blocked: set[int]) -> None:
        self.blocked, self.ready = blocked, False
        self.applied: list[tuple[int, int]] = []
        self.now = 0.0
        self.holds = PartitionHolds(recheck_ms=1000, clock=lambda: self.now)
        self.holds.check = lambda holds: [h.tp for h in holds] if self.ready else []

    def write_batch(self, records: list[SourceRecord]) -> None:
        for record in sorted(records, key=lambda r: (r.partition, r.offset)):
            if self.holds.held(record):
                continue
            if record.event.pk["id"] in self.blocked and not self.ready:  # type: ignore[union-attr]
                self.holds.hold(record.tp, record.offset, "d.t", "unknown column phone")
                continue
            self.applied.append((record.partition, record.offset))

    def close(self) -> None:
        pass


def setup(blocked: set[int]) -> tuple[MemoryBroker, InMemorySource, HoldingSink, SinkRunner]:
    broker = MemoryBroker()
    broker.create_topic("t", 2)
    for i in range(6):                       # ids 0..5 on partition 0, 10..15 on partition 1
        broker.produce("t", 0, event(i))
        broker.produce("t", 1, event(10 + i))
    runners: list[SinkRunner] = []
    source = InMemorySource(broker, "g", on_revoke=lambda tps: runners[0].on_revoke(tps))
    sink = HoldingSink(blocked)
    runner = SinkRunner(source=source, sink=sink, dead_letters=FakeDeadLetters(Journal()),  # type: ignore[arg-type]
                        metrics=SinkMetrics("us", CollectorRegistry()), batch_max_events=100, batch_max_ms=50)
    runners.append(runner)
    source.subscribe(["t"])
    return broker, source, sink, runner


def drain(runner: SinkRunner) -> None:
    for _ in range(5):
        runner.step()


def test_a_held_partition_is_neither_committed_nor_delivered_the_others_flow_and_it_resumes() -> None:
    broker, source, sink, runner = setup(blocked={3})
    drain(runner)
    assert sink.applied == [(0, 0), (0, 1), (0, 2), *((1, o) for o in range(6))]
    assert broker.committed("g", T0) == 3 and broker.committed("g", T1) == 6   # nothing from the held event on
    assert list(sink.holds.holds) == [T0] and sink.holds.holds[T0].offset == 3
    broker.produce("t", 1, event(16))
    broker.produce("t", 0, event(6))
    drain(runner)
    assert sink.applied[-1] == (1, 6) and broker.committed("g", T1) == 7 and broker.committed("g", T0) == 3
    sink.ready = True
    sink.now += 0.5
    drain(runner)
    assert broker.committed("g", T0) == 3            # rechecked only every recheck_ms
    sink.now += 1.0
    drain(runner)
    assert sink.holds.holds == {}
    assert [a for a in sink.applied if a[0] == 0] == [(0, o) for o in range(7)]   # each once, in order
    assert broker.committed("g", T0) == 7


def test_the_earliest_hold_of_a_partition_wins_and_a_revoke_forgets_it() -> None:
    holds = PartitionHolds(1000)
    forgotten: list[Hold] = []
    holds.on_forget = forgotten.extend
    assert holds.hold(T0, 5, "d.t", "r") is not None
    assert holds.hold(T0, 7, "d.t", "r") is None
    assert holds.hold(T0, 4, "d.t", "r").offset == 4  # type: ignore[union-attr]
    assert holds.take_new() == {T0: 4} and holds.take_new() == {}
    holds.forget([T0, T1])
    assert holds.holds == {} and [h.offset for h in forgotten] == [4]


def test_recheck_runs_at_most_every_recheck_ms_and_only_while_something_is_held() -> None:
    now = [0.0]
    asked: list[int] = []
    holds = PartitionHolds(1000, clock=lambda: now[0])
    holds.check = lambda hs: asked.append(len(hs)) or []
    assert holds.recheck(force=True) == [] and asked == []        # nothing held: no check
    holds.hold(T0, 1, "d.t", "r")
    now[0] = 0.5
    assert holds.recheck() == [] and asked == []
    now[0] = 1.0
    holds.recheck()
    assert asked == [1]
