"""`cdcsync init`: the metadata tables and the clock triggers (common/clock_triggers.py) in a region.

Idempotent: a trigger whose definition is already the generated one is left alone, a changed one
is replaced (MariaDB: `CREATE OR REPLACE TRIGGER`, one statement; MySQL: `DROP TRIGGER IF EXISTS`
then `CREATE TRIGGER`), a missing one is created, and a
`cdcsync_` trigger on a table that is no longer replicated (or lost its key) is dropped. The
replicated tables are the region producer's include/exclude selection; `meta_db` and the system
schemas never are. Tables without a primary key, or with a key type the canonical key does not
cover, are skipped with a warning. A text key column whose collation the key fold does not cover
(schemas/key_fold.py) is refused: `init` raises `UnsupportedCollation`, one line per column, and
changes nothing in that region. The triggers run as their definer (the config's user).

The UPDATE trigger names every column of its table (it ticks only when one changes), so a trigger
goes stale when the table's columns change (`ALTER TABLE ... ADD COLUMN`): `stale_triggers` lists
the installed triggers whose body differs from what `init` would generate now, for `cdcsync config
check` and `cdcsync status`; `init` replaces them.

Upgrade: `row_clocks` rows written before the key identity existed are hashed by the key's exact
text. `init` re-keys the rows of every table whose key has a text column that folds: each row's
`pk_hash` becomes the hash of its key identity (`rekey`); two rows that turn out to be one key are
merged (each region's counter the maximum, the newer row's `hlc_us`, tombstone flag and origin).

Foreign keys: a parent of a replicated table with ON DELETE CASCADE / SET NULL gets a BEFORE DELETE
trigger that performs the action itself, so it reaches the binlog (cdcsync/tools/foreign_keys.py); actions
that cannot be emulated that way make `init` refuse (`ForeignKeyRefused`) before changing anything.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

import orjson
import pymysql

from cdcsync.tools.cascade_triggers import cascade_triggers
from cdcsync.tools.foreign_keys import cascade_problems, emulated, read_foreign_keys
from common import metadata_tables
from common.clock_triggers import PREFIX, Trigger, triggers
from common.metadata_tables import ROW_CLOCKS
from common.mysql import connect
from schemas import key_fold
from schemas.config import PipelineConfig, table_selected
from schemas.identifiers import quote_name
from schemas.row_clock_key import UnsupportedKey, key_hash, key_kind, split_key

SYSTEM_SCHEMAS = ("mysql", "information_schema", "performance_schema", "sys")


@dataclass(slots=True)
class InitReport:
    region: str
    created: list[str] = field(default_factory=list)
    replaced: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    dropped: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    rekeyed: list[str] = field(default_factory=list)   # "db.table: n" row_clocks rows moved to their key identity


class ForeignKeyRefused(RuntimeError):
    """A foreign key's action would change replicated rows invisibly; the message names each and its fix."""


def connect_region(config: PipelineConfig, region: str) -> pymysql.Connection:
    return connect(config.region(region).mysql)


def _primary_keys(cur: pymysql.cursors.Cursor) -> dict[tuple[str, str], list[tuple[str, str, str | None]]]:
    cur.execute("SELECT s.TABLE_SCHEMA, s.TABLE_NAME, s.COLUMN_NAME, c.COLUMN_TYPE, c.COLLATION_NAME "
                "FROM information_schema.STATISTICS s JOIN information_schema.COLUMNS c "
                "ON c.TABLE_SCHEMA = s.TABLE_SCHEMA AND c.TABLE_NAME = s.TABLE_NAME AND c.COLUMN_NAME = s.COLUMN_NAME "
                "WHERE s.INDEX_NAME = 'PRIMARY' ORDER BY s.TABLE_SCHEMA, s.TABLE_NAME, s.SEQ_IN_INDEX")
    keys: dict[tuple[str, str], list[tuple[str, str, str | None]]] = defaultdict(list)
    for db, table, column, column_type, collation in cur.fetchall():
        keys[(db, table)].append((column, column_type, collation))
    return keys


def _columns(cur: pymysql.cursors.Cursor) -> dict[tuple[str, str], list[tuple[str, str]]]:
    """(db, table) -> every column as (name, DATA_TYPE), in table order."""
    cur.execute("SELECT TABLE_SCHEMA, TABLE_NAME, COLUMN_NAME, DATA_TYPE FROM information_schema.COLUMNS "
                "ORDER BY TABLE_SCHEMA, TABLE_NAME, ORDINAL_POSITION")
    columns: dict[tuple[str, str], list[tuple[str, str]]] = defaultdict(list)
    for db, table, column, data_type in cur.fetchall():
        columns[(db, table)].append((column, data_type))
    return columns


def key_fold_of(db: str, table: str, pk: list[tuple[str, str, str | None]]) -> dict[str, str]:
    """The key's text columns whose collation folds (column -> collation); raises
    UnsupportedCollation for a text key column in a collation the fold does not cover."""
    text = {name: collation for name, column_type, collation in pk if key_kind(column_type)[0] == "text"}
    return key_fold.folding(text, f"{db}.{table}")


def unsupported_key_collations(config: PipelineConfig, region: str, conn: pymysql.Connection) -> list[str]:
    """One line per replicated table's text key column whose collation is refused (`config check`)."""
    return wanted_triggers(config, region, conn, refuse=False, foreign_keys=False)[2]


def wanted_triggers(config: PipelineConfig, region: str, conn: pymysql.Connection, *,
                    refuse: bool = True, foreign_keys: bool = True) -> tuple[list[Trigger], list[str], list[str]]:
    """The triggers the region's replicated tables should have, warnings for skipped tables, and
    the refused key collations (raised as one UnsupportedCollation when `refuse`). Without
    `foreign_keys` the cascade triggers are left out, and so is the ForeignKeyRefused check."""
    producer = config.region(region).producer
    excluded = (*SYSTEM_SCHEMAS, config.meta_db)
    with conn.cursor() as cur:
        cur.execute("SELECT TABLE_SCHEMA, TABLE_NAME FROM information_schema.TABLES WHERE TABLE_TYPE = 'BASE TABLE' "
                    f"AND TABLE_SCHEMA NOT IN ({', '.join(['%s'] * len(excluded))}) "
                    "ORDER BY TABLE_SCHEMA, TABLE_NAME", excluded)
        tables = [(db, t) for db, t in cur.fetchall() if table_selected(producer, db, t)]
        keys = _primary_keys(cur)
        columns = _columns(cur)
    wanted: list[Trigger] = []
    warnings: list[str] = []
    refused: list[str] = []
    for db, table in tables:
        pk = keys.get((db, table))
        if not pk:
            warnings.append(f"{db}.{table}: no primary key, no clock triggers")
            continue
        try:
            for _, column_type, _ in pk:
                key_kind(column_type)
        except UnsupportedKey as err:
            warnings.append(f"{db}.{table}: {err}, no clock triggers")
            continue
        try:
            key_fold_of(db, table, pk)
        except key_fold.UnsupportedCollation as err:
            refused.append(str(err))
            continue
        wanted.extend(triggers(meta_db=config.meta_db, db=db, table=table, pk=pk, region=region,
                               columns=columns[(db, table)],
                               column_stamps=config.table(db, table).conflict_strategy == "column-lww"))
    if not foreign_keys:
        return wanted, warnings, refused
    selected = set(tables)
    with conn.cursor() as cur:
        keys = read_foreign_keys(cur, excluded)
    problems = cascade_problems(keys, lambda d, t: (d, t) in selected)
    if problems:
        raise ForeignKeyRefused(f"region {region}: foreign keys cdcsync cannot replicate:\n  - "
                                + "\n  - ".join(problems))
    wanted.extend(cascade_triggers(emulated(keys, lambda d, t: (d, t) in selected)))
    if refused and refuse:
        raise key_fold.UnsupportedCollation("\n".join(refused))
    return wanted, warnings, refused


def _installed(cur: pymysql.cursors.Cursor) -> dict[tuple[str, str], tuple[str, str]]:
    """(db, trigger name) -> (table, body) of every installed `cdcsync_` trigger."""
    cur.execute("SELECT TRIGGER_SCHEMA, TRIGGER_NAME, EVENT_OBJECT_TABLE, ACTION_STATEMENT "
                "FROM information_schema.TRIGGERS WHERE TRIGGER_NAME LIKE %s",
                (PREFIX.replace("_", "\\_") + "%",))
    return {(db, name): (table, body) for db, name, table, body in cur.fetchall()}


def stale_triggers(config: PipelineConfig, region: str, conn: pymysql.Connection) -> tuple[list[str], list[str]]:
    """`db.trigger` of every installed clock trigger whose body differs from what `init` would
    generate now (the table's columns or key changed since, or the regions): such an UPDATE trigger
    misses changes of new columns, or ticks where the server writes no row event. And, apart, the
    ones whose body the connection's user cannot read (it lacks the TRIGGER privilege: the server
    shows the body as NULL). Missing triggers are not listed, nor any while `init` would refuse the
    region's foreign keys."""
    try:
        wanted = wanted_triggers(config, region, conn, refuse=False)[0]
    except ForeignKeyRefused:
        return [], []   # nothing init would install to compare with; `config check` reports the keys
    with conn.cursor() as cur:
        installed = _installed(cur)
    stale, unreadable = [], []
    for trigger in wanted:
        current = installed.get((trigger.db, trigger.name))
        if current is None:
            continue
        if current[1] is None:
            unreadable.append(f"{trigger.db}.{trigger.name}")
        elif current != (trigger.table, trigger.body):
            stale.append(f"{trigger.db}.{trigger.name}")
    return stale, unreadable


def trigger_states(config: PipelineConfig, region: str, conn: pymysql.Connection) -> dict[tuple[str, str], str]:
    """(db, table) -> the state of its clock triggers: `current` (all three as `init` would make
    them now), `stale` (one differs: the table's columns changed since `init`), `missing` (one is
    absent) or `unreadable` (the user lacks TRIGGER). Tables `init` gives no triggers are left out."""
    wanted = wanted_triggers(config, region, conn, refuse=False, foreign_keys=False)[0]
    with conn.cursor() as cur:
        installed = _installed(cur)
    states: dict[tuple[str, str], str] = {}
    rank = {"current": 0, "unreadable": 1, "stale": 2, "missing": 3}
    for trigger in wanted:
        current = installed.get((trigger.db, trigger.name))
        state = ("missing" if current is None else "unreadable" if current[1] is None
                 else "current" if current == (trigger.table, trigger.body) else "stale")
        key = (trigger.db, trigger.table)
        if rank[state] >= rank[states.get(key, "current")]:
            states[key] = state
    return states


def stale_trigger_problem(config: PipelineConfig, region: str) -> str | None:
    """One line naming the region's stale clock triggers and the fix, or None when there are none
    (or none the config's user can read). Raises pymysql.MySQLError when the region's database
    cannot be read."""
    with connect_region(config, region) as conn:
        stale, _ = stale_triggers(config, region, conn)
    if not stale:
        return None
    shown = ", ".join(stale[:5]) + (f" and {len(stale) - 5} more" if len(stale) > 5 else "")
    return (f"stale clock triggers {shown}: their tables' columns (or key, or the regions) changed since "
            f"`cdcsync init`, so an UPDATE may tick a clock without a row event or change a column unseen; "
            f"run `cdcsync init --region {region}`")


def init_region(config: PipelineConfig, region: str) -> InitReport:
    """Ensure the metadata tables and (re)create the clock triggers in one region. Idempotent."""
    report = InitReport(region)
    flavor = config.region(region).mysql.flavor
    with connect_region(config, region) as conn:
        metadata_tables.ensure(conn, config.meta_db)
        wanted, report.warnings, _ = wanted_triggers(config, region, conn)
        with conn.cursor() as cur:
            existing = _installed(cur)
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
            keys = _primary_keys(cur)
        for db, table in sorted({(t.db, t.table) for t in wanted}):
            moved = rekey(conn, config.meta_db, db, table, keys[(db, table)])
            if moved:
                report.rekeyed.append(f"{db}.{table}: {moved}")
    return report


def rekey(conn: pymysql.Connection, meta_db: str, db: str, table: str, pk: list[tuple[str, str, str | None]]) -> int:
    """Give every `row_clocks` row of the table the hash of its key identity (after the triggers
    were replaced, so no new row is written under an old hash); returns how many rows moved. Rows
    that are one key by identity are merged into one. Idempotent."""
    fold = key_fold_of(db, table, pk)
    if not fold:
        return 0   # the identity is the key text: nothing can have moved
    names = [name for name, _, _ in pk]
    clocks = f"{quote_name(meta_db)}.{quote_name(ROW_CLOCKS)}"
    moved = 0
    with conn.cursor() as cur:
        key_fold.ensure(cur, fold)
        conn.begin()
        try:
            cur.execute(f"SELECT pk_hash, pk, counters, hlc_us, deleted, origin, heads FROM {clocks} "
                        "WHERE db = %s AND tbl = %s FOR UPDATE", (db, table))
            groups: dict[bytes, list[tuple]] = defaultdict(list)
            for row in cur.fetchall():
                pk_hash, text = bytes(row[0]), row[1]
                try:
                    parts = split_key(text)
                except ValueError:
                    continue   # not a key text of this table's form: left alone
                if len(parts) != len(names):
                    continue
                identity = ",".join(f"{len(t)}:{t}" for t in
                                    (key_fold.fold(p, fold[n]) if n in fold else p for n, p in zip(names, parts)))
                groups[key_hash(identity)].append((pk_hash, *row[1:]))
            for new_hash, rows in groups.items():
                if len(rows) == 1 and rows[0][0] == new_hash:
                    continue
                newest = max(rows, key=lambda r: int(r[3]))
                counters: dict[str, int] = {}
                for r in rows:
                    for region, n in orjson.loads(r[2]).items():
                        counters[region] = max(counters.get(region, 0), int(n))
                cur.execute(f"DELETE FROM {clocks} WHERE db = %s AND tbl = %s AND pk_hash IN "
                            f"({', '.join(['%s'] * len(rows))})", (db, table, *(r[0] for r in rows)))
                cur.execute(f"INSERT INTO {clocks} (db, tbl, pk_hash, pk, counters, hlc_us, deleted, origin, heads) "
                            "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)",
                            (db, table, new_hash, newest[1], orjson.dumps(counters).decode(), newest[3], newest[4],
                             newest[5], newest[6] if len(rows) == 1 else None))
                moved += len(rows)
            conn.commit()
        except BaseException:
            conn.rollback()
            raise
    return moved


def init(config: PipelineConfig, regions: list[str] | None = None) -> list[InitReport]:
    return [init_region(config, region) for region in (regions or list(config.regions))]
