"""`cdcsync producer`: preflight, checkpoint, snapshot, then stream the region's binlog to Kafka.

Delivery: at least once, in commit order per key. The checkpoint only moves to transaction
boundaries the broker has fully acknowledged, so `kill -9` at any moment loses nothing; the
restart re-publishes what came after the checkpoint (consumers recognise the duplicates).
SIGTERM/SIGINT: finish the current transaction, flush, checkpoint, exit 0.
"""

from __future__ import annotations

import logging
import signal
import time
from collections.abc import Callable
from types import FrameType
from typing import Any

import pymysql
from pymysqlreplication.event import XidEvent

from common import log_context
from common.checkpoint_store import FileCheckpointStore
from common.clock_coverage import unclocked_message, unclocked_tables
from common.health_server import HealthState
from common.kafka import STREAMING_OUTAGE_S, TopicCreator
from common.mysql import connect, current_position
from common.table_catalog import json_columns
from producers import preflight, snapshot
from producers.binlog import stream as binlog_stream
from producers.capture import Capture, StreamInterrupted
from producers.checkpoint_writer import CheckpointWriter
from producers.fence import ProducerFence
from producers.metrics import ProducerMetrics
from producers.publisher import Publisher
from producers.snapshot_progress import SnapshotProgress
from schemas import key_fold
from schemas.config import MySQLConfig, PipelineConfig
from schemas.position import BinlogPosition
from schemas.topics import TopicNames

log = logging.getLogger(__name__)

# pymysql errors after which reopening the stream from the last sealed position is the right move.
_TRANSIENT = {2003, 2006, 2013, 2055}


class PositionGone(RuntimeError):
    """The checkpointed binlog position was purged from the server."""


class ProducerService:
    """Runs one region's producer on the calling (main) thread until stopped."""

    def __init__(self, config: PipelineConfig, region: str, *, metrics: ProducerMetrics | None = None,
                 resnapshot: bool = False, health: HealthState | None = None,
                 accept_unpaired: frozenset[str] = frozenset(), progress: SnapshotProgress | None = None) -> None:
        self.config = config
        self.progress = progress   # what the snapshot reports to (the command draws a bar)
        self.health = health or HealthState()
        self.region = config.region(region)
        self.metrics = metrics or ProducerMetrics()
        self.resnapshot = resnapshot
        self.accept_unpaired = accept_unpaired   # producers/clock_matching.py: transactions let through
        self._stop = False
        self._snapshotting = False
        settings = self.region.producer
        self.store = FileCheckpointStore(settings.checkpoint_dir, self.region.name, self.region.server_id)
        self.reader_server_id = settings.server_id or 1000 + self.region.server_id
        self.fence = ProducerFence(self.region.mysql.reader(), config.prefix, self.region.name)

    def request_stop(self, signum: int | None = None, frame: FrameType | None = None) -> None:
        if not self._stop:   # say at once that the signal was heard, and where the producer will stop
            name = signal.Signals(signum).name if signum is not None else "stop"
            log.warning("region %s: %s received: stopping at the next %s", self.region.name, name,
                        "snapshot chunk" if self._snapshotting else "transaction boundary")
        self._stop = True

    def install_signal_handlers(self) -> None:
        signal.signal(signal.SIGTERM, self.request_stop)
        signal.signal(signal.SIGINT, self.request_stop)

    # -------------------------------------------------------------------------------------
    def run(self) -> None:
        """Block until stopped; raise on any error that needs an operator (ProducerFenced when another
        producer runs for the region: producers/fence.py)."""
        self.fence.acquire()   # before anything is read or published: a second producer stops here
        try:
            self._run()
        finally:
            self.fence.release()

    def _should_stop(self) -> bool:
        self.fence.check()
        return self._stop

    def _run(self) -> None:
        mysql = self.region.mysql.reader()
        settings = self.region.producer
        preflight.check_source(mysql, schemas=fixed_schemas(settings.include))
        self._report_unclocked(self.region.mysql)
        preflight.check_auto_increment(self.config, self.region.name)
        kafka = self.config.kafka_for(self.region.name)
        publisher = Publisher(kafka, linger_ms=settings.linger_ms, max_in_flight=settings.max_in_flight_events,
                              on_error=lambda msg: log.warning("kafka: %s", msg))
        topics = TopicCreator(kafka)
        topics.ensure(TopicNames.of(self.config).schema(self.region.name))   # at start-up: fail at once
        topics.outage_s = STREAMING_OUTAGE_S      # from now on, a new table's topic waits for the broker
        if self.resnapshot:
            self.store.clear()
        checkpoint = self.store.load()
        if checkpoint is None and not self.resnapshot:
            self._warn_no_checkpoint(settings.snapshot)
        if checkpoint is not None:
            start = checkpoint.position
            if not checkpoint.epoch:   # written before epochs existed: give this history one, durably
                self.store.save(start)
            log.info("region %s: resuming from checkpoint %s (epoch %s)", self.region.name, start.describe(),
                     self.store.epoch)
        elif settings.snapshot == "initial":
            self._snapshotting = True
            try:
                start = snapshot.Snapshotter(self.config, self.region.name, publisher, topics, self.metrics,
                                             should_stop=lambda: self._stop, progress=self.progress).run()
            except snapshot.SnapshotStopped as err:
                publisher.flush()
                log.warning("region %s: %s; no checkpoint written: the next start takes the snapshot again from "
                            "the beginning", self.region.name, err)
                return
            finally:
                self._snapshotting = False
            publisher.flush()
            self.store.save(start)
            log.info("region %s: snapshot done at %s", self.region.name, start.describe())
        else:
            with connect(mysql) as conn:
                start = current_position(conn, mysql.flavor)
            self.store.save(start)
            log.info("region %s: no checkpoint, streaming from now (%s)", self.region.name, start.describe())
        self._stream(start, publisher, topics)

    def _warn_no_checkpoint(self, mode: str) -> None:
        """A deleted checkpoint directory would otherwise re-publish everything (or skip a gap) without a word."""
        then = ("taking a new snapshot of every replicated table" if mode == "initial"
                else "streaming from the binlog's current end (changes since the last run are skipped)")
        log.warning("region %s: no checkpoint found at %s: %s per producer.snapshot = %r; expected on the "
                    "region's first start, otherwise stop and restore the checkpoint", self.region.name,
                    self.store.path, then, mode)

    def _report_unclocked(self, mysql: MySQLConfig) -> None:
        """Name, before streaming, the replicated tables whose writes will carry no clock (producers/unclocked.py
        reports each such write as it comes)."""
        # As the config's user, not the reader: information_schema shows triggers only to a user
        # with the TRIGGER privilege, which `cdcsync init`'s user has.
        try:
            with connect(mysql) as conn:
                tables = unclocked_tables(self.config, self.region.name, conn)
        except pymysql.MySQLError as err:
            log.error("region %s: cannot check the clock triggers: %s", self.region.name, err)
            return
        if tables:
            log.error("region %s: %s", self.region.name, unclocked_message(tables))

    def _stream(self, start: BinlogPosition, publisher: Publisher, topics: TopicCreator) -> None:
        mysql = self.region.mysql.reader()
        settings = self.region.producer
        catalog = JsonCatalog(mysql)
        checkpointer = Checkpointer(self.store, publisher, self.metrics, self.region.name, start,
                                    settings.checkpoint_interval_ms / 1000, health=self.health)
        position = start
        log_context.set_position(start.describe())
        self.health.ready()
        attempt = 0
        while not self._stop:
            stream = binlog_stream.open_stream(mysql, position, reader_server_id=self.reader_server_id,
                                               heartbeat_s=settings.heartbeat_s)
            capture = Capture(config=self.config, region=self.region.name, publisher=publisher, topics=topics,
                              catalog=catalog, start=position, metrics=self.metrics,
                              accept_unpaired=self.accept_unpaired, epoch=self.store.epoch,
                              progress_every_s=settings.progress_log_s)
            try:
                if attempt:   # the last try lost the server: say so once it answers again
                    connect(mysql).close()
                    log.info("region %s: reconnected to MySQL %s:%s; streaming again from %s", self.region.name,
                             mysql.host, mysql.port, position.describe())
                    attempt = 0
                pump(stream, capture, checkpointer, self.metrics, self.region.name, self._should_stop)
            except StreamInterrupted as err:
                log.warning("region %s: %s; reopening at %s", self.region.name, err, capture.sealed.describe())
            except pymysql.err.OperationalError as err:
                code = err.args[0]
                if code in binlog_stream.POSITION_GONE_ERRORS:
                    raise PositionGone(
                        f"region {self.region.name}: the server no longer has binlog position "
                        f"{position.describe()} ({err.args[-1]}). Take a new snapshot: "
                        f"cdcsync producer --config FILE --region {self.region.name} --resnapshot") from None
                if code not in _TRANSIENT:
                    raise
                attempt += 1
                self.metrics.error(self.region.name, "connection")
                delay = min(30.0, 0.5 * 2 ** min(attempt, 6))
                log.warning("region %s: binlog connection lost (%s); retrying in %.1fs from %s",
                            self.region.name, err.args[-1], delay, capture.sealed.describe())
                time.sleep(delay)
            finally:
                stream.close()
                capture.abandon()   # an open transaction is read again from its start
            position = capture.sealed
        publisher.flush()
        final = checkpointer.save()
        checkpointer.close()
        log.info("region %s: stopped at %s", self.region.name, final.describe())


class Checkpointer:
    """Writes the acknowledged position to the store at most every `interval_s`, on the writer's
    thread (producers/checkpoint_writer.py): the capture thread only reads the acknowledgements."""

    def __init__(self, store: FileCheckpointStore, publisher: Publisher, metrics: ProducerMetrics, region: str,
                 saved: BinlogPosition, interval_s: float, health: HealthState | None = None) -> None:
        self.store, self.publisher, self.metrics, self.region = store, publisher, metrics, region
        self.health = health
        self.saved = saved            # durable in the file (set by the writer thread)
        self._submitted = saved       # handed to the writer
        self.interval_s = interval_s
        self._due = time.monotonic() + interval_s
        self.writer = CheckpointWriter(store, self._saved)

    def _saved(self, position: BinlogPosition) -> None:
        self.metrics.checkpointed(self.region, position.pos)
        self.saved = position

    def maybe(self) -> bool:
        """Cheap when not due; when due, serves delivery callbacks, hands any progress to the writer
        and returns True."""
        if time.monotonic() < self._due:
            return False
        self.publisher.poll(0)
        self._submit()
        if self.health is not None:
            self.health.beat()   # the loop turns: heartbeats keep it turning on an idle binlog
        self._due = time.monotonic() + self.interval_s
        return True

    def _submit(self) -> None:
        acked = self.publisher.tracker.acked_position()
        if acked is not None and acked != self._submitted:
            self.writer.submit(acked)
            self._submitted = acked
            log_context.set_position(acked.describe())

    def save(self) -> BinlogPosition:
        """Write the acknowledged position now and wait until it is durable (on stop)."""
        self._submit()
        self.writer.drain()
        return self.saved

    def close(self) -> None:
        self.writer.close()


def pump(stream: Any, capture: Capture, checkpointer: Checkpointer, metrics: ProducerMetrics, region: str,
         should_stop: Callable[[], bool]) -> None:
    """Feed the stream's events to the capture until `should_stop()` holds at a transaction boundary.

    Blocks on the stream; heartbeats wake it when the binlog is idle, so `should_stop` is seen
    within `producer.heartbeat_s`. The lag gauge holds the lag measured at the last XID read; it
    is published when the checkpointer runs and on return, not per transaction (the label lookup
    and the gauge's lock were a measurable share of a one-row transaction).
    """
    lag = metrics.lag_gauge(region)
    commit_lag: float | None = None
    try:
        for event in stream:
            capture.handle(event, stream)
            if isinstance(event, XidEvent):
                commit_lag = time.time() - event.timestamp
            if checkpointer.maybe() and commit_lag is not None:
                lag.set(max(0.0, commit_lag))
                commit_lag = None
            if should_stop() and not capture.in_transaction:
                return
    finally:
        if commit_lag is not None:
            lag.set(max(0.0, commit_lag))


class JsonCatalog:
    """Which columns of a table are JSON (MariaDB logs them as LONGTEXT). Cached per table until
    `invalidate()` (the capture calls it on every DDL)."""

    def __init__(self, mysql: MySQLConfig) -> None:
        self._mysql = mysql
        self._cache: dict[tuple[str, str], frozenset[str]] = {}

    def lookup(self, db: str, table: str) -> frozenset[str]:
        key = (db, table)
        if key not in self._cache:
            with connect(self._mysql) as conn:
                self._cache[key] = json_columns(conn, db, table)
        return self._cache[key]

    def invalidate(self) -> None:
        self._cache.clear()

    def load_weights(self, collations: dict[str, str]) -> None:
        """Read the weights of the key collations from the server (once per process: schemas/key_fold.py)."""
        if all(key_fold.loaded(c) for c in collations.values()):
            return
        with connect(self._mysql) as conn, conn.cursor() as cur:
            key_fold.ensure(cur, collations)


def fixed_schemas(include: tuple[str, ...]) -> list[str]:
    """Schemas named without wildcards in the include patterns (for the SELECT privilege check)."""
    names = {pattern.split(".", 1)[0] for pattern in include}
    return sorted(n for n in names if not any(ch in n for ch in "*?["))
