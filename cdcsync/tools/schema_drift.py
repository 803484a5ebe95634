"""Schema drift: the replicated tables compared across regions (`cdcsync schema diff`).

A region's schema is read once into a small typed snapshot (`read_schema`: information_schema
only, read-only), and `compare` is pure: per table, its presence, every column (type, nullability,
default, collation), the PRIMARY and UNIQUE keys, the table's default collation, and the state of
its clock triggers (current, stale or missing; their bodies name the region, so the bodies
themselves are not compared). Column order is not compared: events name their columns.

Why it matters: a sink whose target lacks a column or holds a narrower type cannot apply the
other region's events (consumers/db/schema_waits.py pauses that table until it can); a differing
key or collation makes two regions disagree about which rows are one row. `config check`, `init`
and `status` print `lines(...)`, one per table and difference.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

import pymysql

from cdcsync.tools.clock_init import SYSTEM_SCHEMAS, trigger_states
from schemas.config import PipelineConfig, table_selected

ABSENT = "(absent)"


@dataclass(frozen=True, slots=True)
class Column:
    name: str
    column_type: str            # COLUMN_TYPE, e.g. `varchar(20)`, `int(11) unsigned`
    nullable: bool
    default: str | None         # COLUMN_DEFAULT as the server shows it (None: no default)
    collation: str | None = None

    def describe(self) -> str:
        text = f"{self.column_type} {'NULL' if self.nullable else 'NOT NULL'}"
        if self.default is not None:
            text += f" DEFAULT {self.default}"
        if self.collation:
            text += f" COLLATE {self.collation}"
        return text


@dataclass(frozen=True, slots=True)
class Key:
    name: str                   # PRIMARY or the unique index's name
    columns: tuple[str, ...]

    def describe(self) -> str:
        return f"({', '.join(self.columns)})"


@dataclass(frozen=True, slots=True)
class TableShape:
    columns: tuple[Column, ...]
    keys: tuple[Key, ...] = ()          # PRIMARY and UNIQUE only: what decides which rows are one
    collation: str | None = None        # the table's default collation
    triggers: str = "current"           # clock triggers: current, stale, missing or none (no key)

    def column(self, name: str) -> Column | None:
        return next((c for c in self.columns if c.name == name), None)


RegionSchema = dict[str, TableShape]    # "db.table" -> shape


@dataclass(frozen=True, slots=True)
class Drift:
    """One difference: `aspect` is table, column, key, collation or triggers; `name` the column's
    or key's name ("" for the others); `values` what each region has (ABSENT when it lacks it)."""

    table: str
    aspect: str
    name: str
    values: dict[str, str] = field(default_factory=dict)

    def line(self) -> str:
        what = f"{self.aspect} {self.name}" if self.name else self.aspect
        by_value: dict[str, list[str]] = defaultdict(list)
        for region, value in self.values.items():
            by_value[value].append(region)
        shown = "; ".join(f"{', '.join(regions)}: {value}" for value, regions in by_value.items())
        return f"{self.table}: {what} differs: {shown}"

    def to_json(self) -> dict[str, Any]:
        return {"table": self.table, "aspect": self.aspect, "name": self.name, "values": dict(self.values)}


def compare(schemas: dict[str, RegionSchema]) -> list[Drift]:
    """Every difference between the regions' snapshots, sorted by table, aspect and name. A table
    absent in a region is one `table` difference (its columns are not listed again). Clock
    triggers are reported also when every region's are stale (a column change `init` has not
    followed); missing everywhere is `config check`'s clock coverage, not drift."""
    regions = list(schemas)
    tables = sorted({t for schema in schemas.values() for t in schema})
    found: list[Drift] = []
    for table in tables:
        shapes = {r: schemas[r].get(table) for r in regions}
        if any(s is None for s in shapes.values()):
            found.append(Drift(table, "table", "", {r: "present" if s else ABSENT for r, s in shapes.items()}))
            continue
        present: dict[str, TableShape] = shapes  # type: ignore[assignment]
        columns = sorted({c.name for s in present.values() for c in s.columns})
        for name in columns:
            values = {r: (c.describe() if (c := s.column(name)) else ABSENT) for r, s in present.items()}
            if len(set(values.values())) > 1:
                found.append(Drift(table, "column", name, values))
        keys = sorted({k.name for s in present.values() for k in s.keys})
        for name in keys:
            values = {r: next((k.describe() for k in s.keys if k.name == name), ABSENT) for r, s in present.items()}
            if len(set(values.values())) > 1:
                found.append(Drift(table, "key", name, values))
        collations = {r: s.collation or "-" for r, s in present.items()}
        if len(set(collations.values())) > 1:
            found.append(Drift(table, "collation", "", collations))
        triggers = {r: s.triggers for r, s in present.items()}
        if len(set(triggers.values())) > 1 or "stale" in triggers.values():
            found.append(Drift(table, "clock triggers", "", triggers))
    return found


def lines(drifts: list[Drift]) -> list[str]:
    return [d.line() for d in drifts]


# -- reading ----------------------------------------------------------------------------------------
def read_schema(config: PipelineConfig, region: str, conn: pymysql.Connection) -> RegionSchema:
    """The snapshot of the region's replicated base tables (its producer's include/exclude)."""
    producer = config.region(region).producer
    excluded = (*SYSTEM_SCHEMAS, config.meta_db)
    marks = ", ".join(["%s"] * len(excluded))
    with conn.cursor() as cur:
        cur.execute("SELECT TABLE_SCHEMA, TABLE_NAME, TABLE_COLLATION FROM information_schema.TABLES "
                    f"WHERE TABLE_TYPE = 'BASE TABLE' AND TABLE_SCHEMA NOT IN ({marks})", excluded)
        tables = {(db, t): collation for db, t, collation in cur.fetchall() if table_selected(producer, db, t)}
        cur.execute("SELECT TABLE_SCHEMA, TABLE_NAME, COLUMN_NAME, COLUMN_TYPE, IS_NULLABLE, COLUMN_DEFAULT, "
                    "COLLATION_NAME FROM information_schema.COLUMNS "
                    f"WHERE TABLE_SCHEMA NOT IN ({marks}) ORDER BY TABLE_SCHEMA, TABLE_NAME, ORDINAL_POSITION",
                    excluded)
        columns: dict[tuple[str, str], list[Column]] = defaultdict(list)
        for db, t, name, column_type, nullable, default, collation in cur.fetchall():
            if (db, t) in tables:
                columns[(db, t)].append(Column(name, column_type, nullable == "YES", default, collation))
        cur.execute("SELECT TABLE_SCHEMA, TABLE_NAME, INDEX_NAME, COLUMN_NAME FROM information_schema.STATISTICS "
                    f"WHERE NON_UNIQUE = 0 AND TABLE_SCHEMA NOT IN ({marks}) "
                    "ORDER BY TABLE_SCHEMA, TABLE_NAME, INDEX_NAME, SEQ_IN_INDEX", excluded)
        keys: dict[tuple[str, str], dict[str, list[str]]] = defaultdict(lambda: defaultdict(list))
        for db, t, index, column in cur.fetchall():
            if (db, t) in tables:
                keys[(db, t)][index].append(column)
    states = trigger_states(config, region, conn)
    return {f"{db}.{t}": TableShape(tuple(columns[(db, t)]),
                                    tuple(Key(name, tuple(cols)) for name, cols in sorted(keys[(db, t)].items())),
                                    collation, states.get((db, t), "none"))
            for (db, t), collation in sorted(tables.items())}


def mesh_drift(config: PipelineConfig) -> tuple[list[Drift], list[str]]:
    """Drift across every region of the config, and the regions that could not be read (one line
    each: such a region is left out of the comparison, never reported as in sync)."""
    from cdcsync.tools.clock_init import connect_region

    schemas: dict[str, RegionSchema] = {}
    unread: list[str] = []
    for region in config.regions:
        try:
            with connect_region(config, region) as conn:
                schemas[region] = read_schema(config, region, conn)
        except (pymysql.MySQLError, OSError) as err:
            unread.append(f"{region}: cannot read the schema: {err.args[-1] if err.args else err}")
    return compare(schemas), unread
