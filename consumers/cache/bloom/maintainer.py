"""`cdcsync bloom`: keeps a region's per-table Bloom filters in step with its change stream.

One maintainer per region (a Redis lease makes a second one wait). It reads every change topic of
the region by assignment (no consumer group: its positions are stored in Redis with the bits,
`BloomStore.apply`), so a restart resumes exactly where the bits end, even after Redis itself was
restored from an older snapshot. New partitions start at their beginning (adding a key twice is
harmless; missing one is not), given as the explicit offset of the low watermark: an assignment at
OFFSET_BEGINNING makes librdkafka look the offset up first, and partitions assigned so 3 s after a
broker stall were never fetched (docs/reliability.md).

Besides applying changes it publishes the freshness proof readers need before they may answer
"absent" (docs/lookup.md, "The insert race"): at Redis time W it reads the server's binlog head
H (`SHOW MASTER STATUS`); once the producer's checkpoint covers H, everything committed before W
is in Kafka, and once this maintainer has applied every partition up to its high watermark taken
after that, it is in the filters: it then stores W in `_fresh`. A proof that times out names the
partitions it waits on; stuck ones (records past a position that does not move) make it recreate
its consumer, and exit non-zero if that does not help (consumers/cache/bloom/fetch_watch.py).

Builds (missing filters, and rebuilds chosen by `bloom_policy`) run on a background thread;
everything else runs on the thread that calls `run`.
"""

from __future__ import annotations

import logging
import queue
import re
import threading
import time
import uuid
from typing import Any

from confluent_kafka import Consumer, KafkaException, TopicPartition as KafkaTP

from common.checkpoint_store import FileCheckpointStore
from common.kafka import client_settings, watermarks
from common.retry import is_transient
from common.mysql import connect
from common.snapshot_reader import ConsistentSnapshot
from consumers.cache.bloom.build import build_table
from consumers.cache.bloom.fetch_watch import FetchWatch
from consumers.cache.bloom.policy import rebuild_reason
from consumers.cache.bloom.store import BloomStore, Generation
from consumers.cache.lookup_metrics import FilterMetrics
from schemas.cache_layout import event_key_values
from common.redis_connect import redis_client
from consumers.records import SourceRecord
from schemas.codec import canonical_pk
from schemas.config import PipelineConfig
from schemas.events import ChangeEvent, Op
from schemas.topics import TopicNames

log = logging.getLogger(__name__)

LEASE_MS = 15_000
# Time between two proofs while readers wait for one; an idle cycle is one SHOW MASTER STATUS.
PROOF_PERIOD_S = 0.01
IDLE_PROOF_PERIOD_S = 0.25


class BrokerUnanswered(Exception):
    """The broker did not answer a watermark query in time (a stall, a partition)."""


def binlog_order(file: str, pos: int) -> tuple[int, int]:
    return (int(file.rsplit(".", 1)[1]) if "." in file else 0, pos)


def added_keys(event: ChangeEvent) -> list[str]:
    """Keys a change makes exist: inserts, snapshot rows, and the new key of a key-changing update."""
    if event.op in (Op.INSERT, Op.SNAPSHOT):
        return [canonical_pk(event_key_values(event))]
    if event.op is Op.UPDATE and event.pk_fold:
        # A text key its collation folds: the producer publishes a change of the key (by its fold)
        # as a delete and an insert, so an update keeps its key (a new spelling is the same key).
        return []
    if event.op is Op.UPDATE:
        columns, after, before = list(event.pk), event.after or {}, event.before or {}
        if all(c in after for c in columns) and all(c in before for c in columns):
            new, old = canonical_pk([after[c] for c in columns]), canonical_pk([before[c] for c in columns])
            return [new] if new != old else []
        return [canonical_pk(list(event.pk.values()))]   # no full images: add the event's key, to be safe
    return []


class BloomMaintainer:
    def __init__(self, config: PipelineConfig, region: str, *, metrics: FilterMetrics | None = None,
                 proof_timeout_s: float = 30.0, lease_wait_s: float = 2 * LEASE_MS / 1000) -> None:
        self.config = config
        self.region = region
        self.settings = config.region(region)
        self.client = redis_client(self.settings.redis)
        self.store = BloomStore(self.client, config.prefix, region)
        self.metrics = metrics or FilterMetrics(region)
        self.proof_timeout_s = proof_timeout_s
        self.lease_wait_s = lease_wait_s
        self._kafka = client_settings(config.kafka_for(region))
        self._pattern = re.compile(TopicNames.of(config).change_subscription(region))
        self._consumer = self._new_consumer()
        self._fetch_watch = FetchWatch(region)
        self._next: dict[tuple[str, int], int] = {}       # next offset to apply, per assigned partition
        self._live: dict[str, list[Generation]] = {}
        self._lock = threading.Lock()                     # apply vs. build registration and swap
        self._builds: queue.Queue[tuple[str, str]] = queue.Queue()
        self._pending_builds: set[str] = set()
        self._selected: list[str] = []                   # the captured tables, each of which has a filter
        self._stop = threading.Event()
        self._holder = uuid.uuid4().hex
        self._checkpoints = FileCheckpointStore(self.settings.producer.checkpoint_dir, region, self.settings.server_id)
        self.proofs = 0
        self._proven_head: tuple[str, int] | None = None
        self._lease_renewed = time.monotonic()
        self._conn: Any = None
        self._unproven_since: float | None = None     # since when proofs fail for a lost server
        self.builds_done = 0
        self.last_error: BaseException | None = None

    # -- lifecycle --------------------------------------------------------------------------------
    def request_stop(self, *_: object) -> None:
        self._stop.set()

    def start(self) -> None:
        """Take the lease, load the filters and positions, assign partitions, queue missing builds."""
        deadline = time.monotonic() + self.lease_wait_s
        while not self.store.hold_lease(self._holder, LEASE_MS):
            if time.monotonic() > deadline or self._stop.is_set():
                raise RuntimeError(f"another `cdcsync bloom` holds region {self.region}'s lease")
            time.sleep(0.5)
        self._discover()
        selected = self._selected_tables()
        for table in self.store.tables():
            if table not in selected:
                # No longer captured: its changes stop coming, so its filter would miss new keys.
                log.warning("bloom %s: %s is no longer captured; dropping its filter", self.region, table)
                self.store.drop(table)
        self._selected = selected
        for table in selected:
            self._ensure_filter(table)
        threading.Thread(target=self._build_loop, name="bloom-build", daemon=True).start()
        log.info("bloom %s: started: %d tables, %d partitions", self.region, len(selected), len(self._next))

    def run(self) -> None:
        self.start()
        next_check = time.monotonic()
        try:
            last_proof = 0.0
            while not self._stop.is_set():
                # Proofs every PROOF_PERIOD_S while a reader waits for one (it sets `_wanted`), else
                # every IDLE_PROOF_PERIOD_S: an idle region costs a few statements a second.
                if time.monotonic() - last_proof >= IDLE_PROOF_PERIOD_S or self.client.exists(self.store.keys.wanted):
                    last_proof = time.monotonic()
                    self._prove_through_outages()
                self.poll_once(PROOF_PERIOD_S)
                if time.monotonic() >= next_check:
                    self.check_filters()
                    next_check = time.monotonic() + self.config.lookup.check_interval_s
        finally:
            self.close()

    def close(self) -> None:
        self._stop.set()
        self._builds.put(("", ""))
        self._consumer.close()
        if self._conn is not None:
            self._conn.close()
        self.store.release_lease(self._holder)
        self.client.close()

    # -- the stream -------------------------------------------------------------------------------
    def _new_consumer(self) -> Consumer:
        # Assignment only: the group id is never joined nor committed to.
        return Consumer({**self._kafka, "group.id": f"{self.config.prefix}.{self.region}.bloom",
                         "enable.auto.commit": False, "enable.auto.offset.store": False, "fetch.wait.max.ms": 50})

    def _recreate_consumer(self) -> None:
        """A fresh consumer assigned every partition at its explicit next offset: whatever state the old
        one is stuck in goes with it. The old one is closed on a thread of its own, bounded: a broker
        that does not answer must not hold the maintainer."""
        old, self._consumer = self._consumer, self._new_consumer()
        self._consumer.incremental_assign([KafkaTP(t, p, o) for (t, p), o in sorted(self._next.items())])
        closer = threading.Thread(target=old.close, name="bloom-consumer-close", daemon=True)
        closer.start()
        closer.join(10)

    def _discover(self) -> None:
        """Assign partitions of change topics that appeared since, at their stored positions."""
        metadata = self._consumer.list_topics(timeout=10)
        stored = self.store.positions()
        new, gap = [], []
        for topic, meta in metadata.topics.items():
            if not self._pattern.search(topic):
                continue
            for partition in meta.partitions:
                if (topic, partition) in self._next:
                    continue
                offset = stored.get((topic, partition))
                low, _ = self._consumer.get_watermark_offsets(KafkaTP(topic, partition), timeout=10)
                if offset is None:
                    offset = max(low, 0)
                elif offset < low:
                    gap.append(topic)
                    offset = low
                self._next[(topic, partition)] = offset
                new.append(KafkaTP(topic, partition, offset))     # explicit: nothing to look up
        if gap:
            # Changes were deleted by retention before the filters applied them: a key may be missing.
            # Every filter is dropped (readers ask the database) and rebuilt from a key scan.
            log.error("bloom %s: %s lost changes to retention; dropping and rebuilding every filter",
                      self.region, sorted(set(gap)))
            for table in self.store.tables():
                with self._lock:
                    self.store.drop(table)
                    self._refresh_live(table)
                self._ensure_filter(table)
        if new:
            self._consumer.incremental_assign(new)
            log.info("bloom %s: assigned %s", self.region, sorted((p.topic, p.partition, p.offset) for p in new))

    def poll_once(self, timeout_s: float = 0.1) -> int:
        """Consume and apply one batch; returns the records applied."""
        if time.monotonic() - self._lease_renewed > 1.0:
            if not self.store.hold_lease(self._holder, LEASE_MS):
                raise RuntimeError(f"lost region {self.region}'s maintainer lease to another `cdcsync bloom`")
            self._lease_renewed = time.monotonic()
        messages = self._consumer.consume(2000, timeout_s)
        records = []
        for msg in messages:
            if msg.error() is not None:
                log.warning("bloom consumer: %s", msg.error())
                continue
            records.append(SourceRecord.from_message(msg.topic(), msg.partition(), msg.offset(), msg.key(),
                                                     msg.value()))
        if records:
            self.apply(records)
        return len(records)

    def apply(self, records: list[SourceRecord]) -> None:
        adds: dict[str, list[str]] = {}
        deletes: dict[str, int] = {}
        positions: dict[tuple[str, int], int] = {}
        for record in records:
            positions[(record.topic, record.partition)] = record.offset + 1
            event = record.event
            if event is None:
                # Undecodable: the message key still names the row; adding it can only cost a false positive.
                found = self._key_of(record)
                if found is not None:
                    adds.setdefault(found[0], []).append(found[1])
                continue
            if not isinstance(event, ChangeEvent):
                continue        # DDL, truncate (keys stay: a truncate only makes false positives)
            table = f"{event.db}.{event.table}"
            keys = added_keys(event)
            if event.op is Op.DELETE or (event.op is Op.UPDATE and keys):   # the old key is stale now
                deletes[table] = deletes.get(table, 0) + 1
            if keys:
                adds.setdefault(table, []).extend(keys)
        with self._lock:
            for table in adds.keys() | deletes.keys():
                self._ensure_filter(table)
            self.store.apply(self._live, adds, deletes, positions, self.config.lookup.negative_ttl_s)
        self._next.update(positions)

    def _key_of(self, record: SourceRecord) -> tuple[str, str] | None:
        """(table, key text) from a message's topic and key: `<prefix>.<region>.<db>.<table>` with key
        `<pk json>`, or (per-region topics) key `<db>.<table>:<pk json>`."""
        if not record.key:
            return None
        raw = record.key.decode(errors="replace")
        if self.config.topic_mode == "per_region":
            table, sep, key = raw.partition(":")
            return (table, key) if sep and table.count(".") == 1 else None
        parts = record.topic.split(".")
        return (f"{parts[-2]}.{parts[-1]}", raw) if len(parts) >= 4 else None

    # -- the freshness proof ----------------------------------------------------------------------
    def prove(self) -> bool:
        """Publish one freshness proof (see the module docstring); False if it timed out."""
        w = self.store.now_us()
        head = _binlog_head(self._mysql())
        if head == self._proven_head:
            # Nothing was written since the last proof's head: what that proof covered still holds.
            self.store.set_fresh(w)
            self.proofs += 1
            return True
        deadline = time.monotonic() + self.proof_timeout_s
        while not self._producer_covers(head):
            if self._stop.is_set():
                return False
            if time.monotonic() > deadline:
                log.warning("bloom %s: no freshness proof: the producer's checkpoint (%s) has not reached the "
                            "binlog head %s:%d in %.0f s; readers ask the database for absent keys meanwhile",
                            self.region, self._checkpoints.path, head[0], head[1], self.proof_timeout_s)
                return False
            self.poll_once(0.02)
        self._discover()
        if self._next:
            try:
                ends = watermarks(self._kafka, [KafkaTP(t, p) for t, p in self._next], timeout_s=10)
            except RuntimeError as err:      # common.kafka.watermarks reports a KafkaException as one
                raise BrokerUnanswered(str(err)) from err
            # The wait for the partitions gets its own timeout: stuck or not is judged on a full one.
            started, waited_from = dict(self._next), time.monotonic()
            deadline = waited_from + self.proof_timeout_s
            while any(self._next[tp] < ends[tp][1] for tp in self._next):
                if self._stop.is_set():
                    return False
                if time.monotonic() > deadline:
                    self._proof_timed_out(ends, started, time.monotonic() - waited_from)
                    return False
                self.poll_once(0.05)
        self.store.set_fresh(w)
        self._proven_head = head
        self.proofs += 1
        self._fetch_watch.proven()
        return True

    def _proof_timed_out(self, ends: dict[tuple[str, int], tuple[int, int]], started: dict[tuple[str, int], int],
                         waited_s: float) -> None:
        """One line naming the partitions the proof waited on; recreate the consumer when some are stuck
        (`FetchStalled` propagates when that did not help)."""
        waiting = {tp: (self._next[tp], ends[tp][1]) for tp in self._next if self._next[tp] < ends[tp][1]}
        verdict = self._fetch_watch.judge(waiting, started, waited_s)
        log.warning("%s", verdict.line)
        if verdict.stuck:
            self._recreate_consumer()

    def _prove_through_outages(self) -> None:
        """`prove`, surviving a MySQL server that went away (restart, crash) or a broker that does not
        answer: no proof is published meanwhile, so readers ask the database for absent keys, and
        the stream positions stay with the bits. One line when it starts, one when proofs resume."""
        try:
            proven = self.prove()
        except Exception as err:
            if not (is_transient(err) or isinstance(err, (KafkaException, BrokerUnanswered))):
                raise
            self._drop_mysql()
            if self._unproven_since is None:
                self._unproven_since = time.monotonic()
                log.warning("bloom %s: cannot prove freshness (%s); retrying, readers ask the database for absent "
                            "keys meanwhile", self.region, err)
            return
        if proven and self._unproven_since is not None:
            log.info("bloom %s: reconnected; proving freshness again after %.1f s", self.region,
                     time.monotonic() - self._unproven_since)
            self._unproven_since = None

    def _drop_mysql(self) -> None:
        if self._conn is not None:
            try:
                self._conn.close()
            except Exception:  # noqa: BLE001 - already broken; a new connection is opened next time
                pass
            self._conn = None

    def _mysql(self) -> Any:
        if self._conn is None:
            self._conn = connect(self.settings.mysql, autocommit=True)
        return self._conn

    def _producer_covers(self, head: tuple[str, int]) -> bool:
        checkpoint = self._checkpoints.load()
        return checkpoint is not None and binlog_order(checkpoint.binlog_file, checkpoint.binlog_pos) >= \
            binlog_order(*head)

    # -- builds -----------------------------------------------------------------------------------
    def _selected_tables(self) -> list[str]:
        with ConsistentSnapshot(self.settings.mysql, self.config.meta_db) as snap:
            return [f"{t.db}.{t.table}" for t in snap.tables(self.settings.producer)]

    def _refresh_live(self, table: str) -> None:
        self._live[table] = self.store.live(table)

    def _ensure_filter(self, table: str) -> None:
        """Queue a build for a table that has no usable filter (none yet, or another format)."""
        if table not in self._live:
            self._refresh_live(table)
        if not self._live[table] and table not in self._pending_builds:
            self._pending_builds.add(table)
            self._builds.put((table, "missing"))

    def request_rebuild(self, table: str, reason: str) -> None:
        if table not in self._pending_builds:
            self._pending_builds.add(table)
            self._builds.put((table, reason))

    def _build_loop(self) -> None:
        while not self._stop.is_set():
            table, reason = self._builds.get()
            if not table:
                return
            try:
                # A leftover `building` generation of a crashed maintainer is dropped first.
                stale = self.client.hget(self.store.keys.table(table), "building")
                if stale:
                    with self._lock:
                        self.store.abandon_build(table, Generation(stale.decode(), None))  # type: ignore[arg-type]
                        self._refresh_live(table)
                build_table(self.config, self.region, self.store, table, self._lock,
                            lambda t=table: self._refresh_live(t))
                self.metrics.rebuilds.labels(self.region, reason).inc()
                self.builds_done += 1
            except Exception as err:  # reported; the table keeps its old filter (or none: readers use the DB)
                self.last_error = err
                log.error("bloom %s: building %s failed: %s", self.region, table, err)
            finally:
                self._pending_builds.discard(table)

    def check_filters(self) -> None:
        """Update the filter metrics, build the filters Redis lost, and queue the rebuilds the policy asks for."""
        self._restore_lost_filters()
        now = time.time()
        self.metrics.fresh_lag.labels(self.region).set(max(0.0, (self.store.now_us() - self.store.fresh_us()) / 1e6))
        for table in self.store.tables():
            stats = self.store.stats(table)
            if stats is None:
                continue
            labels = (self.region, table)
            observed = stats.observed_fp_rate
            self.metrics.fp_observed.labels(*labels).set(observed if observed is not None else 0.0)
            self.metrics.fp_configured.labels(*labels).set(self.config.lookup.fp_rate)
            self.metrics.keys.labels(*labels).set(stats.keys)
            self.metrics.capacity.labels(*labels).set(stats.sizing.capacity)
            self.metrics.bytes.labels(*labels).set(stats.bitmap_bytes)
            self.metrics.age.labels(*labels).set(max(0.0, now - stats.built_at_ms / 1000))
            self.metrics.stale.labels(*labels).set(stats.deleted / stats.keys if stats.keys else 0.0)
            reason = rebuild_reason(stats, self.config.lookup)
            if reason is not None and stats.building is None:
                log.info("bloom %s: rebuilding %s (%s)", self.region, table, reason)
                self.request_rebuild(table, reason)

    def _restore_lost_filters(self) -> None:
        """A Redis restarted without persistence (or flushed) comes back without the filters, and the
        table list `check_filters` walks is gone with them: look at every selected table instead.
        Until its new filter is current, readers ask the database (no filter, no absent answer)."""
        for table in self._selected:
            if table in self._pending_builds:
                continue
            with self._lock:
                self._refresh_live(table)
            if not self._live[table]:
                log.warning("bloom %s: %s has no filter in Redis (Redis restarted or flushed?); building it again",
                            self.region, table)
                self._ensure_filter(table)

    def wait_builds(self, timeout_s: float = 60.0) -> None:
        """Block until no build is queued or running (tests and the bench use it)."""
        deadline = time.monotonic() + timeout_s
        while self._pending_builds:
            if time.monotonic() > deadline:
                raise TimeoutError(f"builds still pending: {sorted(self._pending_builds)}")
            time.sleep(0.05)


def _binlog_head(conn: Any) -> tuple[str, int]:
    # SHOW, not SELECT: the proof loop must not count as database reads (`Com_select`).
    with conn.cursor() as cur:
        cur.execute("SHOW MASTER STATUS")
        row = cur.fetchone()
    if row is None:
        raise RuntimeError("binary logging is off (SHOW MASTER STATUS is empty)")
    return row[0], int(row[1])
