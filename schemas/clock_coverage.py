"""Which replicated tables lack their clock triggers: their changes carry no clock, so the sinks
apply them as they come and two regions writing one row at once diverge without a conflict.

Such a table is reported (by `cdcsync config check`, `cdcsync status`, the producer at start) unless
the config declares it single-writer (`tables."db.t".single_writer = true`). A table counts as
clocked when it has all three `cdcsync_` triggers of `cdcsync init`; the triggers' bodies are
`init`'s business (it replaces stale ones).
"""

from __future__ import annotations

import pymysql

from schemas.clock_triggers import PREFIX, SUFFIXES, trigger_name
from schemas.config import PipelineConfig, table_selected

SYSTEM_SCHEMAS = ("mysql", "information_schema", "performance_schema", "sys")


def unclocked_tables(config: PipelineConfig, region: str, conn: pymysql.Connection) -> list[str]:
    """`db.table` of the region's replicated base tables without their three clock triggers and not
    declared `single_writer`, sorted. Keyless tables count only when the producer publishes them
    (`no_primary_key = "all_columns"`): they can never have clocks."""
    producer = config.region(region).producer
    excluded = (*SYSTEM_SCHEMAS, config.meta_db)
    with conn.cursor() as cur:
        cur.execute("SELECT t.TABLE_SCHEMA, t.TABLE_NAME, EXISTS (SELECT 1 FROM information_schema.TABLE_CONSTRAINTS c "
                    "WHERE c.TABLE_SCHEMA = t.TABLE_SCHEMA AND c.TABLE_NAME = t.TABLE_NAME "
                    "AND c.CONSTRAINT_TYPE = 'PRIMARY KEY') FROM information_schema.TABLES t "
                    "WHERE t.TABLE_TYPE = 'BASE TABLE' "
                    f"AND t.TABLE_SCHEMA NOT IN ({', '.join(['%s'] * len(excluded))})", excluded)
        tables = [(db, t, bool(pk)) for db, t, pk in cur.fetchall() if table_selected(producer, db, t)]
        cur.execute("SELECT TRIGGER_SCHEMA, EVENT_OBJECT_TABLE, TRIGGER_NAME FROM information_schema.TRIGGERS "
                    "WHERE TRIGGER_NAME LIKE %s", (PREFIX.replace("_", "\\_") + "%",))
        triggers = set(cur.fetchall())
    found = []
    for db, table, has_pk in tables:
        if config.table(db, table).single_writer:
            continue
        if not has_pk and producer.no_primary_key == "skip":
            continue    # not published at all
        if not all((db, table, trigger_name(table, event)) in triggers for event in SUFFIXES):
            found.append(f"{db}.{table}")
    return sorted(found)


def unclocked_message(tables: list[str]) -> str:
    """One line naming the tables and both fixes."""
    first = tables[0]
    return (f"{len(tables)} replicated table(s) without clock triggers, so concurrent writes to them diverge "
            f"silently: {', '.join(tables)}; run `cdcsync init`, or declare a table written in one region only "
            f'with tables."{first}".single_writer = true')
