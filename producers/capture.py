"""Binlog events -> messages on Kafka, one transaction at a time.

Ordering: messages are produced in binlog order; the idempotent producer keeps that order per
partition, and the key keeps every change of a row on one partition.
Boundaries: a transaction is *sealed* when its last event has been produced (XID, COMMIT, or the
end of a DDL). Only sealed positions are checkpointed (after the broker acknowledges them), so a
restart never begins inside a transaction.
Loop prevention: a transaction whose first row event writes `<meta_db>.apply_marker` was applied by
cdcsync's database sink; its changes are published with `origin` taken from that marker row.
Clocks: the `<meta_db>.row_clocks` rows a transaction writes (clock triggers, or the database sink)
are paired with its row changes by (db, table, canonical key), exactly, and published as their
`vclock` (producers/clock_matching.py). A local transaction's messages are published as they pair
(`StreamingPairs`: bounded memory whatever its size, progress logged every `progress_every_s`); a
transaction the database sink applied (its clock rows follow its batch) or one named in
`accept_unpaired` is held until its commit and paired whole (`ClockRows`).
A local transaction whose changes and clock rows do not pair up stops the producer (CaptureError,
metric `cdcsync_producer_errors_total{kind="clock_pairing"}`), unless the operator named its GTID
in `accept_unpaired` after looking at it.
"""

from __future__ import annotations

import json
import logging
import re
import time
from typing import Any, Protocol

from pymysqlreplication.constants import FIELD_TYPE
from pymysqlreplication.event import (FormatDescriptionEvent, GtidEvent, MariadbGtidEvent, NotImplementedEvent,
                                      QueryEvent, RotateEvent, XAPrepareEvent, XidEvent)
from pymysqlreplication.row_event import (DeleteRowsEvent, PartialUpdateRowsEvent, RowsEvent, TableMapEvent,
                                          UpdateRowsEvent, WriteRowsEvent)

from common.ddl_classes import applied_by_cdcsync
from common.kafka import TopicCreator
from common.metadata_tables import APPLY_MARKER, PUBLISHED_DELETES, ROW_CLOCKS
from producers.binlog import table_map_cache
from producers.binlog.fast_rows import RowImages
from producers.binlog.stream import COMPRESSED_EVENT_TYPES
from producers.clock_matching import ClockPairingError, ClockRows, StreamingPairs
from producers.metrics import ProducerMetrics
from producers.publisher import Publisher, Txn
from producers.unclocked import UnclockedWatch
from schemas import key_fold, messages
from schemas.codec import canonical_pk_bytes, encode
from schemas.config import PipelineConfig, table_selected
from schemas.position import BinlogPosition, MariaGtidState
from schemas.topics import TopicNames

log = logging.getLogger(__name__)


_DDL = re.compile(
    r"^\s*(?:/\*.*?\*/\s*)*(CREATE|ALTER|DROP|RENAME|TRUNCATE)\s+(?:OR\s+REPLACE\s+)?(?:TEMPORARY\s+)?"
    r"(?:(TABLE|DATABASE|SCHEMA)\s+)?(?:IF\s+(?:NOT\s+)?EXISTS\s+)?"
    r"(`(?:[^`]|``)+`|[\w$]+)(?:\s*\.\s*(`(?:[^`]|``)+`|[\w$]+))?",
    re.IGNORECASE | re.DOTALL)


class CaptureError(RuntimeError):
    """The binlog holds something cdcsync must not silently pass over. The message names the fix."""


class StreamInterrupted(RuntimeError):
    """The library reconnected in the middle of a transaction; reopen from the last sealed position."""


def _ident(token: str | None) -> str | None:
    if token is None:
        return None
    return token[1:-1].replace("``", "`") if token.startswith("`") else token


def parse_ddl(statement: str, default_db: str) -> tuple[str, str, str | None] | None:
    """(verb, db, table or None) for table and database DDL, None for anything else."""
    match = _DDL.match(statement)
    if not match:
        return None
    verb, kind, first, second = match.groups()
    verb, kind = verb.upper(), (kind or "").upper()
    if kind in ("DATABASE", "SCHEMA"):
        return verb, _ident(first) or default_db, None
    if kind != "TABLE" and verb != "TRUNCATE":
        return None  # CREATE USER, DROP INDEX ..., ALTER EVENT, ...
    if second is not None:
        return verb, _ident(first) or default_db, _ident(second)
    return verb, default_db, _ident(first)


def key_columns(event: TableMapEvent) -> tuple[str, ...]:
    """Primary-key columns in key order, from the table map's optional metadata.

    The library's own `primary_key` lists them in column order, which would make the Kafka key
    of `PRIMARY KEY (b, a)` differ from the one every other reader computes.
    """
    meta = event.optional_metadata
    indexes = list(meta.simple_primary_key_list) or list(meta.primary_keys_with_prefix)
    return tuple(event.columns[i].name for i in indexes)


class JsonCatalog(Protocol):
    def lookup(self, db: str, table: str) -> frozenset[str]: ...

    def invalidate(self) -> None: ...

    def load_weights(self, collations: dict[str, str]) -> None: ...


class _Route:
    """What to do with the rows of one table map: cached per table id until the next DDL, and
    rebuilt when a table map with other columns arrives under the same id."""

    __slots__ = ("db", "table", "columns", "topic", "key_prefix", "images", "types", "pk_cols", "publish", "marker",
                 "clock", "counter", "fold", "deletes")

    def __init__(self, db: str, table: str, columns: list[Any]) -> None:
        self.db, self.table = db, table
        self.columns = columns  # the library's column list (shared by identical maps: table_map_cache)
        self.topic = ""
        self.key_prefix = b""
        self.images: RowImages | None = None  # wire values of its rows: fast path or library + TableEncoder
        self.types: dict[str, str] = {}
        self.pk_cols: tuple[str, ...] = ()
        self.publish = False
        self.marker = False
        self.clock = False
        self.deletes = False    # meta_db.published_deletes: deletes the database sink decided
        self.counter: Any = None
        self.fold: dict[str, str] = {}  # key column -> collation, for text key columns whose collation folds


class Capture:
    """Consumes library events in order and produces messages. Owned by one thread."""

    def __init__(self, *, config: PipelineConfig, region: str, publisher: Publisher, topics: TopicCreator,
                 catalog: "JsonCatalog", start: BinlogPosition,
                 metrics: ProducerMetrics, accept_unpaired: frozenset[str] = frozenset(),
                 epoch: str | None = None, pairing_window: int = 10_000, progress_every_s: float = 5.0) -> None:
        self._config = config
        self._pairing_window = pairing_window      # messages a local transaction may hold unpaired
        self._progress_every_s = progress_every_s  # a long transaction logs its progress this often
        self._epoch = epoch
        self._region = config.region(region)
        self._names = TopicNames.of(config)
        self._publisher = publisher
        self._topics = topics
        self._catalog = catalog
        self._metrics = metrics
        self._mariadb = self._region.mysql.flavor == "mariadb"
        self._gtid_state = MariaGtidState(start.gtid_state) if self._mariadb else None
        self._routes: dict[int, _Route] = {}
        self._table_maps: dict[int, TableMapEvent] = {}  # the last map per table id; read when a route is built
        self._headers: dict[tuple[str, str], list[tuple[str, bytes]]] = {}
        self._warned_no_pk: set[tuple[str, str]] = set()
        self._selection: dict[tuple[str, str], bool] = {}
        self._accept_unpaired = accept_unpaired   # transaction ids whose clock rows may not pair up
        self._unclocked = UnclockedWatch(config, region, metrics)
        self.sealed = start
        self.file = start.file
        self._connects = 0   # fake rotate events seen: one per (re)connection of the binlog stream
        self._reset_txn()

    def _selected(self, db: str, table: str) -> bool:
        """`table_selected` for this producer, remembered per table (asked for every clock row;
        the include and exclude globs do not change while the capture runs)."""
        key = (db, table)
        selected = self._selection.get(key)
        if selected is None:
            selected = self._selection[key] = table_selected(self._region.producer, db, table)
        return selected

    # -- transaction state -------------------------------------------------------------------
    def _reset_txn(self) -> None:
        self._in_txn = False
        self._gtid: str | None = None
        self._info: messages.TxnInfo | None = None
        self._ack: Txn | None = None
        # The held transaction's messages, sent at its commit once its clock rows are known.
        self._pending: list[tuple[str, bytes, dict[str, Any], list[tuple[str, bytes]]]] = []
        self._clock_rows = ClockRows()
        self._stream: StreamingPairs | None = None   # a local transaction: published as it pairs
        self._sent = 0
        self._started = self._progress_at = 0.0
        self._last_route: _Route | None = None   # the last table with row changes, for the progress log
        self._applied = False   # the transaction was written by cdcsync's database sink (apply_marker)
        self._decided: list[dict[str, Any]] = []   # published_deletes bodies, published at the commit

    @property
    def in_transaction(self) -> bool:
        return self._in_txn

    def abandon(self) -> None:
        """The stream is closed inside a transaction: the next stream reads it again from its start."""
        if self._ack is not None:
            self._publisher.tracker.abandon(self._ack)
        self._reset_txn()

    def _begin(self, event: Any, gtid: str | None, pos: int) -> None:
        self._in_txn = True
        self._gtid = gtid
        txn_id = gtid or f"{self.file}:{pos}"
        self._info = messages.TxnInfo(self._region.name, self._region.name, event.packet.server_id, gtid, txn_id,
                                      event.timestamp * 1_000_000, self._epoch)
        self._ack = self._publisher.tracker.open()
        if txn_id not in self._accept_unpaired:
            self._stream = StreamingPairs(self._pairing_window, self._selected)
        self._started = time.monotonic()
        self._progress_at = self._started + self._progress_every_s

    def _ensure_txn(self, event: Any, pos: int) -> None:
        if not self._in_txn:  # MySQL without GTIDs, or a BEGIN we did not see
            self._begin(event, None, pos)

    def _emit(self, topic: str, key: bytes, message: dict[str, Any], headers: list[tuple[str, bytes]]) -> None:
        if self._stream is not None:
            self._stream.add((topic, key, message, headers))
        else:
            self._pending.append((topic, key, message, headers))

    def _publish(self, items: list[Any]) -> None:
        """Produce decided messages (topic, key, message, headers, ...) in order."""
        if not items:
            return
        self._unclocked.check(item[2] for item in items)
        send = self._send
        for item in items:
            send(item[0], item[1], item[2], item[3])
        self._sent += len(items)

    def _stream_step(self, route: _Route) -> None:
        """After a rows event of a streamed transaction: pair, publish what is decided, log progress."""
        stream = self._stream
        assert stream is not None
        try:
            if self._clock_rows:
                stream.clock_rows(self._clock_rows)
            self._publish(stream.release())
        except ClockPairingError as err:
            self._refuse_pairing(err)
        now = time.monotonic()
        if now >= self._progress_at:
            self._progress_at = now + self._progress_every_s
            info = self._info
            assert info is not None
            log.info("transaction %s open for %.0f s: %d row changes so far (now %s.%s), %d published, %d awaiting "
                     "the broker", info.txn_id, now - self._started, info.index, route.db, route.table, self._sent,
                     self._publisher.tracker.in_flight)

    def _send(self, topic: str, key: bytes, message: dict[str, Any], headers: list[tuple[str, bytes]],
              partition: int | None = None) -> None:
        if partition is None:
            self._publisher.produce(self._ack, topic, key, encode(message), headers)
        else:
            self._publisher.produce(self._ack, topic, key, encode(message), headers, partition=partition)

    def _headers_for(self, kind: str, origin: str) -> list[tuple[str, bytes]]:
        # One list per (kind, origin), shared by every message: librdkafka copies headers on produce.
        key = (kind, origin)
        hdrs = self._headers.get(key)
        if hdrs is None:
            hdrs = self._headers[key] = messages.headers(kind, origin)
        return hdrs

    def _seal(self, stream: Any) -> None:
        pending = self._pending
        if self._stream is not None:
            try:
                if self._clock_rows:
                    self._stream.clock_rows(self._clock_rows)
                self._publish(self._stream.seal())
            except ClockPairingError as err:
                self._refuse_pairing(err)
            if self._info is not None and time.monotonic() - self._started >= self._progress_every_s:
                log.info("transaction %s committed: %d row changes published in %.0f s", self._info.txn_id,
                         self._sent, time.monotonic() - self._started)
        elif self._clock_rows:   # also without messages: clock rows alone must pair with nothing to be let through
            self._attach_clocks([message for _, _, message, _ in pending])
        if self._decided:   # after the pairing: each carries its own clock
            self._publish_decided(stream)
        if pending:
            self._unclocked.check(message for _, _, message, _ in pending)
            pending[-1][2]["txn_last"] = True
            send = self._send
            for item in pending:
                send(*item)
        if self._gtid_state is not None and self._gtid is not None:
            self._gtid_state.update(self._gtid)
        gtid_state = str(self._gtid_state) if self._gtid_state is not None else self.sealed.gtid_state
        position = BinlogPosition(gtid_state, stream.log_file, stream.log_pos)
        if self._ack is None:
            self._ack = self._publisher.tracker.open()
        self._publisher.tracker.seal(self._ack, position)
        if self._mariadb:
            stream.auto_position = gtid_state  # the library's own reconnects resume here
        self.sealed = position
        self._reset_txn()

    def _attach_clocks(self, messages_: list[dict[str, Any]]) -> None:
        published = self._selected
        try:
            self._clock_rows.attach(messages_, applied=self._applied, published=published)
            return
        except ClockPairingError as err:
            txn = self._info.txn_id if self._info is not None else "?"
            if txn not in self._accept_unpaired:
                self._refuse_pairing(err)
            log.warning("transaction %s: %s; accepted by --accept-unpaired: its unpaired changes are published "
                        "without a clock", txn, err)
        try:
            self._clock_rows.attach(messages_, applied=True, published=published)
        except ClockPairingError:   # a tombstone flag that does not match: no clock for the transaction
            for message in messages_:
                message["vclock"] = message["heads"] = None

    def _refuse_pairing(self, err: ClockPairingError) -> None:
        txn = self._info.txn_id if self._info is not None else "?"
        self._metrics.error(self._region.name, "clock_pairing")
        raise CaptureError(
            f"transaction {txn} (binlog file {self.file}): {err}. Stopped: no change is published with a wrong "
            f"or missing clock. Fix the cause, then restart the producer with `--accept-unpaired {txn}` to "
            f"publish this transaction's unpaired changes without a clock, and run `cdcsync verify`") from None

    # -- events ------------------------------------------------------------------------------
    def handle(self, event: Any, stream: Any) -> None:
        """Process one library event. Raises CaptureError or StreamInterrupted."""
        if isinstance(event, RowsEvent):
            self._rows(event, stream)
        elif isinstance(event, XidEvent):
            self._seal(stream)
        elif isinstance(event, TableMapEvent):
            self._table_maps[event.table_id] = event
        elif isinstance(event, (MariadbGtidEvent, GtidEvent)):
            self._begin(event, event.gtid, stream.log_pos)
        elif isinstance(event, QueryEvent):
            self._query(event, stream)
        elif isinstance(event, (RotateEvent, FormatDescriptionEvent)):
            if self._in_txn and self._info is not None and self._info.index > 0:
                raise StreamInterrupted("the binlog connection restarted inside a transaction")
            if isinstance(event, RotateEvent):
                self.file = event.next_binlog
                if event.timestamp == 0:   # the server's "fake" rotate opens every dump connection
                    self._connects += 1
                    if self._connects > 1:   # the library reconnected on its own after a lost connection
                        mysql = self._region.mysql
                        log.info("region %s: reconnected to MySQL %s:%s; binlog streaming again from %s",
                                 self._region.name, mysql.host, mysql.port, self.sealed.describe())
        elif isinstance(event, NotImplementedEvent):
            name = COMPRESSED_EVENT_TYPES.get(event.event_type)
            if name:
                raise CaptureError(f"compressed binlog event {name} at {stream.log_file}:{stream.log_pos}: "
                                   f"python-mysql-replication cannot decode it and its rows would be lost. "
                                   f"Turn compression off on the server and re-snapshot.")
        elif isinstance(event, XAPrepareEvent):
            raise CaptureError(f"XA transaction at {stream.log_file}:{stream.log_pos} is not supported: "
                               f"its rows would be published before the XA COMMIT decides their fate")

    def _query(self, event: QueryEvent, stream: Any) -> None:
        query = event.query.strip() if isinstance(event.query, str) else event.query.decode().strip()
        upper = query[:24].upper()
        if upper.startswith(("BEGIN", "XA START")):
            self._ensure_txn(event, stream.log_pos)
            return
        if upper.startswith(("SAVEPOINT", "ROLLBACK TO")):
            return
        if upper.startswith(("COMMIT", "ROLLBACK")):
            self._seal(stream)
            return
        # Anything else in a row-based binlog is DDL or an administrative statement: its own transaction.
        self._ensure_txn(event, stream.log_pos)
        schema = event.schema.decode() if isinstance(event.schema, bytes) else (event.schema or "")
        parsed = parse_ddl(query, schema)
        if parsed is not None:
            self._ddl(parsed, query, stream)
        self._seal(stream)

    def _ddl(self, parsed: tuple[str, str, str | None], query: str, stream: Any) -> None:
        verb, db, table = parsed
        self._routes.clear()  # table ids and column lists may change after any DDL
        self._catalog.invalidate()
        table_map_cache.invalidate(stream)
        if db == self._config.meta_db:
            return
        producer = self._region.producer
        if table is not None and not table_selected(producer, db, table):
            return
        if table is None and not any(table_selected(producer, db, "x") or p.startswith(f"{db}.")
                                     for p in producer.include):
            return
        topic = self._names.schema(self._region.name)
        self._topics.ensure(topic)
        info = self._info
        assert info is not None
        key = f"{db}.{table or ''}".encode()
        if verb == "TRUNCATE" and table is not None:
            message = messages.change(info, stream.log_file, stream.log_pos, db, table, "truncate", {}, None, None, {})
            self._emit(topic, key, message, self._headers_for("change", info.origin))
            # Published for the record, never applied: TRUNCATE writes no row events and fires no
            # trigger, so the other regions keep the rows and this one keeps their live clocks.
            self._metrics.error(self._region.name, "truncate")
            log.error("region %s: TRUNCATE of %s.%s at %s:%d is not replicated: the other regions keep its rows, and "
                      "this region keeps their clocks, so replayed or older versions stay skipped here. Use DELETE "
                      "FROM %s.%s instead; to repair, run that DELETE in one region (its deletes reach every region) "
                      "or write the rows again (docs/clocks.md, TRUNCATE)", self._region.name, db, table,
                      stream.log_file, stream.log_pos, db, table)
        else:
            message = messages.ddl(info, stream.log_file, stream.log_pos, db, table, query)
            self._emit(topic, key, message, self._headers_for("ddl", info.origin))
            if table is not None and not applied_by_cdcsync(query):
                owner = self._config.table(db, table).schema_owner
                if owner == self._region.name and verb == "ALTER":
                    self._owner_markers(db, table, query, stream)
                elif owner is not None and owner != self._region.name:
                    self._outside_owner(db, table, owner, stream)
        self._metrics.ddl(self._region.name)

    def _owner_markers(self, db: str, table: str, query: str, stream: Any) -> None:
        """The schema owner's ALTER, as a marker on every partition of the table's change topic: each
        partition's row changes before it were written under the old schema, those after it under
        the new one, so the other regions' sinks apply it once every partition reached it
        (consumers/db/ddl_apply.py). Sent at once, in this transaction: the checkpoint passes the DDL
        only once the broker has every marker."""
        topic = self._names.changes(self._region.name, db, table)
        self._topics.ensure(topic)
        count = self._topics.partitions(topic)
        info = self._info
        assert info is not None
        headers = self._headers_for("ddl", info.origin)
        for partition in range(count):
            self._send(topic, f"{db}.{table}".encode(),
                       messages.ddl(info, stream.log_file, stream.log_pos, db, table, query, partitions=count),
                       headers, partition)
        log.info("region %s owns the schema of %s.%s: its ALTER at %s:%d is marked on the %d partitions of %s for "
                 "the other regions to apply", self._region.name, db, table, stream.log_file, stream.log_pos, count,
                 topic)

    def _outside_owner(self, db: str, table: str, owner: str, stream: Any) -> None:
        """DDL of a table whose schema another region owns: said loudly, never replicated."""
        self._metrics.ddl_outside_owner(self._region.name, f"{db}.{table}")
        log.warning("region %s: DDL of %s.%s at %s:%d is not replicated: its schema_owner is %s. Run it in %s; "
                    "until every region has the same schema, `cdcsync schema diff` shows the difference and the "
                    "sinks whose target cannot hold an event wait for it (docs/schema-changes.md)",
                    self._region.name, db, table, stream.log_file, stream.log_pos, owner, owner)

    # -- rows --------------------------------------------------------------------------------
    def _route(self, event: RowsEvent) -> _Route:
        columns = event.columns
        route = self._routes.get(event.table_id)
        if route is not None:
            if route.columns is columns:  # the same parsed map: table_map_cache hands out one per distinct map
                return route
            if route.db == event.schema and route.table == event.table and route.columns == columns:
                route.columns = columns  # an equal map parsed anew (after a rotate)
                return route
        route = _Route(event.schema, event.table, columns)
        if event.schema == self._config.meta_db:
            route.marker = event.table == APPLY_MARKER
            route.clock = event.table == ROW_CLOCKS
            route.deletes = event.table == PUBLISHED_DELETES
            if route.clock:   # one clock row per local write: decoded by the fast path too (no JSON columns)
                route.images = RowImages(columns)
        elif table_selected(self._region.producer, event.schema, event.table):
            table_map = self._table_maps.get(event.table_id)
            pk_cols = key_columns(table_map) if table_map is not None else ()
            keyed = bool(pk_cols)   # a real primary key (not all columns of a keyless table)
            if not pk_cols:
                pk_cols = self._no_pk_policy(event)
            if pk_cols:
                route.publish = True
                route.pk_cols = pk_cols
                route.images = RowImages(columns, self._json_columns(event.schema, event.table, columns))
                route.types = route.images.encoder.types
                route.fold = self._key_fold(route, columns) if keyed else {}
                if route.images.decode is None:
                    log.info("table %s.%s: rows decoded by the library (%s)", event.schema, event.table,
                             route.images.reason)
                route.topic = self._names.changes(self._region.name, event.schema, event.table)
                if self._names.mode == "per_region":
                    route.key_prefix = f"{event.schema}.{event.table}:".encode()
                route.counter = self._metrics.events_counter(self._region.name, event.schema, event.table)
                self._topics.ensure(route.topic)
        self._routes[event.table_id] = route
        return route

    def _json_columns(self, db: str, table: str, columns: list[Any]) -> frozenset[str]:
        """The table's JSON columns. Only a BLOB-type column (TEXT, LONGTEXT: MariaDB's JSON) is read
        differently when it is JSON (value_encoding.describe; MySQL's JSON has a type of its own), so a
        table without one needs no catalog query (a connection to the server, for every new table)."""
        if not any(column.type == FIELD_TYPE.BLOB for column in columns):
            return frozenset()
        return self._catalog.lookup(db, table)

    def _key_fold(self, route: _Route, columns: list[Any]) -> dict[str, str]:
        """The text key columns whose collation folds (schemas/key_fold.py): their changes are keyed
        by the fold, so two spellings of one key share one Kafka key and partition."""
        collations = {}
        for column in columns:
            if column.name in route.pk_cols and route.types.get(column.name, "").startswith(("char", "varchar")):
                collations[column.name] = getattr(column, "collation_name", None)
        try:
            fold = key_fold.folding(collations, f"{route.db}.{route.table}")
        except key_fold.UnsupportedCollation as err:
            raise CaptureError(str(err)) from None
        if fold:
            self._catalog.load_weights(fold)
        return fold

    def _no_pk_policy(self, event: RowsEvent) -> tuple[str, ...]:
        name = (event.schema, event.table)
        keyed = self._region.producer.no_primary_key == "all_columns"
        if name not in self._warned_no_pk:
            self._warned_no_pk.add(name)
            action = "keying it by all columns" if keyed else "skipping it"
            log.warning("table %s.%s has no primary key: %s (producer.no_primary_key = %r)", event.schema,
                        event.table, action, self._region.producer.no_primary_key)
        return tuple(c.name for c in event.columns) if keyed else ()

    def _rows(self, event: RowsEvent, stream: Any) -> None:
        route = self._route(event)
        if route.marker:
            self._marker(event, stream)
            return
        if route.clock:
            if not isinstance(event, DeleteRowsEvent):   # purged tombstones are nobody's version
                self._ensure_txn(event, stream.log_pos)
                self._clock_rows.add_images(route.images.images(event),  # type: ignore[union-attr]
                                            len(self._pending))
                if self._stream is not None:
                    self._stream_step(self._last_route or route)
            return
        if route.deletes:
            if not isinstance(event, DeleteRowsEvent):
                self._ensure_txn(event, stream.log_pos)
                for row in event.rows:
                    image = row.get("after_values") or row.get("values") or {}
                    body = image["body"]
                    self._decided.append(json.loads(body.decode() if isinstance(body, bytes) else body))
            return
        if not route.publish:
            return
        if isinstance(event, PartialUpdateRowsEvent):
            raise CaptureError(f"partial JSON update on {route.db}.{route.table}: set binlog_row_value_options='' "
                               f"on the server so updates carry full row images")
        self._ensure_txn(event, stream.log_pos)
        info = self._info
        assert info is not None
        if isinstance(event, WriteRowsEvent):
            op = "insert"
        elif isinstance(event, UpdateRowsEvent):
            op = "update"
        elif isinstance(event, DeleteRowsEvent):
            op = "delete"
        else:
            return
        # The fast decoder when it covers the table and this event, else the library + TableEncoder.
        images = route.images.images(event)  # type: ignore[union-attr]
        self._publish_rows(route, info, op, images, stream.log_file, stream.log_pos)
        route.counter.inc(len(images))
        if self._stream is not None:
            self._last_route = route
            self._stream_step(route)

    def _publish_rows(self, route: _Route, info: messages.TxnInfo, op: str, images: list[Any], file: str,
                      pos: int) -> None:
        """Emit one change per image (an update image is a (before, after) pair), in order.

        `_emit` and, for a key without folded text, `messages.message_key` are inlined: this loop
        runs once per row.
        """
        types, pk_cols, topic, prefix, db, table = (route.types, route.pk_cols, route.topic, route.key_prefix,
                                                    route.db, route.table)
        hdrs = self._headers_for("change", info.origin)
        change, message_key, pk_bytes = messages.change, messages.message_key, canonical_pk_bytes
        emit = self._stream.add if self._stream is not None else self._pending.append
        fold = route.fold
        for image in images:
            if op == "update":
                before, after = image
                old_pk = [before[c] for c in pk_cols]
                pk_values = [after[c] for c in pk_cols]
                if old_pk != pk_values and not (fold and _same_key(fold, pk_cols, old_pk, pk_values)):
                    # A key change is a delete of the old key and an insert of the new one, each on its
                    # own key's partition, so per-key order holds for both keys.
                    message = change(info, file, pos, db, table, "delete", dict(zip(pk_cols, old_pk)), before,
                                     None, types)
                    # The old key is named by its fold too (found by the checker's pkchange shape).
                    emit((topic, message_key(message, fold, prefix) if fold else prefix + pk_bytes(old_pk),
                          message, hdrs))
                    message = change(info, file, pos, db, table, "insert", dict(zip(pk_cols, pk_values)), None,
                                     after, types)
                else:
                    message = change(info, file, pos, db, table, "update", dict(zip(pk_cols, pk_values)), before,
                                     after, types)
            else:
                pk_values = [image[c] for c in pk_cols]
                if op == "insert":
                    message = change(info, file, pos, db, table, op, dict(zip(pk_cols, pk_values)), None, image, types)
                else:
                    message = change(info, file, pos, db, table, op, dict(zip(pk_cols, pk_values)), image, None, types)
            # Named by the fold: one key whatever its spelling (an update keeps its new spelling).
            emit((topic, message_key(message, fold, prefix) if fold else prefix + pk_bytes(pk_values), message, hdrs))

    def _publish_decided(self, stream: Any) -> None:
        """The deletes the database sink decided in this transaction (metadata_tables.PUBLISHED_DELETES):
        each a delete of THIS region with the clock the sink gave it (its tombstone's), whatever
        origin the apply marker named, since the decision is this region's."""
        info = self._info
        assert info is not None
        own = messages.TxnInfo(self._region.name, self._region.name, info.server_id, info.gtid, info.txn_id,
                               info.ts_us, info.epoch)
        own.index = info.index
        hdrs = self._headers_for("change", own.origin)
        for body in self._decided:
            db, table = body["db"], body["table"]
            if not table_selected(self._region.producer, db, table):
                continue
            topic = self._names.changes(self._region.name, db, table)
            self._topics.ensure(topic)
            message = messages.change(own, stream.log_file, stream.log_pos, db, table, "delete", body["pk"],
                                      body["before"], None, body["types"])
            message["vclock"] = body["vclock"]
            prefix = f"{db}.{table}:".encode() if self._names.mode == "per_region" else b""
            values = list(body["pk"].values())
            if body.get("pk_fold"):
                message["pk_fold"] = body["pk_fold"]
                values = key_fold.key_values(body["pk"], body["pk_fold"])
            self._pending.append((topic, messages.row_key(values, prefix), message, hdrs))
        info.index = own.index

    def _marker(self, event: RowsEvent, stream: Any) -> None:
        self._ensure_txn(event, stream.log_pos)
        info = self._info
        assert info is not None
        if info.index > 0:
            raise CaptureError(f"{self._config.meta_db}.{APPLY_MARKER} was written after row changes in "
                               f"transaction {info.txn_id}; the applier must write it first")
        row = event.rows[-1]
        image = row.get("after_values") or row.get("values") or {}
        origin = image.get("origin")
        if isinstance(origin, bytes):
            origin = origin.decode()
        if not origin or origin not in self._config.regions:
            raise CaptureError(f"apply marker in transaction {info.txn_id} names unknown origin {origin!r}")
        info.origin = origin
        self._applied = True
        self._stream = None   # the sink writes its batch's clock rows after the batch: held and paired whole


def _same_key(fold: dict[str, str], pk_cols: tuple[str, ...], old: list[Any], new: list[Any]) -> bool:
    """Whether two key values are one key for the server (text compared by its collation)."""
    a, b = dict(zip(pk_cols, old)), dict(zip(pk_cols, new))
    return key_fold.key_values(a, key_fold.fold_pk(a, fold)) == key_fold.key_values(b, key_fold.fold_pk(b, fold))
