"""The database sink waits for a schema instead of dead-lettering the stream (docs/schema-changes.md).

An event whose target table cannot hold it because the regions' schemas differ is not poison: the
target is behind (eu ran `ALTER TABLE users ADD COLUMN phone`, us has not yet). With
`sink.schema_mismatch = "wait"` (the default) the sink holds that event's partition from that
event on (consumers/partition_holds.py) and goes on with every other partition:

- Detected before the apply: an upsert naming a column the target lacks (`missing_columns`, from
  the target's column list, cached and re-read before it concludes a column is missing); or at
  the apply: MariaDB error 1054 (unknown column), 1406 (data too long) or 1264 (out of range) for
  that event (the sink raises `SchemaMismatch` and applies the batch again without the held tail).
- Recorded: a `<meta_db>.schema_waits` row per held partition (table, source region, offset,
  reason, since), the gauge `cdcsync_sink_waiting_for_schema{table}` (held partitions), a warning
  in the log; `cdcsync status` shows "waiting for schema".
- Rechecked every `sink.schema_recheck_ms`: the target's columns are read again; a hold for
  missing columns goes when they all exist, one for a data error when the target's column types
  changed since the hold (if the target still cannot hold the event, it is held again at once).
  On release the wait rows go, and the table's clock triggers are regenerated when they are stale
  (`on_resume`, consumers/db/trigger_refresh.py): the target's own ALTER changed its columns.

The same holds carry a schema owner's DDL (consumers/db/ddl_apply.py): each partition of the
owner's table topic is held at the DDL's marker until every partition is (counted over the
group's members in `schema_waits`); then the DDL is applied once and every partition released.

A column the target has and the event lacks (the target is ahead) is no mismatch: the upsert names
only the event's columns, so a new row gets the column's DEFAULT and an updated row keeps its value.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

import pymysql

from common import metadata_tables
from common.retry import is_transient
from consumers.db.ddl_apply import DdlApplier, ddl_id
from consumers.metrics import SinkMetrics
from consumers.partition_holds import Hold, PartitionHolds
from consumers.records import SourceRecord, TopicPartition, source_region
from schemas.events import ChangeEvent, DdlEvent, Op

log = logging.getLogger(__name__)

# MariaDB errors that mean "this target's schema cannot hold this event", and how status names them.
SCHEMA_ERRORS = {1054: "unknown column", 1406: "data too long", 1264: "out of range"}
REREAD_S = 1.0     # a table's columns are re-read at most this often when a column looks missing


class SchemaMismatch(Exception):
    """Raised out of an apply for a record the target cannot hold; the sink holds its partition."""

    def __init__(self, record: SourceRecord, reason: str) -> None:
        super().__init__(reason)
        self.record, self.reason = record, reason


class TargetColumns:
    """Column name -> COLUMN_TYPE of the target's tables, cached until re-read."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._known: dict[tuple[str, str], tuple[dict[str, str], float]] = {}

    def cached(self, db: str, table: str) -> dict[str, str] | None:
        known = self._known.get((db, table))
        return None if known is None else known[0]

    def age_s(self, db: str, table: str) -> float:
        known = self._known.get((db, table))
        return float("inf") if known is None else self._clock() - known[1]

    def get(self, cur: pymysql.cursors.Cursor, db: str, table: str, *, fresh: bool = False) -> dict[str, str]:
        known = self._known.get((db, table))
        if known is not None and not fresh:
            return known[0]
        cur.execute("SELECT COLUMN_NAME, COLUMN_TYPE FROM information_schema.COLUMNS "
                    "WHERE TABLE_SCHEMA = %s AND TABLE_NAME = %s", (db, table))
        columns = {name: column_type for name, column_type in cur.fetchall()}
        self._known[(db, table)] = (columns, self._clock())
        return columns


class SchemaWaits:
    """Owned by the database sink's thread. `connection()` returns the sink's connection (outside
    any transaction when these methods run); `on_resume(db, table)` runs after a table resumes."""

    def __init__(self, *, region: str, meta_db: str, prefix: str, recheck_ms: int, metrics: SinkMetrics,
                 connection: Callable[[], pymysql.Connection],
                 on_resume: Callable[[str, str], None] | None = None, ddl: DdlApplier | None = None) -> None:
        self.region, self.meta_db, self.prefix = region, meta_db, prefix
        self.metrics = metrics
        self._connection = connection
        self._on_resume = on_resume
        self.columns = TargetColumns()
        self.holds = PartitionHolds(recheck_ms)
        self.holds.check = self._check
        self.holds.on_forget = self._forgotten
        self._why: dict[TopicPartition, tuple[frozenset[str], dict[str, str]]] = {}   # missing columns, shape
        self.ddl = ddl
        self._markers: dict[TopicPartition, DdlEvent] = {}     # partitions held at a schema owner's DDL
        self._refused: set[str] = set()                         # DDL ids reported as refused

    def marker_applied(self, event: DdlEvent) -> bool:
        """Whether the owner's DDL this marker stands for was applied here already."""
        assert self.ddl is not None
        conn = self._connection()
        with conn.cursor() as cur:
            done = self.ddl.applied(cur, ddl_id(event))
        conn.rollback()
        return done

    def wait_ddl(self, record: SourceRecord) -> None:
        """Hold the marker's partition at the marker until every partition of its topic reached it."""
        event: DdlEvent = record.event  # type: ignore[assignment]
        reason = f"ddl {ddl_id(event)}: the schema owner's ALTER, waiting for every partition to reach it"
        hold = self.holds.hold(record.tp, record.offset, f"{event.db}.{event.table}", reason)
        if hold is None:
            return
        self._markers[record.tp] = event
        self._write(record, hold.table, reason, hold.since_us)
        self.holds.due_now()

    def _write(self, record: SourceRecord, table: str, reason: str, since_us: int) -> None:
        conn = self._connection()
        with conn.cursor() as cur:
            conn.begin()
            metadata_tables.write_schema_wait(cur, self.meta_db, metadata_tables.SchemaWait(
                table, source_region(record.topic, self.prefix), record.topic, record.partition, record.offset,
                reason, since_us))
            conn.commit()

    def fits_cached(self, event: ChangeEvent) -> bool:
        """The fast path, no server read: a delete, or an image whose columns the cached list has."""
        if event.op is Op.DELETE or not event.after:
            return True
        columns = self.columns.cached(event.db, event.table)
        return columns is not None and event.after.keys() <= columns.keys()

    def missing_columns(self, event: ChangeEvent) -> frozenset[str]:
        """The columns of an upsert's image the target table lacks (none for a delete, or when the
        target has no such table: that is a missing table, dead-lettered). Reads the server only
        for a table not seen yet, or to make sure before answering that a column is missing."""
        if event.op is Op.DELETE or not event.after:
            return frozenset()
        columns = self.columns.cached(event.db, event.table)
        if columns is not None and event.after.keys() <= columns.keys():
            return frozenset()
        if columns and self.columns.age_s(event.db, event.table) < REREAD_S:   # read just now: missing
            return frozenset(event.after.keys() - columns.keys())
        conn = self._connection()
        with conn.cursor() as cur:
            columns = self.columns.get(cur, event.db, event.table, fresh=True)
        conn.rollback()
        return frozenset(event.after.keys() - columns.keys()) if columns else frozenset()

    def wait(self, record: SourceRecord, reason: str, missing: frozenset[str] = frozenset()) -> None:
        """Hold the record's partition from it on, and record why."""
        event: ChangeEvent = record.event  # type: ignore[assignment]
        table = f"{event.db}.{event.table}"
        hold = self.holds.hold(record.tp, record.offset, table, reason)
        if hold is None:
            return
        conn = self._connection()
        with conn.cursor() as cur:
            self._why[record.tp] = (missing, dict(self.columns.get(cur, event.db, event.table, fresh=True)))
        conn.rollback()
        self._write(record, table, reason, hold.since_us)
        self._gauge(table)
        log.warning("%s[%d]@%d: waiting for schema: %s cannot hold this event (%s); holding this partition, the "
                    "other tables go on (cdcsync schema diff shows the difference; docs/schema-changes.md)",
                    record.topic, record.partition, record.offset, table, reason)

    def _check(self, holds: list[Hold]) -> list[TopicPartition]:
        """Which holds may go: DDL markers once their DDL is applied (applying it when every partition
        is held at it), the others once the target's columns changed as they need."""
        markers = [h for h in holds if h.tp in self._markers]
        others = [h for h in holds if h.tp not in self._markers]
        return (self._check_markers(markers) if markers else []) + self._check_columns(others)

    def _check_markers(self, holds: list[Hold]) -> list[TopicPartition]:
        assert self.ddl is not None
        by_ddl: dict[str, list[Hold]] = {}
        for hold in holds:
            by_ddl.setdefault(ddl_id(self._markers[hold.tp]), []).append(hold)
        released: list[Hold] = []
        conn = self._connection()
        for ddl, group in by_ddl.items():
            event = self._markers[group[0].tp]
            with conn.cursor() as cur:
                done = self.ddl.applied(cur, ddl)
                if not done:
                    cur.execute(f"SELECT COUNT(*) FROM `{self.meta_db}`.`{metadata_tables.SCHEMA_WAITS}` "
                                f"WHERE source_topic = %s AND reason LIKE %s", (group[0].tp.topic, f"ddl {ddl}%"))
                    arrived = int(cur.fetchone()[0])
            conn.rollback()
            if not done and arrived >= (event.partitions or 0):
                try:
                    refused = self.ddl.apply(event)
                except pymysql.MySQLError as err:
                    if is_transient(err):   # tried again at the next recheck
                        log.warning("%s: applying the schema owner's DDL failed (%s); trying again", ddl, err)
                        continue
                    refused = f"the server refused it here: {err.args[-1] if err.args else err}"
                done = refused is None
                if refused is not None and ddl not in self._refused:
                    self._refused.add(ddl)
                    table = f"{event.db}.{event.table}"
                    self.metrics.ddl(table, "refused")
                    log.error("%s: the schema owner %s's DDL %s is not applied here: %s. The table waits "
                              "(cdcsync status)", table, event.region, event.statement, refused)
                    with conn.cursor() as cur:
                        conn.begin()
                        cur.execute(f"UPDATE `{self.meta_db}`.`{metadata_tables.SCHEMA_WAITS}` SET reason = %s "
                                    f"WHERE source_topic = %s AND reason LIKE %s",
                                    (f"ddl {ddl} refused: {refused}", group[0].tp.topic, f"ddl {ddl}%"))
                        conn.commit()
            if done:
                released.extend(group)
        self._clear(conn, released)
        for hold in released:
            self._markers.pop(hold.tp, None)
        return [h.tp for h in released]

    def _clear(self, conn: pymysql.Connection, released: list[Hold]) -> None:
        """Drop the released holds' `schema_waits` rows and count them off the gauge."""
        if not released:
            return
        with conn.cursor() as cur:
            conn.begin()
            metadata_tables.delete_schema_waits(cur, self.meta_db, [(h.tp.topic, h.tp.partition) for h in released])
            conn.commit()
        for table in sorted({h.table for h in released}):
            self._gauge(table, leaving=sum(1 for h in released if h.table == table))

    def _check_columns(self, holds: list[Hold]) -> list[TopicPartition]:
        if not holds:
            return []
        released: list[Hold] = []
        conn = self._connection()
        with conn.cursor() as cur:
            for hold in holds:
                db, _, table = hold.table.partition(".")
                columns = self.columns.get(cur, db, table, fresh=True)
                missing, shape = self._why.get(hold.tp, (frozenset(), {}))
                if (missing <= columns.keys()) if missing else (columns != shape):
                    released.append(hold)
            conn.rollback()
        self._clear(conn, released)
        for hold in released:
            self._why.pop(hold.tp, None)
        for table in sorted({h.table for h in released}):
            log.info("%s: the target's schema changed; resuming %d partition(s) held since it could not hold an "
                     "event", table, sum(1 for h in released if h.table == table))
            if self._on_resume is not None:
                db, _, name = table.partition(".")
                self._on_resume(db, name)
        return [h.tp for h in released]

    def _forgotten(self, holds: list[Hold]) -> None:
        """Partitions revoked while held: their next owner holds them again if it must."""
        for hold in holds:
            self._why.pop(hold.tp, None)
            self._markers.pop(hold.tp, None)
        try:
            conn = self._connection()
            with conn.cursor() as cur:
                conn.begin()
                metadata_tables.delete_schema_waits(cur, self.meta_db, [(h.tp.topic, h.tp.partition) for h in holds])
                conn.commit()
        except pymysql.MySQLError as err:   # the row is informational; its next owner rewrites it
            log.warning("could not delete the schema_waits rows of revoked partitions: %s", err)
        for table in {h.table for h in holds}:
            self._gauge(table)

    def _gauge(self, table: str, leaving: int = 0) -> None:
        self.metrics.waiting_for_schema(table, sum(1 for h in self.holds.holds.values() if h.table == table) - leaving)
