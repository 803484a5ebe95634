"""Regenerate one table's clock triggers after its columns changed (the database sink resuming).

The UPDATE clock trigger names every column of its table (common/clock_triggers.py), so an
`ALTER TABLE` leaves it stale. `cdcsync init` replaces stale triggers in a whole region; this does
it for one table, from the sink that resumes after waiting for that table's schema, so the region
does not run with a stale trigger until an operator runs `init`. Only a table that has all three
clock triggers already is touched (a table `init` left unclocked stays so). It needs the TRIGGER
privilege: without it the sink logs the `init` command to run, and `status` reports the triggers stale.
"""

from __future__ import annotations

import logging

import pymysql

from common.clock_triggers import PREFIX, triggers
from common.mysql import connect
from schemas.config import MySQLConfig

log = logging.getLogger(__name__)


def refresh_clock_triggers(mysql: MySQLConfig, *, meta_db: str, region: str, db: str, table: str,
                           column_stamps: bool = False) -> str:
    """`replaced`, `current` or `unclocked`; `failed` (logged) when the server refused.
    `column_stamps`: the table is `column-lww`, its triggers keep per-column stamps (as `init` installs them)."""
    try:
        with connect(mysql) as conn, conn.cursor() as cur:
            cur.execute("SELECT s.COLUMN_NAME, c.COLUMN_TYPE, c.COLLATION_NAME FROM information_schema.STATISTICS s "
                        "JOIN information_schema.COLUMNS c ON c.TABLE_SCHEMA = s.TABLE_SCHEMA "
                        "AND c.TABLE_NAME = s.TABLE_NAME AND c.COLUMN_NAME = s.COLUMN_NAME "
                        "WHERE s.TABLE_SCHEMA = %s AND s.TABLE_NAME = %s AND s.INDEX_NAME = 'PRIMARY' "
                        "ORDER BY s.SEQ_IN_INDEX", (db, table))
            pk = [tuple(row) for row in cur.fetchall()]
            cur.execute("SELECT COLUMN_NAME, DATA_TYPE FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = %s "
                        "AND TABLE_NAME = %s ORDER BY ORDINAL_POSITION", (db, table))
            columns = [tuple(row) for row in cur.fetchall()]
            cur.execute("SELECT TRIGGER_NAME, ACTION_STATEMENT FROM information_schema.TRIGGERS "
                        "WHERE TRIGGER_SCHEMA = %s AND EVENT_OBJECT_TABLE = %s AND TRIGGER_NAME LIKE %s",
                        (db, table, PREFIX.replace("_", "\\_") + "%"))
            installed = dict(cur.fetchall())
            if not pk:
                return "unclocked"
            wanted = triggers(meta_db=meta_db, db=db, table=table, pk=pk, region=region, columns=columns,
                              column_stamps=column_stamps)
            if not all(t.name in installed for t in wanted):
                return "unclocked"
            stale = [t for t in wanted if installed[t.name] != t.body]
            for trigger in stale:
                for statement in trigger.create(mysql.flavor):
                    cur.execute(statement)
    except (pymysql.MySQLError, ValueError) as err:
        log.warning("%s.%s: could not regenerate its clock triggers after its columns changed (%s); run "
                    "`cdcsync init --region %s`", db, table, err, region)
        return "failed"
    if stale:
        log.info("%s.%s: regenerated %d stale clock trigger(s) after its columns changed", db, table, len(stale))
        return "replaced"
    return "current"
