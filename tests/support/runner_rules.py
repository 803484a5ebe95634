"""The sink runner's rules as one behavioural suite, run against every `Source` backend.

`RunnerRules` holds the tests; a test module subclasses it and provides a `backend` fixture (a
`Backend`): tests/unit/test_runner_rules.py runs it on the in-memory source (milliseconds),
tests/integration/test_runner_rules_kafka.py on KafkaSource and the real Tansu broker, the way
arroyo runs one suite against its local and its Kafka backend. The sinks are recording fakes (the
rules are the runner's, not a sink's); the dead-letter publisher is a fake in memory and the real
`DeadLetterPublisher` on Kafka.

Every step is written to one `Journal` (consume, apply, dead_letter, commit, revoke, close), in
the order it happened, and the tests assert on that order and on the group's committed offsets.
"""

from __future__ import annotations

import abc
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from common.acked_producer import BrokerUnreachable
from consumers.dlq import DeadLetter
from consumers.dlq_limit import DeadLetterFlood, DeadLetterLimit
from consumers.metrics import SinkMetrics
from consumers.records import SourceRecord, TopicPartition
from consumers.runner import SinkRunner
from consumers.source_protocol import Source
from schemas.codec import encode
from schemas.events import ChangeEvent

POISON = b"not json"


def event(i: int) -> bytes:
    return encode(ChangeEvent(region="eu", origin="eu", server_id=1, gtid=None, binlog_file="b.000001",
                              binlog_pos=4 + i, txn_id=f"t{i}", ts_us=0, db="d", table="t", txn_index=0,
                              txn_last=True, op="insert", pk={"id": i}, before=None, after={"id": i},
                              types={"id": "int"}))


Where = tuple[int, int]    # (partition, offset)


def where(records: list[SourceRecord]) -> list[Where]:
    return [(r.partition, r.offset) for r in records]


@dataclass(frozen=True, slots=True)
class Entry:
    kind: str        # consume | apply | dead_letter | commit | revoke | revoked | close | sink_close
    who: str
    detail: Any


class Journal:
    """What happened, in order, across the threads of a test."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.entries: list[Entry] = []

    def add(self, kind: str, who: str, detail: Any = None) -> None:
        with self._lock:
            self.entries.append(Entry(kind, who, detail))

    def find(self, kind: str, who: str, start: int = 0) -> int:
        """Index of the first `kind` entry of `who` at or after `start`, or -1."""
        with self._lock:
            return next((i for i, e in enumerate(self.entries) if i >= start and e.kind == kind and e.who == who), -1)

    def of(self, kind: str, who: str) -> list[Any]:
        with self._lock:
            return [e.detail for e in self.entries if e.kind == kind and e.who == who]

    def consumed(self, who: str) -> int:
        return sum(len(d) for d in self.of("consume", who))

    def __str__(self) -> str:
        return "\n".join(f"  {e.who} {e.kind} {e.detail}" for e in self.entries)


class SinkDown(RuntimeError):
    """The recording sink's scripted failure."""


class RecordingSink:
    """A sink that applies by recording (or raises `SinkDown` when `fail`)."""

    def __init__(self, name: str, journal: Journal, *, fail: bool = False) -> None:
        self.name, self.journal, self.fail = name, journal, fail
        self.applied: list[Where] = []
        self.batches: list[int] = []

    def write_batch(self, records: list[SourceRecord]) -> None:
        if self.fail:
            raise SinkDown(f"{self.name}: target unavailable")
        self.applied += where(records)
        self.batches.append(len(records))
        self.journal.add("apply", self.name, where(records))

    def close(self) -> None:
        self.journal.add("sink_close", self.name)


class RecordingSource:
    """Any `Source`, with what passes through it journaled. Keeps the contract of the one it wraps."""

    def __init__(self, inner: Source, journal: Journal, who: str) -> None:
        self.inner, self.journal, self.who = inner, journal, who

    @property
    def assigned(self) -> set[TopicPartition]:
        return set(getattr(self.inner, "assigned"))

    def consume(self, max_messages: int, timeout_s: float) -> list[SourceRecord]:
        records = self.inner.consume(max_messages, timeout_s)
        if records:
            self.journal.add("consume", self.who, where(records))
        return records

    def commit(self, records: list[SourceRecord]) -> None:
        self.inner.commit(records)
        next_offsets: dict[int, int] = {}
        for r in records:
            next_offsets[r.partition] = max(next_offsets.get(r.partition, 0), r.offset + 1)
        self.journal.add("commit", self.who, next_offsets)

    def lag(self) -> dict[TopicPartition, int]:
        return self.inner.lag()

    def close(self) -> None:
        self.inner.close()
        self.journal.add("close", self.who)


class FakeDeadLetters:
    """The dead-letter publisher's contract without a broker: the limit admits first, then the
    letters are 'acknowledged' (journaled), or `fail` raises as an unacknowledged publish does."""

    def __init__(self, journal: Journal, *, fail: bool = False) -> None:
        self.journal, self.fail = journal, fail
        self.limit: DeadLetterLimit | None = None

    def publish(self, letters: list[DeadLetter], timeout: float = 30.0) -> None:
        if not letters:
            return
        if self.limit is not None:
            self.limit.admit((letter.record, f"{letter.kind}: {letter.error}") for letter in letters)
        if self.fail:
            raise BrokerUnreachable("dead-letter topic: 1 messages not acknowledged by the broker")
        self.journal.add("dead_letter", "dlq", [(lt.record.partition, lt.record.offset) for lt in letters])


class Backend(abc.ABC):
    """What the suite needs of a backend: topics, a producer, group members, committed offsets."""

    join_timeout_s: float      # how long a member may take to join the group and get partitions
    settle_s: float            # long enough for a member that was assigned a partition to fetch from it

    @abc.abstractmethod
    def topic(self, partitions: int) -> str: ...

    @abc.abstractmethod
    def produce(self, topic: str, partition: int, payloads: list[bytes]) -> None: ...

    @abc.abstractmethod
    def source(self, group: str, topic: str, on_revoke: Callable[[list[TopicPartition]], None]) -> Source:
        """A member of `group`, subscribed to `topic`."""

    @abc.abstractmethod
    def committed(self, group: str, topic: str, partitions: int) -> dict[int, int | None]: ...

    @abc.abstractmethod
    def dead_letters(self, journal: Journal, *, fail: bool = False) -> Any:
        """A dead-letter publisher that journals what the broker acknowledged; `fail`: one whose
        publishes are never acknowledged."""


@dataclass
class Member:
    runner: SinkRunner
    source: RecordingSource
    sink: RecordingSink
    dead_letters: Any
    thread: threading.Thread | None = None
    errors: list[BaseException] = field(default_factory=list)

    def start(self) -> None:
        def run() -> None:
            try:
                self.runner.run()
            except BaseException as err:    # reported by stop()
                self.errors.append(err)
        self.thread = threading.Thread(target=run, daemon=True)
        self.thread.start()

    def stop(self, timeout_s: float = 30.0) -> float:
        """Ask the runner to stop and wait for `run` to return; the seconds it took."""
        began = time.monotonic()
        self.runner.request_stop()
        assert self.thread is not None
        self.thread.join(timeout_s)
        assert not self.thread.is_alive(), f"run() did not return within {timeout_s} s of request_stop"
        assert not self.errors, f"run() raised {self.errors[0]!r}"
        return time.monotonic() - began


def wait_for(condition: Callable[[], bool], timeout_s: float, what: str, journal: Journal) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {timeout_s} s; journal:\n{journal}")
        time.sleep(0.01)


def _on_thread(runner: SinkRunner, call: Callable[[], object], timeout_s: float, join_s: float,
               late: str) -> tuple[list[object], list[BaseException]]:
    """`call()` on a thread; (its result, the error it raised). Stops the runner and fails with `late`
    (instead of hanging) if it is still running after `timeout_s`."""
    result: list[object] = []
    errors: list[BaseException] = []

    def target() -> None:
        try:
            result.append(call())
        except BaseException as err:
            errors.append(err)
    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(timeout_s)
    if thread.is_alive():
        runner.request_stop()
        thread.join(join_s)
        raise AssertionError(late)
    return result, errors


def step_within(runner: SinkRunner, timeout_s: float) -> int:
    """The size of the next batch `runner.step()` applies, on a thread; failing (instead of hanging) if
    none closes within `timeout_s`. A step that found nothing returns at once (the runner goes back to
    its loop between idle polls), so the steps are repeated until one handles records."""
    deadline = time.monotonic() + timeout_s

    def next_batch() -> int:
        while True:
            count = runner.step()
            if count or time.monotonic() > deadline:
                return count
    result, errors = _on_thread(runner, next_batch, timeout_s + 1, 5,
                                f"the batch did not close within {timeout_s} s")
    if errors:
        raise errors[0]
    count = result[0]
    assert isinstance(count, int) and count, f"no batch within {timeout_s} s"
    return count


def run_until_it_raises(runner: SinkRunner, timeout_s: float) -> BaseException:
    """`runner.run()` on a thread; the error it stopped with. Fails (instead of hanging) if it keeps
    running for `timeout_s`, and if it returns without an error."""
    _, errors = _on_thread(runner, runner.run, timeout_s, 10,
                           f"run() was still running after {timeout_s} s; it should have stopped with an error")
    assert errors, "run() returned without an error"
    return errors[0]


class RunnerRules:
    """The rules of consumers/runner.py, each test able to fail when its rule is broken."""

    @pytest.fixture
    def journal(self) -> Journal:
        return Journal()

    def member(self, backend: Backend, journal: Journal, group: str, topic: str, who: str, *,
               batch_max_events: int = 1000, batch_max_ms: int = 200, batch_linger_ms: int | None = None,
               sink_fails: bool = False, commit_interval_ms: int = 0, busy_batch_events: int | None = None,
               dead_letters: Any = None, max_consecutive_dead_letters: int = 0) -> Member:
        runner_box: list[SinkRunner] = []

        def on_revoke(partitions: list[TopicPartition]) -> None:
            journal.add("revoke", who, sorted(tp.partition for tp in partitions))
            runner_box[0].on_revoke(partitions)
            journal.add("revoked", who, sorted(tp.partition for tp in partitions))

        source = RecordingSource(backend.source(group, topic, on_revoke), journal, who)
        sink = RecordingSink(who, journal, fail=sink_fails)
        dead_letters = dead_letters if dead_letters is not None else backend.dead_letters(journal)
        dead_letters.limit = DeadLetterLimit(max_consecutive_dead_letters, region="eu", sink=who)
        runner = SinkRunner(source=source, sink=sink, dead_letters=dead_letters,
                            metrics=SinkMetrics("eu", CollectorRegistry()),
                            batch_max_events=batch_max_events, batch_max_ms=batch_max_ms,
                            # These rules hold a batch open for its window unless they say otherwise.
                            batch_linger_ms=batch_max_ms if batch_linger_ms is None else batch_linger_ms,
                            commit_interval_ms=commit_interval_ms, busy_batch_events=busy_batch_events)
        runner_box.append(runner)
        return Member(runner, source, sink, dead_letters)

    @staticmethod
    def group() -> str:
        return f"test-group-{uuid.uuid4().hex[:8]}"

    # apply, then commit

    def test_a_batch_is_applied_before_its_offsets_are_committed(self, backend: Backend, journal: Journal) -> None:
        topic, group = backend.topic(1), self.group()
        backend.produce(topic, 0, [event(i) for i in range(4)])
        a = self.member(backend, journal, group, topic, "a", batch_max_events=4, batch_max_ms=5000)
        assert step_within(a.runner, backend.join_timeout_s) == 4
        applied, committed = journal.find("apply", "a"), journal.find("commit", "a")
        assert 0 <= applied < committed, f"commit before apply:\n{journal}"
        assert a.sink.applied == [(0, i) for i in range(4)]
        assert backend.committed(group, topic, 1) == {0: 4}
        a.source.close()

    def test_a_failing_sink_commits_nothing_and_a_restart_replays_the_batch(self, backend: Backend,
                                                                            journal: Journal) -> None:
        topic, group = backend.topic(1), self.group()
        backend.produce(topic, 0, [event(i) for i in range(3)])
        a = self.member(backend, journal, group, topic, "a", batch_max_events=3, batch_max_ms=5000, sink_fails=True)
        # The process dies; run() leaves the group on the way out.
        assert isinstance(run_until_it_raises(a.runner, backend.join_timeout_s), SinkDown)
        assert journal.of("commit", "a") == [], f"committed a batch its sink did not apply:\n{journal}"
        assert backend.committed(group, topic, 1) == {0: None}
        b = self.member(backend, journal, group, topic, "b", batch_max_events=3, batch_max_ms=5000)
        assert step_within(b.runner, backend.join_timeout_s) == 3
        assert b.sink.applied == [(0, 0), (0, 1), (0, 2)], "the restart did not replay the failed batch"
        assert backend.committed(group, topic, 1) == {0: 3}
        b.source.close()

    # flush on revoke

    def test_a_revoke_applies_and_commits_the_batch_before_the_partitions_move(self, backend: Backend,
                                                                                journal: Journal) -> None:
        topic, group = backend.topic(2), self.group()
        for partition in (0, 1):
            backend.produce(topic, partition, [event(i) for i in range(3)])
        # A's batch closes only by a revoke (or the stop): 60 s and 1000 events are far away.
        a = self.member(backend, journal, group, topic, "a", batch_max_events=1000, batch_max_ms=60_000)
        a.start()
        wait_for(lambda: journal.consumed("a") == 6, backend.join_timeout_s, "A consumes all 6 records", journal)
        assert journal.of("apply", "a") == []
        b = self.member(backend, journal, group, topic, "b", batch_max_events=1000, batch_max_ms=100)
        b.start()                                 # B joins: the group takes a partition from A
        wait_for(lambda: bool(b.source.assigned), 2 * backend.join_timeout_s, "B gets a partition", journal)
        time.sleep(backend.settle_s)              # B fetches (and would apply) what A left uncommitted
        b.stop()
        a.stop()
        revoke, revoked = journal.find("revoke", "a"), journal.find("revoked", "a")
        apply, commit = journal.find("apply", "a", revoke), journal.find("commit", "a", revoke)
        assert 0 <= revoke < apply < commit < revoked, f"A's batch was not flushed inside the revoke:\n{journal}"
        assert sorted(journal.of("apply", "a")[0]) == [(p, o) for p in (0, 1) for o in range(3)]
        assert journal.of("commit", "a")[0] == {0: 3, 1: 3}
        assert b.sink.applied == [], f"B replayed what A had consumed before the revoke:\n{journal}"
        assert backend.committed(group, topic, 2) == {0: 3, 1: 3}

    # dead letters before commit

    def test_dead_letters_are_published_before_the_batch_commits(self, backend: Backend, journal: Journal) -> None:
        topic, group = backend.topic(1), self.group()
        backend.produce(topic, 0, [event(0), POISON, event(2)])
        a = self.member(backend, journal, group, topic, "a", batch_max_events=3, batch_max_ms=5000)
        assert step_within(a.runner, backend.join_timeout_s) == 3
        dead, commit = journal.find("dead_letter", "dlq"), journal.find("commit", "a")
        assert 0 <= dead < commit, f"commit before the dead letter was acknowledged:\n{journal}"
        assert journal.of("dead_letter", "dlq") == [[(0, 1)]]
        assert a.sink.applied == [(0, 0), (0, 2)]
        assert backend.committed(group, topic, 1) == {0: 3}
        a.source.close()

    def test_a_dead_letter_publish_that_fails_prevents_the_commit(self, backend: Backend, journal: Journal) -> None:
        topic, group = backend.topic(1), self.group()
        backend.produce(topic, 0, [event(0), POISON, event(2)])
        a = self.member(backend, journal, group, topic, "a", batch_max_events=3, batch_max_ms=5000,
                        dead_letters=backend.dead_letters(journal, fail=True))
        # A broker outage is waited out for 300 s (common/retry.py), nothing committed meanwhile; a
        # second here, so the test sees the sink give up.
        a.runner.publish_retry.outage_s = 1.0
        error = run_until_it_raises(a.runner, backend.join_timeout_s + 1.0)
        assert isinstance(error, BrokerUnreachable) and "not acknowledged" in str(error), repr(error)
        assert journal.of("commit", "a") == [], f"committed without the dead letter acknowledged:\n{journal}"
        assert backend.committed(group, topic, 1) == {0: None}
        b = self.member(backend, journal, group, topic, "b", batch_max_events=3, batch_max_ms=5000)
        assert step_within(b.runner, backend.join_timeout_s) == 3
        assert journal.of("dead_letter", "dlq") == [[(0, 1)]], "the restart did not dead-letter the poison again"
        assert backend.committed(group, topic, 1) == {0: 3}
        b.source.close()

    def test_a_poison_flood_stops_at_the_limit_and_commits_nothing_after_it(self, backend: Backend,
                                                                            journal: Journal) -> None:
        topic, group = backend.topic(1), self.group()
        # Batch 1: two applied, then a run of 2; batch 2 carries it to 4 > 3 before its good records.
        backend.produce(topic, 0, [event(0), event(1), POISON, POISON, POISON, POISON, event(6), event(7)])
        a = self.member(backend, journal, group, topic, "a", batch_max_events=4, batch_max_ms=5000,
                        max_consecutive_dead_letters=3)
        error = run_until_it_raises(a.runner, backend.join_timeout_s)
        assert isinstance(error, DeadLetterFlood) and "4 consecutive dead letters" in str(error), repr(error)
        assert journal.of("commit", "a") == [{0: 4}], f"committed past the flood:\n{journal}"
        assert backend.committed(group, topic, 1) == {0: 4}
        assert journal.of("dead_letter", "dlq") == [[(0, 2), (0, 3)]], "published dead letters beyond the limit"
        assert a.sink.applied == [(0, 0), (0, 1)]

    # stop

    def test_request_stop_finishes_the_batch_commits_and_closes(self, backend: Backend, journal: Journal) -> None:
        topic, group = backend.topic(1), self.group()
        backend.produce(topic, 0, [event(i) for i in range(3)])
        a = self.member(backend, journal, group, topic, "a", batch_max_events=1000, batch_max_ms=60_000)
        a.start()
        wait_for(lambda: journal.consumed("a") == 3, backend.join_timeout_s, "A consumes 3 records", journal)
        took = a.stop()                           # what SIGTERM does (cdcsync/commands/consumer.py)
        assert took < 5, f"stopping took {took:.1f} s: it waited for the 60 s batch window"
        apply, commit, close = journal.find("apply", "a"), journal.find("commit", "a"), journal.find("close", "a")
        assert 0 <= apply < commit < close, f"the stop did not apply, commit, then close:\n{journal}"
        assert journal.find("sink_close", "a") > close
        assert a.sink.applied == [(0, 0), (0, 1), (0, 2)]
        assert backend.committed(group, topic, 1) == {0: 3}

    # batch boundaries

    def test_a_batch_closes_at_batch_max_events(self, backend: Backend, journal: Journal) -> None:
        topic, group = backend.topic(1), self.group()
        backend.produce(topic, 0, [event(i) for i in range(7)])
        a = self.member(backend, journal, group, topic, "a", batch_max_events=3, batch_max_ms=60_000)
        assert step_within(a.runner, backend.join_timeout_s) == 3
        assert step_within(a.runner, 10) == 3
        assert a.sink.batches == [3, 3]
        assert journal.of("commit", "a") == [{0: 3}, {0: 6}]
        a.source.close()

    def test_a_batch_is_applied_once_the_source_has_no_more_records(self, backend: Backend,
                                                                     journal: Journal) -> None:
        """batch_linger_ms = 0 (the default): no waiting for a window that nothing more will fill."""
        topic, group = backend.topic(1), self.group()
        backend.produce(topic, 0, [event(0), event(1)])
        a = self.member(backend, journal, group, topic, "a", batch_max_events=1000, batch_max_ms=60_000,
                        batch_linger_ms=0)
        started = time.monotonic()
        assert step_within(a.runner, backend.join_timeout_s) == 2
        assert time.monotonic() - started < backend.join_timeout_s, "the batch waited for its 60 s window"
        backend.produce(topic, 0, [event(2)])
        assert step_within(a.runner, 10) == 1, "a lone record waited for company"
        assert a.sink.batches == [2, 1]
        assert backend.committed(group, topic, 1) == {0: 3}
        a.source.close()

    def test_consume_returns_as_soon_as_records_arrive(self, backend: Backend, journal: Journal) -> None:
        """Not after its whole timeout for `max_messages` (librdkafka's batch consume does that)."""
        topic, group = backend.topic(1), self.group()
        backend.produce(topic, 0, [event(0)])
        a = self.member(backend, journal, group, topic, "a")
        deadline = time.monotonic() + backend.join_timeout_s
        while not a.source.consume(1000, 0.5):    # joins the group, gets the first record
            assert time.monotonic() < deadline, f"no record within the join timeout:\n{journal}"
        backend.produce(topic, 0, [event(1)])
        started = time.monotonic()
        records = a.source.consume(1000, 8.0)
        took = time.monotonic() - started
        assert [r.offset for r in records] == [1]
        assert took < 4.0, f"consume took {took:.1f} s: it waited out its timeout for 1000 records"
        a.source.close()

    def test_a_batch_lingers_batch_linger_ms_once_the_source_runs_dry(self, backend: Backend,
                                                                      journal: Journal) -> None:
        topic, group = backend.topic(1), self.group()
        backend.produce(topic, 0, [event(0), event(1)])
        a = self.member(backend, journal, group, topic, "a", batch_max_events=1000, batch_max_ms=60_000,
                        batch_linger_ms=400)
        consumed_at: list[float] = []
        consume = a.source.consume

        def timed(max_messages: int, timeout_s: float) -> list[SourceRecord]:
            records = consume(max_messages, timeout_s)
            if records and not consumed_at:
                consumed_at.append(time.monotonic())
            return records
        a.source.consume = timed                  # type: ignore[method-assign]
        assert step_within(a.runner, backend.join_timeout_s) == 2
        waited = time.monotonic() - consumed_at[0]
        assert 0.35 <= waited < 0.4 + 2.0, f"the batch closed {waited:.2f} s after its first record, not 0.4 s"
        assert a.sink.batches == [2]
        a.source.close()

    def test_a_batch_closes_batch_max_ms_after_its_first_record(self, backend: Backend, journal: Journal) -> None:
        topic, group = backend.topic(1), self.group()
        backend.produce(topic, 0, [event(0), event(1)])
        a = self.member(backend, journal, group, topic, "a", batch_max_events=1000, batch_max_ms=400)
        consumed_at: list[float] = []
        consume = a.source.consume

        def timed(max_messages: int, timeout_s: float) -> list[SourceRecord]:
            records = consume(max_messages, timeout_s)
            if records and not consumed_at:
                consumed_at.append(time.monotonic())
            return records
        a.source.consume = timed                  # type: ignore[method-assign]
        assert step_within(a.runner, backend.join_timeout_s) == 2
        waited = time.monotonic() - consumed_at[0]
        assert 0.35 <= waited < 0.4 + 2.0, f"the batch closed {waited:.2f} s after its first record, not 0.4 s"
        assert a.sink.batches == [2]
        assert backend.committed(group, topic, 1) == {0: 2}
        a.source.close()
