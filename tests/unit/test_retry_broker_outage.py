"""A broker outage is retried for `outage_s`, not `attempts` (common/retry.py): the database sink's
topic id lookups timed out for the whole of a broker stall, the eight attempts ran out in ~40 s and
the sink exited (seed 5001 of the nemesis soak, docs/reliability.md)."""

from __future__ import annotations

import logging
import random

import pymysql
import pytest

from common.retry import RetryPolicy
from consumers.topic_ids import TopicIdUnavailable


class _Clock:
    """Fake time: each lookup takes `call_s` (the lookup's own timeout), each sleep what it asks."""

    def __init__(self) -> None:
        self.now = 0.0

    def sleep(self, seconds: float) -> None:
        self.now += seconds


def _broker_stalled_for(clock: _Clock, stall_s: float, call_s: float = 5.0):
    calls = []

    def lookup() -> str:
        calls.append(clock.now)
        if clock.now < stall_s:
            clock.now += call_s            # an unanswered lookup waits for its timeout
            raise TopicIdUnavailable("topic id of t: no answer from the cluster within 5 s")
        return "answered"
    return lookup, calls


def _policy(clock: _Clock, **kwargs) -> RetryPolicy:
    return RetryPolicy(8, 50, 5000, sleep=clock.sleep, clock=lambda: clock.now, rng=random.Random(5001), **kwargs)


def test_a_minute_long_broker_stall_is_waited_out_not_counted_as_attempts(caplog) -> None:
    caplog.set_level(logging.INFO, logger="common.retry")
    clock = _Clock()
    lookup, calls = _broker_stalled_for(clock, 60.0)
    seen: list[float] = []
    retries: list[int] = []
    policy = _policy(clock, outage_s=300.0, on_outage=seen.append, on_retry=lambda e, n, d: retries.append(n))
    assert policy.run(lookup) == "answered"
    assert len(calls) > 8                          # more than the attempts: the outage has its own budget
    assert retries == list(range(1, len(calls)))   # every retry counted (cdcsync_sink_retries_total)
    assert seen[0] == 0.0 and max(seen) >= 45.0 and seen[-1] == 0.0   # the gauge, back to 0 at the end
    messages = [r.getMessage() for r in caplog.records]
    warnings = [m for m in messages if m.startswith("broker unreachable for ")]
    assert len(warnings) == len(calls) - 1 and "for 300 s more at most" in warnings[0]
    assert any(m.startswith("the broker answered again after ") for m in messages)


def test_without_an_outage_budget_the_stall_exhausts_the_attempts() -> None:
    """What the sink did before: eight attempts of a 5 s lookup, then the error."""
    clock = _Clock()
    lookup, calls = _broker_stalled_for(clock, 60.0)
    with pytest.raises(TopicIdUnavailable):
        _policy(clock).run(lookup)
    assert len(calls) == 8 and clock.now < 60.0


def test_an_outage_longer_than_the_budget_raises_after_it(caplog) -> None:
    clock = _Clock()
    lookup, calls = _broker_stalled_for(clock, 10_000.0)
    with pytest.raises(TopicIdUnavailable):
        _policy(clock, outage_s=300.0).run(lookup)
    assert 300.0 <= clock.now < 320.0
    assert any(r.getMessage().startswith("the broker has not answered for 30") for r in caplog.records)


def test_other_transient_errors_keep_their_attempts_during_an_outage() -> None:
    clock = _Clock()
    deadlock = pymysql.err.OperationalError(1213, "Deadlock found")
    errors = [TopicIdUnavailable("x")] * 20 + [deadlock] * 8

    def fn() -> str:
        if errors:
            raise errors.pop(0)
        return "done"
    with pytest.raises(pymysql.err.OperationalError):
        _policy(clock, outage_s=300.0).run(fn)
    assert len(errors) == 0                    # the 20 outage errors did not use the 8 attempts up


def test_the_database_sink_waits_out_a_broker_outage_and_shows_it_in_its_metrics() -> None:
    from common.kafka import STREAMING_OUTAGE_S
    from tests.unit.test_replays import _sink

    sink = _sink(None)
    assert sink.retry.outage_s == STREAMING_OUTAGE_S
    clock = _Clock()
    sink.retry._sleep, sink.retry._clock = clock.sleep, lambda: clock.now
    sink.retry._rng = random.Random(5001)
    gauge = sink.metrics.broker_unreachable_seconds.labels("us", "db")
    beats: list[float] = []
    sink.waiting = lambda: beats.append(clock.now)      # /healthz's beat (cdcsync/commands/consumer.py)
    lookup, calls = _broker_stalled_for(clock, 60.0)
    during: list[float] = []

    def batch() -> str:
        during.append(gauge._value.get())
        return lookup()
    assert sink.retry.run(batch) == "answered"
    assert len(calls) > 8 and max(during) >= 45.0 and gauge._value.get() == 0.0
    assert sink.metrics.retries.labels("us", "db")._value.get() == len(calls) - 1
    assert len(beats) == len(calls) and max(b - a for a, b in zip(beats, beats[1:])) < 15   # never 120 s silent


def test_the_runner_waits_out_a_broker_outage_for_its_dead_letters() -> None:
    """An undecodable record the runner dead-letters itself, while the broker does not acknowledge."""
    from prometheus_client import CollectorRegistry

    from common.acked_producer import BrokerUnreachable
    from consumers.metrics import SinkMetrics
    from consumers.records import SourceRecord
    from consumers.runner import SinkRunner

    class Letters:
        limit = None

        def __init__(self, clock: _Clock) -> None:
            self.clock, self.published = clock, []

        def publish(self, letters) -> None:
            if self.clock.now < 60.0:
                self.clock.now += 30.0           # the publish's own wait for acknowledgements
                raise BrokerUnreachable("dead letters: 1 messages not acknowledged by the broker within 30 s")
            self.published.append(letters)

    class Source:
        assigned: set = set()

        def commit(self, records) -> None: ...

    class Sink:
        name = "cache"

        def write_batch(self, records) -> None:
            assert records == []

    clock = _Clock()
    letters = Letters(clock)
    metrics = SinkMetrics("eu", CollectorRegistry())
    runner = SinkRunner(source=Source(), sink=Sink(), dead_letters=letters, metrics=metrics,  # type: ignore[arg-type]
                        batch_max_events=10, batch_max_ms=50)
    runner.publish_retry._sleep, runner.publish_retry._clock = clock.sleep, lambda: clock.now
    runner._pending = [SourceRecord.from_message("p.us.db.t", 0, 7, b"k", b"not json")]
    assert runner.flush() == 1
    assert len(letters.published) == 1 and letters.published[0][0].record.offset == 7
    assert metrics.retries.labels("eu", "cache")._value.get() == 2
    assert metrics.dlq.labels("eu", "cache")._value.get() == 1
