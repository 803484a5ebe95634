"""The sink loop: consume a batch, apply it, then commit its offsets. Nothing else commits.

Offsets are committed after the batch that reached them is applied, never before, and at most
every `commit_interval_ms` while records keep coming (0: after every batch): a commit is a
round trip to the broker and its work there, paid per batch when the batches are small. They
are committed once a poll of the source (0.25 s) has come back empty, inside the revoke
callback, and on the way out of `run` (a stop, or an error after earlier batches were applied). A crash in
between replays at most that interval's batches, which the sinks skip (docs/apply.md, "At least
once, applied once").

A batch is applied as soon as the source has nothing more waiting (after `batch_linger_ms`, 0 by
default), at `batch_max_events` events, or `batch_max_ms` after its first event while records keep
arriving: under load the batches grow by themselves (what arrives while one applies is the next),
and a lone change is applied without waiting for a window. A batch that already holds
`busy_batch_events` when the source runs dry is under load: it waits for the next fetch (until
`batch_max_ms` after its first event), so a busy sink pays its per-batch costs (a database
transaction, its echo, a commit) once per two fetches or more, not at every short fetch. On a
rebalance the in-flight batch is applied and committed inside the revoke callback, before the
partitions move; on SIGTERM the loop finishes the batch, commits, stops its consumer without
LeaveGroup (consumers/source.py) and returns.
Undecodable messages are dead-lettered (and acknowledged) before the batch's offsets are committed;
a broker that does not acknowledge them is waited for, as the database sink's batch does, up to
`STREAMING_OUTAGE_S` (300 s: docs/apply.md, "Broker outages"), then the sink stops.
A poison flood (more consecutive dead letters than `sink.max_consecutive_dead_letters`) raises
`DeadLetterFlood` out of `flush` before the batch commits, and `run` stops (consumers/dlq_limit.py).
The source is any `Source` (consumers/source_protocol.py: Kafka, or in memory for tests).
A sink left without partitions while its group has lag nobody applies raises `Unassigned` out of
`run` after its limit (consumers/assignment_watchdog.py).
A sink with `holds` (consumers/partition_holds.py: the database sink, waiting for a schema) may hold
a partition at a record it cannot apply yet: the runner commits nothing of that partition from
there, pauses it on the source, and resumes it when a recheck (every `recheck_ms`) lets it go.
"""

from __future__ import annotations

import logging
import time
from typing import Protocol

from common import log_context
from common.health_server import HealthState
from common.kafka import STREAMING_OUTAGE_S
from common.retry import RetryPolicy
from consumers import gc_tuning
from consumers.assignment_watchdog import AssignmentWatchdog
from consumers.dlq import DeadLetter, DeadLetterPublisher
from consumers.metrics import SinkMetrics
from consumers.partition_holds import PartitionHolds
from consumers.records import SourceRecord, TopicPartition
from consumers.source_lag import BehindSource
from consumers.source_protocol import Source
from consumers.unclocked_changes import UnclockedChanges

log = logging.getLogger(__name__)


class Sink(Protocol):
    name: str

    def write_batch(self, records: list[SourceRecord]) -> None:
        """Apply every record (or dead-letter it) durably; return only then. Blocks."""

    def close(self) -> None: ...


class SinkRunner:
    def __init__(self, *, source: Source, sink: Sink, dead_letters: DeadLetterPublisher, metrics: SinkMetrics,
                 batch_max_events: int, batch_max_ms: int, batch_linger_ms: int = 0,
                 commit_interval_ms: int = 0, busy_batch_events: int | None = None) -> None:
        gc_tuning.for_batches()     # a batch of decoded events is many young objects (consumers/gc_tuning.py)
        self.source = source
        self.sink = sink
        self.dead_letters = dead_letters
        self.metrics = metrics
        self.batch_max_events = batch_max_events
        self.batch_max_s = batch_max_ms / 1000
        self.batch_linger_s = batch_linger_ms / 1000
        self.commit_interval_s = commit_interval_ms / 1000
        self.busy_batch_events = batch_max_events if busy_batch_events is None else busy_batch_events
        self._pending: list[SourceRecord] = []
        # Per partition, the last record applied whose offset is not committed yet.
        self._uncommitted: dict[tuple[str, int], SourceRecord] = {}
        self._commit_due = 0.0
        self._stop = False
        self.batches = 0
        self.health: HealthState | None = None   # set by the command that serves /healthz
        self.unclocked: UnclockedChanges | None = None   # reports changes without a clock (set by build_runners)
        self.watchdog: AssignmentWatchdog | None = None  # stops a sink left without partitions (set by build_runners)
        self.behind_source = BehindSource(metrics, sink.name)   # seconds behind the source, per batch
        self.holds: PartitionHolds | None = getattr(sink, "holds", None)   # partitions the sink waits on
        # Dead letters of undecodable records: only a broker outage is retried (one attempt otherwise).
        self.publish_retry = RetryPolicy(1, 50, 5000, on_retry=lambda e, n, d: metrics.retried(sink.name),
                                         outage_s=STREAMING_OUTAGE_S, on_outage=self._broker_outage)

    def _broker_outage(self, seconds: float) -> None:
        self.metrics.broker_unreachable(self.sink.name, seconds)
        if self.health is not None:
            self.health.beat()     # waiting for the broker is not a stalled loop

    def request_stop(self, *_: object) -> None:
        self._stop = True

    def on_revoke(self, partitions: list[TopicPartition]) -> None:
        self.flush()
        self.commit_applied()     # before the partitions move: their next owner starts after it
        if self.holds is not None:
            self.holds.forget(partitions)

    def step(self) -> int:
        """Fill one batch (see `_fill`), apply and commit it.
        Returns the number of records it handled (0 after an idle poll of up to 0.25 s). Blocks up
        to the batch window."""
        self._fill()
        handled = self.flush()
        if self.holds is not None:
            released = self.holds.recheck()
            if released:
                self.source.release(released)
        return handled

    def run(self) -> None:
        next_lag = time.monotonic()
        try:
            while not self._stop:
                self.step()
                if self.health is not None:
                    self.health.beat()
                if self.watchdog is not None:
                    self.watchdog.observe(bool(self.source.assigned))
                if time.monotonic() >= next_lag:
                    self._report_lag()
                    next_lag = time.monotonic() + 5.0
            self.flush()
        finally:
            try:
                self.commit_applied()    # what earlier batches applied, whatever stopped this one
            except Exception as err:     # a replay of them is harmless; the first error is the story
                log.warning("offset commit on the way out failed (%s); the next owner will replay", err)
            self.source.close()      # no LeaveGroup: the others take over when its session times out
            self.sink.close()

    def _fill(self) -> None:
        """Wait up to 0.25 s for a first record, then take what the source already holds: the batch
        is applied once the source has had nothing more for `batch_linger_ms` (0: at once), at
        `batch_max_events`, or `batch_max_ms` after its first record while records keep coming."""
        deadline: float | None = None
        dry_since: float | None = None    # when the source last came back empty for this batch
        while not self._stop and len(self._pending) < self.batch_max_events:
            now = time.monotonic()
            if not self._pending:
                timeout = 0.25
            else:
                if deadline is None:
                    deadline = now + self.batch_max_s
                busy = len(self._pending) >= self.busy_batch_events   # under load: wait for the next fetch
                end = deadline if dry_since is None or busy else min(deadline, dry_since + self.batch_linger_s)
                if now >= end:
                    return
                timeout = 0.0 if dry_since is None else end - now
            records = self.source.consume(self.batch_max_events - len(self._pending), min(timeout, 0.25))
            if records:
                dry_since = None
            elif self._pending and dry_since is None:
                dry_since = now
            elif not self._pending and self._uncommitted:
                # At rest (a whole poll without a record): the applied offsets go out now. Not at
                # every dry poll: between two fetches a sink is "caught up" many times a second.
                self.commit_applied()
            self._pending.extend(records)
            if not self._pending:
                # Idle (or a revoke flushed what we had): back to `run`, which beats /healthz and
                # runs the assignment watchdog between polls.
                return

    def flush(self) -> int:
        """Apply and commit whatever is pending. Called by the loop and by the revoke callback."""
        records, self._pending = self._pending, []
        if not records:
            return 0
        if self.dead_letters.limit is not None:
            self.dead_letters.limit.begin(records)
        skipped: dict[str, int] = {}
        for r in records:
            if r.skipped is not None:
                skipped[r.skipped] = skipped.get(r.skipped, 0) + 1
        for reason, count in skipped.items():   # left undecoded by the source (their headers proved it)
            self.metrics.skipped(self.sink.name, reason, count)
        poison = [r for r in records if r.event is None and r.skipped is None]
        if poison:
            letters = [DeadLetter(r, r.error or "undecodable", r.error_kind or "undecodable") for r in poison]
            self.publish_retry.run(lambda: self.dead_letters.publish(letters))   # a retried admit counts once
            self.metrics.dead_lettered(self.sink.name, len(poison))
        if self.unclocked is not None:
            self.unclocked.check(records)
        self.sink.write_batch([r for r in records if r.event is not None])
        if self.holds is not None and self.holds.holds:
            new = self.holds.take_new()
            if new:
                self.source.hold(new)
            records = [r for r in records if not self.holds.held(r)]   # applied again after the release
        for r in records:
            self._uncommitted[(r.topic, r.partition)] = r     # offset order per partition: the last wins
        now = time.monotonic()
        if now >= self._commit_due:
            self.commit_applied()
            self._commit_due = now + self.commit_interval_s
        self.behind_source.applied(records)
        if self.dead_letters.limit is not None:
            self.dead_letters.limit.end()
        if not records:
            return 0
        last = records[-1]
        log_context.set_position(f"{last.topic}[{last.partition}]@{last.offset}")
        self.metrics.batch(self.sink.name, len(records))
        self.batches += 1
        return len(records)

    def commit_applied(self) -> None:
        """Commit the offsets after the last applied record of each partition this member still
        holds (a lost partition's next owner replays from its last commit, harmlessly)."""
        if not self._uncommitted:
            return
        assigned = self.source.assigned
        last, self._uncommitted = self._uncommitted, {}
        held = [r for r in last.values() if TopicPartition(r.topic, r.partition) in assigned]
        if held:
            self.source.commit(held)

    def _report_lag(self) -> None:
        try:
            for tp, lag in self.source.lag().items():
                self.metrics.lag.labels(self.metrics.region, self.sink.name, tp.topic, str(tp.partition)).set(lag)
        except Exception as err:  # lag is informational; never stop applying for it
            log.debug("lag report failed: %s", err)
