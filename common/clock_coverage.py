"""Which replicated tables lack their clock triggers: their changes carry no clock, so the sinks
apply them as they come and two regions writing one row at once diverge without a conflict.

Such a table is reported (by `cdcsync config check`, `cdcsync status`, the producer at start) unless
the config declares it single-writer (`tables."db.t".single_writer = true`). A table counts as
clocked when it has all three `cdcsync_` triggers of `cdcsync init`; the triggers' bodies are
`init`'s business (it replaces stale ones).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import pymysql

from common.clock_triggers import CLOCK_EVENTS, PREFIX, trigger_name
from schemas.config import PipelineConfig, table_selected

SYSTEM_SCHEMAS = ("mysql", "information_schema", "performance_schema", "sys")


_GRANT = re.compile(r"^GRANT (.+?) ON (\S+) TO ", re.IGNORECASE)


@dataclass(slots=True)
class Coverage:
    unclocked: list[str] = field(default_factory=list)   # no clock triggers, not single-writer
    unseen: list[str] = field(default_factory=list)      # the user may not see their triggers


def _trigger_scopes(grants: list[str]) -> set[str]:
    """The grant targets (`*.*`, `db.*`, `db.t`, unquoted) on which the user holds TRIGGER: only
    there does information_schema.TRIGGERS show it the triggers."""
    scopes = set()
    for line in grants:
        match = _GRANT.match(line)
        if match and {p.strip().upper() for p in match.group(1).split(",")} & {"TRIGGER", "ALL PRIVILEGES", "ALL"}:
            scopes.add(match.group(2).replace("`", ""))
    return scopes


def unclocked_tables(config: PipelineConfig, region: str, conn: pymysql.Connection) -> list[str]:
    """`coverage(...).unclocked`: tables whose triggers the user cannot see are left out."""
    return coverage(config, region, conn).unclocked


def coverage(config: PipelineConfig, region: str, conn: pymysql.Connection) -> Coverage:
    """`db.table` of the region's replicated base tables without their three clock triggers and not
    declared `single_writer`, sorted. Keyless tables count only when the producer publishes them
    (`no_primary_key = "all_columns"`): they can never have clocks. Tables on which the connection's
    user lacks the TRIGGER privilege (a least-privilege applier) are `unseen`, not unclocked."""
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
        cur.execute("SHOW GRANTS FOR CURRENT_USER()")
        scopes = _trigger_scopes([row[0] for row in cur.fetchall()])
    result = Coverage()
    for db, table, has_pk in tables:
        if config.table(db, table).single_writer:
            continue
        if not has_pk and producer.no_primary_key == "skip":
            continue    # not published at all
        if not scopes & {"*.*", f"{db}.*", f"{db}.{table}"}:
            result.unseen.append(f"{db}.{table}")
        elif not all((db, table, trigger_name(table, event)) in triggers for event in CLOCK_EVENTS):
            result.unclocked.append(f"{db}.{table}")
    result.unclocked.sort()
    result.unseen.sort()
    return result


def unclocked_message(tables: list[str]) -> str:
    """One line naming the tables and both fixes."""
    first = tables[0]
    return (f"{len(tables)} replicated table(s) without clock triggers, so concurrent writes to them diverge "
            f"silently: {', '.join(tables)}; run `cdcsync init`, or declare a table written in one region only "
            f'with tables."{first}".single_writer = true')
