"""`cdcsync init`: the metadata tables and the clock triggers (schemas/clock_triggers.py) in a region.

Idempotent: a trigger whose definition is already the generated one is left alone, a changed one
is replaced (MariaDB: `CREATE OR REPLACE TRIGGER`, one statement; MySQL: `DROP TRIGGER IF EXISTS`
then `CREATE TRIGGER`), a missing one is created, and a
`cdcsync_` trigger on a table that is no longer replicated (or lost its key) is dropped. The
replicated tables are the region producer's include/exclude selection; `meta_db` and the system
schemas never are. Tables without a primary key, or with a key type the canonical key does not
cover, are skipped with a warning. The triggers run as their definer (the config's user).

Foreign keys: a parent of a replicated table with ON DELETE CASCADE / SET NULL gets a BEFORE DELETE
trigger that performs the action itself, so it reaches the binlog (schemas/foreign_keys.py); actions
that cannot be emulated that way make `init` refuse (`ForeignKeyRefused`) before changing anything.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

import pymysql

from schemas import metadata_tables
from schemas.cascade_triggers import cascade_triggers
from schemas.clock_triggers import PREFIX, Trigger, triggers
from schemas.config import PipelineConfig, table_selected
from schemas.foreign_keys import cascade_problems, emulated, read_foreign_keys
from schemas.identifiers import quote_name
from schemas.row_clock_key import UnsupportedKey, key_kind

SYSTEM_SCHEMAS = ("mysql", "information_schema", "performance_schema", "sys")


@dataclass(slots=True)
class InitReport:
    region: str
    created: list[str] = field(default_factory=list)
    replaced: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    dropped: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


class ForeignKeyRefused(RuntimeError):
    """A foreign key's action would change replicated rows invisibly; the message names each and its fix."""


def _connect(config: PipelineConfig, region: str) -> pymysql.Connection:
    m = config.region(region).mysql
    return pymysql.connect(**m.connect_settings(), autocommit=True)


def _primary_keys(cur: pymysql.cursors.Cursor) -> dict[tuple[str, str], list[tuple[str, str]]]:
    cur.execute("SELECT s.TABLE_SCHEMA, s.TABLE_NAME, s.COLUMN_NAME, c.COLUMN_TYPE "
                "FROM information_schema.STATISTICS s JOIN information_schema.COLUMNS c "
                "ON c.TABLE_SCHEMA = s.TABLE_SCHEMA AND c.TABLE_NAME = s.TABLE_NAME AND c.COLUMN_NAME = s.COLUMN_NAME "
                "WHERE s.INDEX_NAME = 'PRIMARY' ORDER BY s.TABLE_SCHEMA, s.TABLE_NAME, s.SEQ_IN_INDEX")
    keys: dict[tuple[str, str], list[tuple[str, str]]] = defaultdict(list)
    for db, table, column, column_type in cur.fetchall():
        keys[(db, table)].append((column, column_type))
    return keys


def wanted_triggers(config: PipelineConfig, region: str, conn: pymysql.Connection) -> tuple[list[Trigger], list[str]]:
    """The triggers the region's replicated tables should have, and warnings for skipped tables."""
    producer = config.region(region).producer
    excluded = (*SYSTEM_SCHEMAS, config.meta_db)
    with conn.cursor() as cur:
        cur.execute("SELECT TABLE_SCHEMA, TABLE_NAME FROM information_schema.TABLES WHERE TABLE_TYPE = 'BASE TABLE' "
                    f"AND TABLE_SCHEMA NOT IN ({', '.join(['%s'] * len(excluded))}) "
                    "ORDER BY TABLE_SCHEMA, TABLE_NAME", excluded)
        tables = [(db, t) for db, t in cur.fetchall() if table_selected(producer, db, t)]
        keys = _primary_keys(cur)
    wanted: list[Trigger] = []
    warnings: list[str] = []
    for db, table in tables:
        pk = keys.get((db, table))
        if not pk:
            warnings.append(f"{db}.{table}: no primary key, no clock triggers")
            continue
        try:
            for _, column_type in pk:
                key_kind(column_type)
        except UnsupportedKey as err:
            warnings.append(f"{db}.{table}: {err}, no clock triggers")
            continue
        wanted.extend(triggers(meta_db=config.meta_db, db=db, table=table, pk=pk, region=region,
                               regions=list(config.regions)))
    selected = set(tables)
    with conn.cursor() as cur:
        keys = read_foreign_keys(cur, excluded)
    problems = cascade_problems(keys, lambda d, t: (d, t) in selected)
    if problems:
        raise ForeignKeyRefused(f"region {region}: foreign keys cdcsync cannot replicate:\n  - "
                                + "\n  - ".join(problems))
    wanted.extend(cascade_triggers(emulated(keys, lambda d, t: (d, t) in selected)))
    return wanted, warnings


def init_region(config: PipelineConfig, region: str) -> InitReport:
    """Ensure the metadata tables and (re)create the clock triggers in one region. Idempotent."""
    report = InitReport(region)
    flavor = config.region(region).mysql.flavor
    with _connect(config, region) as conn:
        metadata_tables.ensure(conn, config.meta_db)
        wanted, report.warnings = wanted_triggers(config, region, conn)
        with conn.cursor() as cur:
            cur.execute("SELECT TRIGGER_SCHEMA, TRIGGER_NAME, EVENT_OBJECT_TABLE, ACTION_STATEMENT "
                        "FROM information_schema.TRIGGERS WHERE TRIGGER_NAME LIKE %s",
                        (PREFIX.replace("_", "\\_") + "%",))
            existing = {(db, name): (table, body) for db, name, table, body in cur.fetchall()}
            for trigger in wanted:
                label = f"{trigger.db}.{trigger.name}"
                current = existing.pop((trigger.db, trigger.name), None)
                if current == (trigger.table, trigger.body):
                    report.unchanged.append(label)
                    continue
                if current is not None and current[0] != trigger.table:
                    cur.execute(f"DROP TRIGGER {quote_name(trigger.db)}.{quote_name(trigger.name)}")
                for statement in trigger.create(flavor):
                    cur.execute(statement)
                (report.replaced if current is not None else report.created).append(label)
            for (db, name) in sorted(existing):
                cur.execute(f"DROP TRIGGER IF EXISTS {quote_name(db)}.{quote_name(name)}")
                report.dropped.append(f"{db}.{name}")
    return report


def init(config: PipelineConfig, regions: list[str] | None = None) -> list[InitReport]:
    return [init_region(config, region) for region in (regions or list(config.regions))]
