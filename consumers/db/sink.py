"""The database sink: other regions' change events -> this region's database, exactly once in effect.

Contract of `write_batch`: when it returns, every record is committed, dead-lettered (and
acknowledged by the broker), or deliberately skipped (an echo, a star hub's relayed applied state,
already applied, or dominated by the local clock). Only then may the caller commit the Kafka offsets.

- One database transaction per batch and origin (a star hub's topics mix origins; a partition's
  runs of one origin then commit in order, see `transactions`). Its first statement upserts the
  `apply_marker` rows of its source partitions, which (a) tell this region's producer the origin
  of the transaction (loop prevention) and (b) store each partition's last applied offset and
  source GTID, in the same transaction as the data.
- Replays are recognised under the marker's row lock, and skipped only when provably applied
  (consumers/db/replays.py): a source (GTID, index) at or below the applied one in the same producer
  epoch and GTID domain and server (a producer's re-delivery after its restart), or an offset at or
  below the applied one in the same topic incarnation (Kafka topic id). A changed history (RESET
  MASTER, a failover, a recreated topic) is logged and counted, and its records applied; an offset
  below the marker that nothing proves either way stops the sink with the re-base command to run.
- Within a transaction the changes are reduced to the last one per key (the intermediate states
  are never visible anyway), then applied as batched deletes followed by multi-row upserts.
- A change that carries a vector clock is decided first (consumers/db/local_versions.py): under the
  row lock, against the local row's clock in `row_clocks`, it is skipped (dominated or equal),
  applied (newer), or resolved with the table's strategy (concurrent). The clock row, and for a
  resolution its conflict-log row, are written in the same transaction; resolutions are published
  to `<prefix>.conflicts` after the commit. A change without a clock is applied as it comes.
- On a star hub, every clocked change not applied before is forwarded, unchanged, to the hub's
  own topics and acknowledged by the broker before the commit (consumers/db/forwarder.py); spokes
  skip the hub's clocked applied state and take those versions instead.
- Transient errors roll back and retry with backoff; a broker outage (an unanswered topic id
  lookup or forward) for up to `STREAMING_OUTAGE_S` (300 s), as a publish waits. An error no retry
  can fix (missing table or column, constraint) re-runs the transaction statement by statement
  under savepoints, so only the poison events go to the dead-letter topic and the rest commit.
- An event the target cannot hold because the schemas differ (a column it lacks, a value too long
  or out of range for its type) is not dead-lettered while `sink.schema_mismatch = "wait"`: its
  partition is held from that event on and the batch is applied again without the held tail
  (consumers/db/schema_waits.py); the runner commits nothing held and resumes the partition once
  the target's schema catches up.
- `replay` (for `cdcsync dlq replay`) applies dead-lettered records again, each under its own
  savepoint, without the already-applied check. It still writes the marker row first (with the
  records' origin), but leaves the marker's applied offset and GTID as they are, so replaying an
  old offset never moves the live sink's replay detection backwards.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

import pymysql

from common import metadata_tables
from common.clock_triggers import APPLYING
from common.kafka import STREAMING_OUTAGE_S, client_settings
from common.mysql import connect
from common.retry import RetryPolicy
from consumers.db import conflict_log, dialect as db_dialect
from consumers.db.conflict_publisher import ConflictPublisher
from consumers.db.forwarder import Forwarder
from consumers.db.delta_merge import DeltaColumns, key_runs
from consumers.db.local_versions import ClockedPlanner, Planned, write_clocks
from consumers.db.params import param_converter
from consumers.db.replays import SourceHistoryError, verdict
from consumers.db.resolution import Action, decide, strategy_for
from consumers.db.ddl_apply import DdlApplier
from consumers.db.schema_waits import SCHEMA_ERRORS, SchemaMismatch, SchemaWaits
from consumers.db.trigger_refresh import refresh_clock_triggers
from consumers.db import session_setup
from consumers.db.unique_keys import (Collision, UniqueIndexes, find_collisions, losing_remote, release_values,
                                      remove_local_losers)
from consumers.dlq import DeadLetter, DeadLetterPublisher
from consumers.metrics import SinkMetrics
from consumers.records import SourceRecord, source_region
from consumers.topic_ids import TopicIds, TopicIdUnavailable
from schemas.config import PipelineConfig
from schemas.conflict_record import ConflictRecord
from schemas.events import ChangeEvent, DdlEvent, Op

log = logging.getLogger(__name__)

# Errors that retrying cannot fix: the event is poison for this target, not the sink broken.
POISON_ERRORS = {
    1146: "missing_table", 1054: "missing_column",
    1062: "constraint", 1451: "constraint", 1452: "constraint", 1048: "constraint", 1406: "constraint",
    1264: "constraint", 1366: "constraint", 1292: "constraint", 1265: "constraint", 4025: "constraint",
    3819: "constraint",
}


class _Poison(Exception):
    pass


class _LocalLosers(Exception):
    """Local rows lost their unique values to the batch: remove them as local writes, then retry."""

    def __init__(self, plans: list[Planned], collisions: list[Collision]) -> None:
        super().__init__(f"{len(collisions)} local rows lost a unique value")
        self.plans, self.collisions = plans, collisions


DUPLICATE_KEY = 1062
UNIQUE_ROUNDS = 5   # batch attempts that may each remove local losers of unique values


def poison_kind(err: BaseException) -> str | None:
    if isinstance(err, pymysql.err.MySQLError) and err.args:
        return POISON_ERRORS.get(err.args[0])
    return None


@dataclass(slots=True)
class _Run:
    """Consecutive accepted records of one partition with one origin: one database transaction."""

    topic: str
    partition: int
    origin: str
    records: list[SourceRecord] = field(default_factory=list)


def transactions(runs: list[_Run]) -> list[list[_Run]]:
    """Groups runs into database transactions: one per origin per round, where a round takes the
    next run of every partition. A partition's runs thus commit in order, and a mesh batch (one
    origin) is a single transaction across all its partitions."""
    queues: dict[tuple[str, int], list[_Run]] = {}
    for run in runs:
        queues.setdefault((run.topic, run.partition), []).append(run)
    groups: list[list[_Run]] = []
    while queues:
        by_origin: dict[str, list[_Run]] = {}
        for tp in list(queues):
            queue = queues[tp]
            run = queue.pop(0)
            by_origin.setdefault(run.origin, []).append(run)
            if not queue:
                del queues[tp]
        groups.extend(by_origin.values())
    return groups


class DatabaseSink:
    """Owned by one thread. Holds one connection to the region's database."""

    name = "db"

    def __init__(self, config: PipelineConfig, region: str, dead_letters: DeadLetterPublisher,
                 metrics: SinkMetrics, retry: RetryPolicy | None = None,
                 conflicts: ConflictPublisher | None = None, forwarder: Forwarder | None = None,
                 topic_ids: TopicIds | None = None) -> None:
        self.config = config
        self.region = config.region(region)
        self.dead_letters = dead_letters
        self.metrics = metrics
        sink = self.region.sink
        m = self.region.mysql
        # A broker outage (a topic id lookup or a forward unanswered) is waited out like a publish is,
        # beside the attempts: eight attempts are ~40 s of lookups, and a minute's stall made it exit.
        self.retry = retry or RetryPolicy(sink.retry_max_attempts, sink.retry_base_ms, sink.retry_max_ms,
                                          on_retry=lambda e, n, d: metrics.retried(self.name),
                                          server=f"MySQL {m.host}:{m.port}", outage_s=STREAMING_OUTAGE_S,
                                          on_outage=self._broker_outage)
        self.waiting: Callable[[], None] | None = None   # /healthz's beat: waiting for the broker is not a stall
        self._conn: pymysql.Connection | None = None
        self._unique = _SecondaryUniqueKeys()
        self._unique_indexes = UniqueIndexes()
        self.conflicts = conflicts
        self.forwarder = forwarder
        self.topic_ids = topic_ids or TopicIds(client_settings(config.kafka_for(region)))
        self._strategies: dict[tuple[str, str], Any] = {}
        self._planner = ClockedPlanner(region=self.region.name, flavor=self.region.mysql.flavor,
                                       meta_db=config.meta_db, strategy=self._strategy,
                                       decide=decide, converted=_converted,
                                       max_skew_ms=self.region.sink.max_clock_skew_ms, deltas=self._delta_columns,
                                       column_lww=self._column_lww)
        # Delta columns and column-lww merge every version of a key, not only a batch's last one.
        self._has_deltas = any(t.delta_columns or t.conflict_strategy == "column-lww" for t in config.tables.values())
        self._wait_on_mismatch = sink.schema_mismatch == "wait"
        self.waits = SchemaWaits(region=self.region.name, meta_db=config.meta_db, prefix=config.prefix,
                                 recheck_ms=sink.schema_recheck_ms, metrics=metrics, connection=self._connection,
                                 on_resume=self._refresh_triggers, ddl=DdlApplier(config, region, metrics))
        self.holds = self.waits.holds   # the runner pauses these partitions (schema waits, owner DDL)

    def _refresh_triggers(self, db: str, table: str) -> None:
        refresh_clock_triggers(self.region.mysql, meta_db=self.config.meta_db, region=self.region.name, db=db,
                               table=table, column_stamps=self._column_lww(db, table))

    def _delta_columns(self, db: str, table: str) -> DeltaColumns | None:
        columns = self.config.table(db, table).delta_columns
        return DeltaColumns(f"{db}.{table}", columns) if columns else None

    def _column_lww(self, db: str, table: str) -> bool:
        return self.config.table(db, table).conflict_strategy == "column-lww"

    def _strategy(self, db: str, table: str) -> Any:
        strategy = self._strategies.get((db, table))
        if strategy is None:
            strategy = self._strategies[(db, table)] = strategy_for(self.config.table(db, table), f"{db}.{table}")
        return strategy

    # -- connection ----------------------------------------------------------------------------
    def _connection(self) -> pymysql.Connection:
        if self._conn is None or not self._conn.open:
            self._conn = connect(self.region.mysql, autocommit=False)
            with self._conn.cursor() as cur:
                cur.execute(session_setup.APPLY)   # strict, UTC, clock triggers off (consumers/db/session_setup.py)
                # Locking reads of an absent key must lock its gap (local_versions.py): not READ COMMITTED.
                cur.execute("SET SESSION TRANSACTION ISOLATION LEVEL REPEATABLE READ")
        return self._conn

    def _drop_connection(self) -> None:
        if self._conn is not None:
            try:
                self._conn.close()
            except pymysql.err.Error:
                pass
        self._conn = None

    def close(self) -> None:
        self._drop_connection()

    # -- batches -------------------------------------------------------------------------------
    def write_batch(self, records: list[SourceRecord]) -> None:
        while True:
            try:
                for group in transactions(self._runs(records, live=True)):
                    started = time.perf_counter()
                    applied, resolved = self._apply_group(group)
                    self.metrics.applied(self.name, applied, time.perf_counter() - started)
                    self._announce(resolved)
                return
            except SchemaMismatch as mismatch:
                # Held from that record on; the groups committed before it are skipped as applied.
                self.waits.wait(mismatch.record, mismatch.reason)

    def _broker_outage(self, seconds: float) -> None:
        self.metrics.broker_unreachable(self.name, seconds)
        if self.waiting is not None:
            self.waiting()

    def _announce(self, resolved: list[ConflictRecord]) -> None:
        """Count and publish the committed resolutions. The conflict log already holds them, so a
        failed publish is logged, not retried into a second apply."""
        for record in resolved:
            self.metrics.conflict(f"{record.db}.{record.table}", record.strategy)
        if resolved and self.conflicts is not None:
            try:
                self.conflicts.publish(resolved)
            except Exception as err:  # noqa: BLE001 - the log table is the record of truth
                log.error("could not publish %d conflict records: %s", len(resolved), err)

    def _runs(self, records: list[SourceRecord], live: bool = False) -> list[_Run]:
        """Per partition, its accepted records in runs of one origin. `live` (not a replay): a
        partition's records from a schema owner's DDL marker on, or (waiting on mismatches) from the
        first one its target cannot hold (a column it lacks), are held instead."""
        by_partition: dict[tuple[str, int], list[SourceRecord]] = defaultdict(list)
        for record in records:
            by_partition[(record.topic, record.partition)].append(record)
        runs: list[_Run] = []
        skipped = {"not_a_row_change": 0, "echo": 0, "relayed_state": 0}   # one metric update per batch
        holds = self.holds if live else None
        precheck = live and self._wait_on_mismatch
        for (topic, partition), items in by_partition.items():
            source = source_region(topic, self.config.prefix)
            current: _Run | None = None
            for record in sorted(items, key=lambda r: r.offset):
                event = record.event
                if holds is not None and holds.held(record):
                    break     # the rest of this partition is applied after the hold is released
                if holds is not None and isinstance(event, DdlEvent) and event.partitions is not None:
                    if self._owner_marker(source, event) and not self.retry.run(
                            lambda event=event: self.waits.marker_applied(event)):
                        self.waits.wait_ddl(record)
                        break
                    skipped["not_a_row_change"] += 1
                    continue
                if not isinstance(event, ChangeEvent) or event.op is Op.TRUNCATE:
                    skipped["not_a_row_change"] += 1
                    continue
                if not self.config.accepts(self.region.name, source, event.origin):
                    skipped["echo"] += 1
                    continue
                if self._relayed_state(source, event):
                    skipped["relayed_state"] += 1
                    continue
                if precheck and not self.waits.fits_cached(event):
                    missing = self.retry.run(lambda event=event: self.waits.missing_columns(event))
                    if missing:
                        self.waits.wait(record, f"unknown column {', '.join(sorted(missing))}", missing)
                        break
                if current is None or current.origin != event.origin:
                    current = _Run(topic, partition, event.origin)
                    runs.append(current)
                current.records.append(record)
        for reason, count in skipped.items():
            if count:
                self.metrics.skipped(self.name, reason, count)
        return runs

    def _owner_marker(self, source: str, event: DdlEvent) -> bool:
        """A DDL marker this region applies: written by the table's schema owner on its own topic."""
        owner = self.config.table(event.db, event.table or "").schema_owner
        if owner == source and event.origin == source and owner != self.region.name:
            return True
        log.warning("ignoring a DDL marker of %s.%s from %s: the table's schema_owner is %s", event.db, event.table,
                    source, owner)
        return False

    def _relayed_state(self, source: str, event: ChangeEvent) -> bool:
        """A star hub's published applied change that carries a clock: the spoke takes the
        forwarded versions instead (consumers/db/forwarder.py)."""
        hub = self.config.topology.hub
        return (self.config.topology.mode == "star" and source == hub and event.region == hub
                and event.origin != hub and event.vclock is not None)

    def replay(self, records: list[SourceRecord]) -> list[DeadLetter]:
        """Apply dead-lettered records again, in source order per partition, one savepoint each and
        without folding or the already-applied check: an operator asked for them after fixing the
        cause. Returns, without publishing them, the records that were not applied and why (still
        undecodable, not a row change, not accepted by the topology, or a poison error again).
        Transient errors are retried like `write_batch`'s. Blocks.
        """
        refused: list[DeadLetter] = []
        accepted: list[SourceRecord] = []
        for record in records:
            event = record.event
            if event is None:
                refused.append(DeadLetter(record, record.error or "undecodable", record.error_kind or "undecodable"))
            elif not isinstance(event, ChangeEvent) or event.op is Op.TRUNCATE:
                refused.append(DeadLetter(record, "not a row change: nothing to apply", "not_a_row_change"))
            elif not self.config.accepts(self.region.name, source_region(record.topic, self.config.prefix),
                                         event.origin):
                refused.append(DeadLetter(record, f"region {self.region.name} does not apply changes of origin "
                                                  f"{event.origin} read from {record.topic}", "not_accepted"))
            else:
                accepted.append(record)
        for run in self._runs(accepted):
            def attempt(run: _Run = run) -> list[DeadLetter]:
                try:
                    return self._replay_transaction(run)
                except BaseException:
                    self._rollback()
                    raise

            started = time.perf_counter()
            failed, resolved = self.retry.run(attempt)
            self.metrics.applied(self.name, len(run.records) - len(failed), time.perf_counter() - started)
            self._announce(resolved)
            refused.extend(failed)
        return refused

    def _replay_transaction(self, run: _Run) -> tuple[list[DeadLetter], list[ConflictRecord]]:
        conn = self._connection()
        meta = self.config.meta_db
        with conn.cursor() as cur:
            conn.begin()
            marker = metadata_tables.read_marker(cur, meta, run.topic, run.partition) or metadata_tables.Marker(-1)
            metadata_tables.write_marker(cur, meta, topic=run.topic, partition=run.partition, origin=run.origin,
                                         offset=marker.offset, gtid=marker.gtid, txn_index=marker.txn_index,
                                         epoch=marker.epoch, topic_id=marker.topic_id)
            plans = self._planner.plan(conn, cur, run.records)
            failed = self._apply_isolated(cur, plans)
            conn.commit()
        return failed, _resolved(plans, failed)

    def _apply_group(self, group: list[_Run]) -> tuple[int, list[ConflictRecord]]:
        def attempt(isolate: bool) -> tuple[int, list[ConflictRecord]]:
            try:
                return self._transaction(group, isolate)
            except BaseException:
                self._rollback()
                raise

        isolate = False
        for _ in range(UNIQUE_ROUNDS):
            try:
                return self.retry.run(lambda: attempt(isolate))
            except _Poison:
                isolate = True
            except _LocalLosers as losers:
                self._remove_local_losers(losers)
        return self.retry.run(lambda: attempt(True))   # a unique value still contested: dead-lettered

    def _remove_local_losers(self, losers: _LocalLosers) -> None:
        """Delete, as local writes (published like any), the local rows that lost a unique value."""
        def remove() -> list[ConflictRecord]:
            try:
                return remove_local_losers(self._connection(), self.config.meta_db, self.region.name, losers.plans,
                                           losers.collisions, applying=APPLYING,
                                           gtid_statement=db_dialect.gtid_state(self.region.mysql.flavor))
            except BaseException:
                self._rollback()
                raise

        records = self.retry.run(remove)
        for record in records:
            log.warning("unique key of %s.%s: local row %s lost its value to a version from %s (hlc %d); "
                        "deleted here as a local write", record.db, record.table, record.pk, record.remote.origin,
                        record.remote.hlc_us)
        self._announce(records)

    def _rollback(self) -> None:
        if self._conn is None:
            return
        try:
            self._conn.rollback()
        except pymysql.err.Error:
            self._drop_connection()

    def _transaction(self, group: list[_Run], isolate: bool) -> tuple[int, list[ConflictRecord]]:
        conn = self._connection()
        meta = self.config.meta_db
        with conn.cursor() as cur:
            conn.begin()
            markers = metadata_tables.read_markers(cur, meta, [(run.topic, run.partition) for run in group])
            fresh: list[SourceRecord] = []
            new_markers = []
            for run in group:
                kept, topic_id = self._unapplied(run, markers.get((run.topic, run.partition)))
                if len(kept) < len(run.records):
                    self.metrics.skipped(self.name, "already_applied", len(run.records) - len(kept))
                if kept:
                    last: ChangeEvent = kept[-1].event  # type: ignore[assignment]
                    new_markers.append((run.topic, run.partition, run.origin, kept[-1].offset, last.gtid,
                                        last.txn_index, last.epoch, topic_id))
                    fresh.extend(kept)
            if not fresh:
                conn.rollback()
                return 0, []
            metadata_tables.write_markers(cur, meta, new_markers)   # first: loop prevention needs it
            if self.forwarder is not None:   # a star hub: every version reaches the spokes, acknowledged first
                self.forwarder.forward([r for r in fresh if r.event.vclock is not None])  # type: ignore[union-attr]
            runs = key_runs(fresh) if self._has_deltas else None   # every version of a key: delta, column-lww
            plans = self._decide_unique(conn, cur, self._planner.plan(conn, cur, _last_per_key(fresh), runs))
            skipped = sum(1 for p in plans if p.action is Action.SKIP)
            letters = (self._apply_isolated(cur, plans, wait=self._wait_on_mismatch) if isolate
                       else self._apply_batched(cur, plans))
            if letters:
                self.dead_letters.publish(letters)     # acknowledged before the commit: never lost
                self.metrics.dead_lettered(self.name, len(letters))
            conn.commit()
        if skipped:
            self.metrics.skipped(self.name, "dominated", skipped)
        return len(fresh) - len(letters), _resolved(plans, letters)

    def _decide_unique(self, conn: pymysql.Connection, cur: pymysql.cursors.Cursor,
                       plans: list[Planned]) -> list[Planned]:
        """Secondary UNIQUE values claimed by a local row of another key (consumers/db/unique_keys.py):
        a losing remote version becomes a tombstone of its key; losing local rows raise `_LocalLosers`."""
        collisions = find_collisions(conn, cur, self.config.meta_db, plans, self._unique_indexes,
                                     self._planner._encoders, _converted)
        local_losers = [c for c in collisions if c.remote_wins]
        if local_losers:
            raise _LocalLosers(plans, local_losers)
        if not collisions:
            return plans
        plans = list(plans)
        for collision in collisions:
            if plans[collision.index].write is not None:
                plans[collision.index] = losing_remote(plans[collision.index], collision, region=self.region.name,
                                                       now_us=time.time_ns() // 1000)
        cur.execute(db_dialect.gtid_state(self.region.mysql.flavor))
        gtid_state = cur.fetchone()[0]
        return [p if p.conflict is None or p.conflict.local_gtid else
                replace(p, conflict=p.conflict.model_copy(update={"local_gtid": gtid_state})) for p in plans]

    def _unapplied(self, run: _Run, marker: metadata_tables.Marker | None) -> tuple[list[SourceRecord], str | None]:
        """The run's records not provably applied (consumers/db/replays.py), and the topic id to store
        with the marker. A history or topic change is logged and counted once per run."""
        fresh = marker is not None and run.records[0].offset <= marker.offset   # proving by offset: ask now
        # An unanswered lookup raises TopicIdUnavailable (transient: the batch rolls back and is retried),
        # so the marker below is never written without the id of a topic that has one.
        topic_id = self.topic_ids.get(run.topic, fresh=fresh)
        if topic_id is None and marker is not None and marker.topic_id is not None:
            topic_id = None if fresh else self.topic_ids.get(run.topic, fresh=True)
            if topic_id is None:   # the cluster says "no id" for a topic that had one: not trusted
                raise TopicIdUnavailable(f"{run.topic}[{run.partition}]: the cluster gives no topic id, but the "
                                         f"marker has {marker.topic_id}; not writing a marker without it (a broker "
                                         f"that no longer has topic ids: cdcsync markers rebase, docs/apply.md)")
        source = source_region(run.topic, self.config.prefix)
        kept: list[SourceRecord] = []
        seen: dict[str, SourceRecord] = {}
        for record in run.records:
            event: ChangeEvent = record.event  # type: ignore[assignment]
            try:
                found = verdict(event, record.offset, marker, own_region=event.region == source, topic_id=topic_id)
            except SourceHistoryError as err:
                raise SourceHistoryError(
                    f"{run.topic}[{run.partition}]: {err}. Re-base this region's marker, then restart the "
                    f"sink: cdcsync markers rebase --config FILE --region "
                    f"{self.region.name} --topic {run.topic} --partition {run.partition} (it then applies what it "
                    f"reads; versions applied before are skipped by their clocks)") from None
            if found.reset is not None and found.reset not in seen:
                seen[found.reset] = record
            if not found.applied:
                kept.append(record)
        for kind, record in seen.items():
            event = record.event  # type: ignore[assignment]
            self.metrics.source_reset(self.name, kind)
            log.warning("%s[%d]@%d: %s (marker: offset %s, epoch %s, GTID %s, topic id %s; record: epoch %s, "
                        "GTID %s, topic id %s): applying, since it is not provably applied", run.topic,
                        run.partition, record.offset, kind, marker.offset, marker.epoch, marker.gtid,  # type: ignore[union-attr]
                        marker.topic_id, event.epoch, event.gtid, topic_id)  # type: ignore[union-attr]
        return kept, topic_id

    def _apply_batched(self, cur: pymysql.cursors.Cursor, final: list[Planned]) -> list[DeadLetter]:
        try:
            self._write(cur, final)
        except pymysql.err.MySQLError as err:
            if poison_kind(err) is not None:
                raise _Poison(str(err)) from err
            raise
        return []

    def _apply_isolated(self, cur: pymysql.cursors.Cursor, final: list[Planned], *,
                        wait: bool = False) -> list[DeadLetter]:
        """Each plan under its own savepoint. A plan refused for a duplicate unique value is tried
        again after the others, while a round makes progress: a batch keeps only the last change of
        every key, so a row may arrive before the row that gave up its unique value for it."""
        letters: list[DeadLetter] = []
        pending = list(final)
        while pending:
            waiting: list[tuple[Planned, pymysql.err.MySQLError, str]] = []
            for plan in pending:
                cur.execute("SAVEPOINT cdcsync_event")
                try:
                    self._write(cur, [plan])
                except pymysql.err.MySQLError as err:
                    kind = poison_kind(err)
                    if kind is None:
                        raise
                    if wait and err.args[0] in SCHEMA_ERRORS:
                        raise SchemaMismatch(plan.record, f"{err.args[0]} {SCHEMA_ERRORS[err.args[0]]}: "
                                                          f"{err.args[-1]}") from err
                    cur.execute("ROLLBACK TO SAVEPOINT cdcsync_event")
                    waiting.append((plan, err, kind))
            stuck = len(waiting) == len(pending)
            if stuck and self._swapped(cur, waiting):
                waiting = []
            pending = []
            for plan, err, kind in waiting:
                if err.args[0] == DUPLICATE_KEY and not stuck:
                    pending.append(plan)
                    continue
                record = plan.record
                letters.append(DeadLetter(record, f"{err.args[0]}: {err.args[-1]}", kind))
                log.warning("cannot apply %s[%d]@%d: %s", record.topic, record.partition, record.offset, err)
        return letters

    def _swapped(self, cur: pymysql.cursors.Cursor,
                 waiting: list[tuple[Planned, pymysql.err.MySQLError, str]]) -> bool:
        """Rows of the batch refused only for duplicate values, none able to move on alone: they may
        hold each other's values (a swap, its intermediate steps collapsed), which no order of
        single-row writes applies. Release their unique values (NULL), then write them together;
        rolled back (False, they are dead-lettered) when that fails too."""
        if len(waiting) < 2 or any(err.args[0] != DUPLICATE_KEY for _, err, _ in waiting):
            return False
        plans = [plan for plan, _, _ in waiting]
        cur.execute("SAVEPOINT cdcsync_swap")
        try:
            release_values(cur, plans, self._unique_indexes)
            self._write(cur, plans)
        except pymysql.err.MySQLError as err:
            if poison_kind(err) is None:
                raise
            cur.execute("ROLLBACK TO SAVEPOINT cdcsync_swap")
            return False
        log.info("applied %d rows that held each other's unique values, their values released first", len(plans))
        return True

    def _write(self, cur: pymysql.cursors.Cursor, plans: list[Planned]) -> None:
        """Deletes first (a re-inserted unique value must find its old row gone), then upserts, then
        the clock rows and conflict-log rows of the same changes."""
        flavor = self.region.mysql.flavor
        deletes, upserts = _plan([p.write for p in plans if p.write is not None])
        for (db, table, key_cols), rows in deletes.items():
            cur.execute(db_dialect.delete(db, table, key_cols, len(rows)), [v for row in rows for v in row])
        for (db, table, cols, key_cols, zero, _), rows in upserts.items():
            with session_setup.enum_zero(cur, zero) if zero else contextlib.nullcontext():
                if self._unique.has_secondary(cur, db, table):
                    self._insert_or_update(cur, db, table, cols, key_cols, rows)
                else:
                    cur.execute(db_dialect.upsert(flavor, db, table, cols, len(rows)),
                                [v for row in rows for v in row])
        meta = self.config.meta_db
        announced = [p for p in plans if p.announce is not None]
        if announced:
            metadata_tables.write_published_deletes(cur, meta, [
                (p.record.topic, p.record.partition, p.record.offset, p.announce) for p in announced])
        write_clocks(cur, meta, [p.clock for p in plans if p.clock is not None])
        for plan in plans:
            if plan.conflict is not None:
                conflict_log.insert(cur, meta, plan.conflict, key=plan.clock.key)  # type: ignore[union-attr]

    def _insert_or_update(self, cur: pymysql.cursors.Cursor, db: str, table: str, cols: tuple[str, ...],
                          key_cols: tuple[str, ...], rows: list[list[Any]]) -> None:
        """For a table with a secondary UNIQUE key. There, ON DUPLICATE KEY UPDATE would rewrite
        whichever other row holds a colliding value, primary key included, without an error.
        Instead: insert the absent rows and update the present ones by primary key, so that a
        collision raises (and becomes a dead letter)."""
        at = [cols.index(k) for k in key_cols]
        params = [v for i, row in enumerate(rows) for v in (i, *(row[j] for j in at))]
        cur.execute(db_dialect.present_keys(self.region.mysql.flavor, db, table, key_cols, len(rows)), params)
        present = {int(r[0]) for r in cur.fetchall()}
        absent = [row for i, row in enumerate(rows) if i not in present]
        if absent:
            cur.execute(db_dialect.insert(db, table, cols, len(absent)), [v for row in absent for v in row])
        update = db_dialect.update_by_key(db, table, cols, key_cols)
        for i in sorted(present):
            cur.execute(update, [*rows[i], *(rows[i][j] for j in at)])


class _SecondaryUniqueKeys:
    """Which target tables have a UNIQUE index besides the primary key; re-read every `ttl_s`,
    so an index added later is noticed."""

    def __init__(self, ttl_s: float = 60.0) -> None:
        self._ttl_s = ttl_s
        self._known: dict[tuple[str, str], tuple[bool, float]] = {}

    def has_secondary(self, cur: pymysql.cursors.Cursor, db: str, table: str) -> bool:
        known = self._known.get((db, table))
        now = time.monotonic()
        if known is not None and now - known[1] < self._ttl_s:
            return known[0]
        cur.execute("SELECT 1 FROM information_schema.STATISTICS WHERE TABLE_SCHEMA = %s AND TABLE_NAME = %s "
                    "AND NON_UNIQUE = 0 AND INDEX_NAME <> 'PRIMARY' LIMIT 1", (db, table))
        found = cur.fetchone() is not None
        self._known[(db, table)] = (found, now)
        return found


def _resolved(plans: list[Planned], letters: list[DeadLetter]) -> list[ConflictRecord]:
    """The conflict records of the plans that were written (not dead-lettered)."""
    dead = {id(letter.record) for letter in letters}
    return [p.conflict for p in plans if p.conflict is not None and id(p.record) not in dead]


def _last_per_key(records: list[SourceRecord]) -> list[SourceRecord]:
    """The last change of every key, in the order of those last changes.

    The Kafka key is the canonical primary key (prefixed by `db.table:` on a per-region topic),
    so (topic, key) names the row.
    """
    last: dict[tuple[str, bytes | None], SourceRecord] = {}
    for record in records:
        key = (record.topic, record.key)
        last.pop(key, None)
        last[key] = record
    return list(last.values())


_converters: dict[tuple[str, str, tuple[str, ...], tuple[str, ...]], tuple[Any, ...]] = {}


def _converted(event: ChangeEvent, image: dict[str, Any], columns: tuple[str, ...]) -> list[Any]:
    """Query parameters of `image`'s `columns`; converters are looked up once per table shape."""
    types = tuple(event.types.get(c, "") for c in columns)
    shape = (event.db, event.table, columns, types)
    converters = _converters.get(shape)
    if converters is None:
        converters = _converters[shape] = tuple(param_converter(t) for t in types)
    return [value if convert is None or value is None else convert(value)
            for convert, value in zip(converters, map(image.__getitem__, columns))]


def _plan(records: list[SourceRecord]) -> tuple[dict[Any, list[list[Any]]], dict[Any, list[list[Any]]]]:
    """Query parameters grouped per statement: deletes by (db, table, key columns), upserts by
    (db, table, columns, key columns); a row holding the invalid ENUM value `''` gets a statement of
    its own, run inside `session_setup.enum_zero`."""
    deletes: dict[Any, list[list[Any]]] = defaultdict(list)
    upserts: dict[Any, list[list[Any]]] = defaultdict(list)
    for record in records:
        event: ChangeEvent = record.event  # type: ignore[assignment]
        key_cols = tuple(event.pk)
        if event.op is Op.DELETE:
            deletes[(event.db, event.table, key_cols)].append(_converted(event, event.pk, key_cols))
        else:
            image = event.after or {}
            cols = tuple(image)
            zero = session_setup.enum_zero_columns(event.types, image)
            alone = len(upserts) if zero else None
            upserts[(event.db, event.table, cols, key_cols, zero, alone)].append(_converted(event, image, cols))
    return deletes, upserts
