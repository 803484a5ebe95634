"""When the sink runner commits with `commit_interval_ms` (consumers/runner.py): at most that
often while records keep coming, never before the batch that reached an offset is applied, at
once when the source has nothing more, in the revoke callback, on the way out of `run`, and never
for a partition this member no longer holds. On the in-memory source."""

from __future__ import annotations

import threading
import time

import pytest

from tests.support.runner_rules import Journal, RunnerRules, SinkDown, event
from tests.unit.test_runner_rules import MemoryBackend

HOUR_MS = 3_600_000


@pytest.fixture
def backend() -> MemoryBackend:
    return MemoryBackend()


def member(backend: MemoryBackend, journal: Journal, topic: str, **kwargs: object):   # type: ignore[no-untyped-def]
    return RunnerRules().member(backend, journal, "g", topic, "a", batch_linger_ms=0, **kwargs)


def test_batches_in_a_row_are_committed_once_per_interval_and_never_ahead_of_apply(backend: MemoryBackend) -> None:
    journal = Journal()
    topic = backend.topic(1)
    backend.produce(topic, 0, [event(i) for i in range(9)])
    a = member(backend, journal, topic, batch_max_events=3, batch_max_ms=HOUR_MS, commit_interval_ms=HOUR_MS)
    assert [a.runner.step() for _ in range(3)] == [3, 3, 3]
    # The first batch commits (no commit yet this interval); the next two wait for the interval.
    assert journal.of("commit", "a") == [{0: 3}]
    assert backend.committed("g", topic, 1) == {0: 3}
    assert a.runner.step() == 0            # a whole poll found nothing: commit now
    assert journal.of("commit", "a") == [{0: 3}, {0: 9}]
    assert backend.committed("g", topic, 1) == {0: 9}
    last_apply, last_commit = journal.find("apply", "a", journal.find("commit", "a") + 1), journal.find(
        "commit", "a", journal.find("commit", "a") + 1)
    assert 0 <= last_apply < last_commit, f"committed before applying:\n{journal}"


def test_interval_zero_commits_every_batch(backend: MemoryBackend) -> None:
    journal = Journal()
    topic = backend.topic(1)
    backend.produce(topic, 0, [event(i) for i in range(6)])
    a = member(backend, journal, topic, batch_max_events=3, batch_max_ms=HOUR_MS, commit_interval_ms=0)
    assert [a.runner.step(), a.runner.step()] == [3, 3]
    assert journal.of("commit", "a") == [{0: 3}, {0: 6}]


def test_a_revoke_commits_what_was_applied_within_the_interval(backend: MemoryBackend) -> None:
    journal = Journal()
    topic = backend.topic(2)
    backend.produce(topic, 0, [event(i) for i in range(4)])
    backend.produce(topic, 1, [event(i) for i in range(2)])
    a = member(backend, journal, topic, batch_max_events=2, batch_max_ms=HOUR_MS, commit_interval_ms=HOUR_MS)
    while len(a.sink.applied) < 6:
        a.runner.step()
    uncommitted = backend.committed("g", topic, 2)
    assert uncommitted != {0: 4, 1: 2}, "nothing was left to the revoke: the test proves nothing"
    a.runner.on_revoke(list(a.source.assigned))
    assert backend.committed("g", topic, 2) == {0: 4, 1: 2}


def test_a_failing_batch_still_commits_the_batches_applied_before_it(backend: MemoryBackend) -> None:
    journal = Journal()
    topic = backend.topic(1)
    backend.produce(topic, 0, [event(i) for i in range(9)])
    a = member(backend, journal, topic, batch_max_events=3, batch_max_ms=HOUR_MS, commit_interval_ms=HOUR_MS)
    assert [a.runner.step(), a.runner.step()] == [3, 3]
    assert backend.committed("g", topic, 1) == {0: 3}
    a.sink.fail = True
    with pytest.raises(SinkDown):
        a.runner.run()
    assert backend.committed("g", topic, 1) == {0: 6}, "the applied second batch was not committed on the way out"
    assert a.sink.applied == [(0, i) for i in range(6)]


def test_a_partition_no_longer_held_is_not_committed(backend: MemoryBackend) -> None:
    journal = Journal()
    topic = backend.topic(1)
    backend.produce(topic, 0, [event(i) for i in range(6)])
    a = member(backend, journal, topic, batch_max_events=3, batch_max_ms=HOUR_MS, commit_interval_ms=HOUR_MS)
    assert [a.runner.step(), a.runner.step()] == [3, 3]
    a.source.inner.assigned.clear()        # lost (session expired): its next owner replays from {0: 3}
    a.runner.commit_applied()
    assert journal.of("commit", "a") == [{0: 3}]


def test_a_busy_batch_waits_for_the_next_fetch_and_a_trickle_does_not(backend: MemoryBackend) -> None:
    """`busy_batch_events`: a batch that holds that many when the source runs dry waits (until
    `batch_max_ms` after its first record) for what comes next; a smaller one is applied at once."""
    journal = Journal()
    topic = backend.topic(1)
    backend.produce(topic, 0, [event(i) for i in range(5)])
    a = member(backend, journal, topic, batch_max_events=1000, batch_max_ms=400, busy_batch_events=5)
    later = threading.Timer(0.1, lambda: backend.produce(topic, 0, [event(i) for i in range(5, 7)]))
    later.start()
    assert a.runner.step() == 7            # the second "fetch" joined the busy batch
    later.join()
    backend.produce(topic, 0, [event(i) for i in range(7, 9)])
    began = time.monotonic()
    assert a.runner.step() == 2            # below the threshold: applied at once
    assert time.monotonic() - began < 0.2
