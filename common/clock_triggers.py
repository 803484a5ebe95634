"""The clock triggers `cdcsync init` installs on every replicated table: pure SQL generation.

Three triggers per table, `cdcsync_<table>_ai`, `_au`, `_ad` (AFTER INSERT / UPDATE / DELETE). On a
local write (the session variable `@cdcsync_applying` NULL or 0) each upserts the row's
`<meta_db>.row_clocks` row in the writer's own transaction:

- counters: the old counters with this region's counter + 1 (`{region: 1}` when there is no row);
- hlc_us: GREATEST(old hlc_us + 1, now in µs), "now" being the server's real clock in UTC (`SYSDATE`
  read under `time_zone = '+00:00'`, the writer's zone restored at once): not the session's zone, whose
  DST fall-back hour repeats, and not `SET timestamp`, which moves `NOW()`;
- deleted: 1 after a DELETE (a tombstone), else 0; origin: this region; heads: NULL (the write
  dominates every concurrent version a resolution kept).

An UPDATE ticks only when some column's stored value really changes (`changed_condition`): MariaDB
writes no row event for a matched row whose bytes stay the same (`UPDATE t SET v = v`, an idempotent
`INSERT ... ON DUPLICATE KEY UPDATE`), so a tick there would be a clock row with no change to pair
with (producers/clock_matching.py). The comparison is byte-wise, like the server's: a case-only or
trailing-space-only change under a `_ci` collation IS a change. Because it names every column, the
trigger must be regenerated (`cdcsync init`) when the table's columns change; `stale_triggers` in
cdcsync/tools/clock_init.py reports the ones that were not.

An UPDATE that changes the key is a delete of the old key and an insert of the new one: the old
key's clock + 1 as a tombstone, the new key's own clock (a tombstone, or none) + 1. The old key's
counters are NOT carried over: a counter counts writes to one key, and carrying `{eu: 4}` of the
old key would claim the new key had seen eu's 4th write of the NEW key, so a concurrent eu write
there would be taken as already seen and dropped with no conflict (found by the checker, seed 47). The database sink
sets `@cdcsync_applying = 1`, so its writes skip the triggers; it writes the clock row itself.

Tables whose strategy is `column-lww` (`column_stamps=True`) also keep `row_clocks.col_stamps`, the
per-column write stamps consumers/db/column_merge.py merges by, as one `JSON_MERGE_PATCH` per write:
INSERT sets the insert stamp `i` = [hlc_us, region] (which stamps every column) and drops the column
entries and the ghost values; UPDATE sets `c.<column>` = [hlc_us, region] for the columns it changed
(the same byte comparison as `changed_condition`); DELETE sets the delete stamp `d`. The stamp's
hlc_us is the one this upsert writes: MariaDB evaluates ON DUPLICATE KEY UPDATE assignments left to
right, so `col_stamps` (assigned last) reads the new `hlc_us`.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass

from common.metadata_tables import ROW_CLOCKS
from schemas.identifiers import quote_name
from schemas.row_clock_key import sql_key_expression, sql_key_identity

APPLYING = "@cdcsync_applying"
PREFIX = "cdcsync_"
SUFFIXES = {"INSERT": "ai", "UPDATE": "au", "DELETE": "ad", "BEFORE DELETE": "bd"}
# The three clock triggers every clocked table has (only FK parents also get `bd`, a cascade trigger).
CLOCK_EVENTS = ("INSERT", "UPDATE", "DELETE")
HLC = "\0hlc\0"             # placeholder of the new hlc_us in a col_stamps patch (no identifier holds NUL)
NOW_US = "now_us"            # set by CLOCK_READING at the top of every trigger body
CLOCK_DECLARE = "DECLARE now_us BIGINT;\n  DECLARE saved_tz VARCHAR(64);"
# Only the reading of the clock runs under UTC, so nothing that can fail leaves the writer's session
# in another time zone.
CLOCK_READING = ("SET saved_tz = @@session.time_zone; SET SESSION time_zone = '+00:00'; "
                 "SET now_us = TIMESTAMPDIFF(MICROSECOND, '1970-01-01 00:00:00', SYSDATE(6)); "
                 "SET SESSION time_zone = saved_tz;")


@dataclass(frozen=True, slots=True)
class Trigger:
    name: str
    event: str          # INSERT, UPDATE or DELETE
    db: str
    table: str
    body: str           # what information_schema.TRIGGERS.ACTION_STATEMENT shows
    timing: str = "AFTER"   # BEFORE only for the foreign-key cascade triggers (cdcsync/tools/cascade_triggers.py)

    def create(self, flavor: str = "mariadb") -> list[str]:
        """The statements that create or replace this trigger on a `mariadb` or `mysql` server.

        MariaDB: one `CREATE OR REPLACE TRIGGER`, so writes never run without the trigger. MySQL has
        no `OR REPLACE` for triggers: `DROP TRIGGER IF EXISTS` then `CREATE TRIGGER`, two statements
        (each DDL commits on its own), so a write committed in between runs without the trigger and
        leaves no clock tick (docs/clocks.md, "MySQL 8")."""
        target = f"{quote_name(self.db)}.{quote_name(self.name)}"
        on = f"{quote_name(self.db)}.{quote_name(self.table)}"
        rest = f"TRIGGER {target} {self.timing} {self.event} ON {on} FOR EACH ROW {self.body}"
        if flavor == "mariadb":
            return [f"CREATE OR REPLACE {rest}"]
        if flavor == "mysql":
            return [f"DROP TRIGGER IF EXISTS {target}", f"CREATE {rest}"]
        raise ValueError(f"unknown mysql.flavor {flavor!r} (mariadb or mysql)")


def literal(text: str) -> str:
    return "'" + text.replace("\\", "\\\\").replace("'", "''") + "'"


def trigger_name(table: str, event: str) -> str:
    """`cdcsync_<table>_<ai|au|ad>`; a table name too long for the 64-character limit is cut and
    completed with a hash of the full name, so names stay unique per table."""
    suffix = SUFFIXES[event]
    name = f"{PREFIX}{table}_{suffix}"
    if len(name) <= 64:
        return name
    digest = hashlib.sha1(table.encode("utf-8")).hexdigest()[:8]
    return f"{PREFIX}{table[:44]}_{digest}_{suffix}"


def _upsert(meta_db: str, db: str, table: str, key: str, region: str, deleted: int, ident: str | None = None,
            stamps: str | None = None) -> str:
    """Upsert of one key's clock: its counters with `region` + 1, hlc after both old and now.
    `ident` is the key's identity (hashed), `key` its text (shown in `pk`, the latest spelling).
    `stamps`: an SQL expression of the `col_stamps` JSON merge patch of this write, in which `HLC`
    stands for the row's new hlc_us (column-lww tables only)."""
    ident = ident or key
    path = literal(f'$."{region}"')
    r = literal(region)
    columns, values, assign = "", "", ""
    if stamps is not None:
        columns = ", col_stamps"
        # `+ 0`: a BIGINT routine variable would go into the JSON as a string
        values = f", JSON_MERGE_PATCH('{{}}', {stamps.replace(HLC, NOW_US + ' + 0')})"   # a patch's NULLs drop keys
        # Last, so `hlc_us` here is the value just assigned (left-to-right evaluation).
        assign = f", col_stamps = JSON_MERGE_PATCH(COALESCE(col_stamps, '{{}}'), {stamps.replace(HLC, 'hlc_us')})"
    return (f"INSERT INTO {quote_name(meta_db)}.{quote_name(ROW_CLOCKS)} "
            f"(db, tbl, pk_hash, pk, counters, hlc_us, deleted, origin{columns}) VALUES "
            f"({literal(db)}, {literal(table)}, UNHEX(SHA2({ident}, 256)), {key}, JSON_OBJECT({r}, 1), {NOW_US}, "
            f"{deleted}, {r}{values}) ON DUPLICATE KEY UPDATE "
            f"counters = JSON_SET(counters, {path}, CAST(COALESCE(JSON_VALUE(counters, {path}), 0) AS SIGNED) + 1), "
            f"hlc_us = GREATEST(hlc_us + 1, VALUES(hlc_us)), deleted = {deleted}, origin = VALUES(origin), heads = NULL, "
            f"pk = VALUES(pk){assign}")


def _stamp(region: str) -> str:
    """JSON `[hlc, "region"]` of this write, `HLC` left for `_upsert` to fill."""
    return f"JSON_ARRAY({HLC}, {literal(region)})"


def insert_stamps(region: str) -> str:
    """The col_stamps patch of an insert: its stamp stamps every column, so the column entries and
    the ghost values (a tombstone's) go."""
    return f"JSON_OBJECT('i', {_stamp(region)}, 'c', NULL, 'g', NULL)"


def delete_stamps(region: str) -> str:
    """The col_stamps patch of a delete: the delete stamp; the ghost values go (every column's stamp
    is below this delete's, so none of them can show again)."""
    return f"JSON_OBJECT('d', {_stamp(region)}, 'g', NULL)"


def update_stamps(columns: Sequence[tuple[str, str]], region: str) -> str:
    """The col_stamps patch of an update: `c.<column>` = this write's stamp for every column whose
    stored value changed. Built as text (one CONCAT_WS over the columns, NULL for an unchanged one)
    so the trigger runs one JSON function, whatever the number of columns."""
    stamp = literal(f',{json.dumps(region)}]')
    parts = [f"IF({_same(c, t)}, NULL, CONCAT({literal(json.dumps(c) + ':[')}, {HLC}, {stamp}))"
             for c, t in columns]
    return "CONCAT('{\"c\":{', CONCAT_WS(',', " + ", ".join(parts) + "), '}}')"


def _same(column: str, data_type: str) -> str:
    """SQL true when OLD and NEW hold the same stored value of `column` (DATA_TYPE `data_type`), as
    the server decides whether a row changed: bytes, not collation (a case-only change is a change).
    FLOAT and DOUBLE compare by value: their text cast rounds (two FLOATs print alike), and the
    server stores -0.0 as 0. TIMESTAMP compares the instant, not its text in the session time zone
    (two instants print alike in a DST fall-back hour)."""
    old, new = f"OLD.{quote_name(column)}", f"NEW.{quote_name(column)}"
    kind = data_type.lower()
    if kind in ("float", "double", "real"):
        return f"{old} <=> {new}"
    if kind == "timestamp":
        return f"UNIX_TIMESTAMP({old}) <=> UNIX_TIMESTAMP({new})"
    return f"CAST({old} AS BINARY) <=> CAST({new} AS BINARY)"


def changed_condition(columns: Sequence[tuple[str, str]]) -> str:
    """SQL true when an UPDATE changed some column of `columns` ((name, DATA_TYPE), every column of
    the table): exactly when the server writes a row event for it."""
    if not columns:
        raise ValueError("a table without columns has no clock triggers")
    return "NOT (" + "\n        AND ".join(_same(c, t) for c, t in columns) + ")"


def triggers(*, meta_db: str, db: str, table: str, pk: Sequence[tuple[str, ...]], region: str,
             columns: Sequence[tuple[str, str]], column_stamps: bool = False) -> list[Trigger]:
    """The three triggers of `db.table`, whose primary key is `pk` ((column, COLUMN_TYPE[, COLLATION_NAME])
    in key order), for `region`; `columns` are all the table's columns, (name, DATA_TYPE) (the UPDATE trigger ticks only when one
    changes). Keys are hashed by their identity (text folded by collation, schemas/key_fold.py).
    `column_stamps`: also keep the per-column stamps (`row_clocks.col_stamps`) of a `column-lww` table."""
    keys = [(c[0], c[1], c[2] if len(c) > 2 else None) for c in pk]
    new, old = sql_key_expression([c[:2] for c in keys], "NEW"), sql_key_expression([c[:2] for c in keys], "OLD")
    new_id, old_id = sql_key_identity(keys, "NEW"), sql_key_identity(keys, "OLD")
    guard = f"IF COALESCE({APPLYING}, 0) = 0 THEN"
    inserted = insert_stamps(region) if column_stamps else None
    removed = delete_stamps(region) if column_stamps else None
    updated = update_stamps(columns, region) if column_stamps else None

    insert = (f"BEGIN\n  {CLOCK_DECLARE}\n  {guard}\n    {CLOCK_READING}\n"
              f"    {_upsert(meta_db, db, table, new, region, 0, new_id, inserted)};\n  END IF;\nEND")
    delete = (f"BEGIN\n  {CLOCK_DECLARE}\n  {guard}\n    {CLOCK_READING}\n"
              f"    {_upsert(meta_db, db, table, old, region, 1, old_id, removed)};\n  END IF;\nEND")
    update = (f"BEGIN\n  {CLOCK_DECLARE}\n"
              f"  IF COALESCE({APPLYING}, 0) = 0 AND {changed_condition(columns)} THEN\n    {CLOCK_READING}\n"
              # Bytes, as the key hash sees them: a case-only change of a `_bin` key is a key change.
              f"    IF CAST({old_id} AS BINARY) = CAST({new_id} AS BINARY) THEN\n"
              f"      {_upsert(meta_db, db, table, new, region, 0, new_id, updated)};\n"
              f"    ELSE\n"
              f"      {_upsert(meta_db, db, table, old, region, 1, old_id, removed)};\n"
              f"      {_upsert(meta_db, db, table, new, region, 0, new_id, inserted)};\n"
              f"    END IF;\n  END IF;\nEND")
    bodies = {"INSERT": insert, "UPDATE": update, "DELETE": delete}
    return [Trigger(trigger_name(table, event), event, db, table, body) for event, body in bodies.items()]
