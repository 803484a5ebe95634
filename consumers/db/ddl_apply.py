"""Apply a schema owner's ALTER TABLE in this region (docs/schema-changes.md, "Schema owner").

The owner's producer writes a marker (a `DdlEvent` with `partitions`) to every partition of the
table's change topic. The database sink holds each partition at its marker
(consumers/db/schema_waits.py) and, once every partition of the topic is held at that marker
(counted in `<meta_db>.schema_waits`, which every member of the group writes), one member applies
the DDL here (`DdlApplier.apply`, under a named lock, once: `<meta_db>.schema_ddl` remembers it) and
every member releases its partitions: the row changes before the DDL were applied under the old
schema, those after it are applied under the new one.

The statement runs as the owner logged it, led by `/* cdcsync:applied */` (this region's producer
then neither reports nor marks it: no loop; its cache sink still refreshes the table), with
`ALGORITHM=INSTANT`, then `INPLACE`, then the server's choice when refused. Only the additive class
(common/ddl_classes.py) runs unless the table's `allow_destructive_ddl`; a refused DDL keeps the
table waiting, reported. Afterwards the table's clock triggers are regenerated
(consumers/db/trigger_refresh.py). A crash between the ALTER and its `schema_ddl` row is safe: run
again, the ALTER fails with a duplicate column or key, or nothing to drop (1060, 1061, 1091), which
counts as applied.
"""

from __future__ import annotations

import logging
import time

import pymysql

from common.ddl_classes import APPLIED_MARK, classify
from common.metadata_tables import SCHEMA_DDL
from common.mysql import connect
from consumers.db.trigger_refresh import refresh_clock_triggers
from consumers.metrics import SinkMetrics
from schemas.config import PipelineConfig
from schemas.events import DdlEvent

log = logging.getLogger(__name__)

ALGORITHM_REFUSED = {1845, 1846, 4092}   # the server cannot run the ALTER with that ALGORITHM
ALREADY_APPLIED = {1060, 1061, 1091}     # duplicate column name, duplicate key name, nothing to drop
LOCK = "cdcsync_schema_ddl"


def ddl_id(event: DdlEvent) -> str:
    return f"{event.region}:{event.txn_id}"


class DdlApplier:
    def __init__(self, config: PipelineConfig, region: str, metrics: SinkMetrics) -> None:
        self.config, self.region, self.metrics = config, config.region(region), metrics
        self._applied: set[str] = set()

    def applied(self, cur: pymysql.cursors.Cursor, ddl: str) -> bool:
        if ddl in self._applied:
            return True
        cur.execute(f"SELECT 1 FROM `{self.config.meta_db}`.`{SCHEMA_DDL}` WHERE ddl_id = %s", (ddl,))
        if cur.fetchone() is None:
            return False
        self._applied.add(ddl)
        return True

    def apply(self, event: DdlEvent) -> str | None:
        """Run the DDL here unless it ran already; None when done, else why it is refused."""
        ddl, table = ddl_id(event), f"{event.db}.{event.table}"
        with connect(self.region.mysql, database=event.db) as conn, conn.cursor() as cur:
            cur.execute("SELECT GET_LOCK(%s, 60)", (LOCK,))
            try:
                if self.applied(cur, ddl):
                    return None
                cur.execute("SELECT COLUMN_NAME, COLUMN_TYPE, IS_NULLABLE FROM information_schema.COLUMNS "
                            "WHERE TABLE_SCHEMA = %s AND TABLE_NAME = %s", (event.db, event.table))
                rows = cur.fetchall()
                found = classify(event.statement, {r[0]: r[1] for r in rows},
                                 frozenset(r[0] for r in rows if r[2] == "YES"))
                kind = "additive" if found is not None and found.additive else "destructive"
                if kind == "destructive" and not self.config.table(event.db, event.table).allow_destructive_ddl:
                    why = "; ".join(found.reasons) if found is not None else "not an ALTER TABLE"
                    return (f"destructive DDL refused ({why}); set tables.\"{table}\".allow_destructive_ddl = true "
                            f"to apply it, or apply it by hand and record it")
                self._run(cur, event.statement)
                cur.execute(f"INSERT INTO `{self.config.meta_db}`.`{SCHEMA_DDL}` (ddl_id, db, tbl, source_region, "
                            f"statement, kind, applied_at_us) VALUES (%s, %s, %s, %s, %s, %s, %s)",
                            (ddl, event.db, event.table, event.region, event.statement, kind, time.time_ns() // 1000))
                self._applied.add(ddl)
            finally:
                cur.execute("SELECT RELEASE_LOCK(%s)", (LOCK,))
        self.metrics.ddl(table, kind)
        log.info("%s: applied the schema owner %s's DDL %s (%s): %s", table, event.region, ddl, kind, event.statement)
        refresh_clock_triggers(self.region.mysql, meta_db=self.config.meta_db, region=self.region.name,
                               db=event.db, table=event.table or "")
        return None

    def _run(self, cur: pymysql.cursors.Cursor, statement: str) -> None:
        """Online where the server allows: INSTANT, then INPLACE, then its own choice."""
        body = statement.strip().rstrip(";")
        explicit = "ALGORITHM" in body.upper()
        for algorithm in ((None,) if explicit else ("INSTANT", "INPLACE", None)):
            text = f"{APPLIED_MARK} {body}" + (f", ALGORITHM={algorithm}" if algorithm else "")
            try:
                cur.execute(text)
                return
            except pymysql.MySQLError as err:
                code = err.args[0] if err.args else None
                if code in ALREADY_APPLIED:
                    log.info("%s: already applied here (%s)", body, err.args[-1])
                    return
                if code not in ALGORITHM_REFUSED or algorithm is None:
                    raise
                log.info("ALGORITHM=%s refused (%s); trying the next", algorithm, err.args[-1])
