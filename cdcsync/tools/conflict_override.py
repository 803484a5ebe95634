"""`cdcsync conflicts resolve`: an operator settles a logged conflict with the values of their choice.

The chosen values (the record's local or remote version, or operator JSON; None = delete) are
written as a NEW LOCAL WRITE in the record's region: a normal session, without `@cdcsync_applying`,
so the clock triggers `cdcsync init` installed tick the row's clock on top of its current one. The
current clock already counts both versions of the conflict (the sink stored their merge), so the
new version dominates both, wins in every region without a conflict, and replicates like any
local write. Refused when the table has no clock triggers (the write would carry no clock), and
rolled back when the new clock does not dominate both versions' clocks.

In the same transaction an override record (`kind = "override"`, `overrides = <id>`) is logged:
`local` and `remote` copied from the settled record, `result` the row as written (read back) with
its new clock, `losers` the version it replaced.

When the record's region already holds the chosen values, a write there would change no byte: the
server logs no row event, the trigger does not tick, and nothing would reach a region that differs
(docs/clocks.md, "What counts as a write"). `resolve_anywhere` then reads the key in every region:
- every region holds the chosen values: nothing to repair, nothing written ("identical everywhere");
- otherwise the write goes to the first region (config order) whose row differs, as a local write
  of that region whose clock is the join of every region's clock of the key (read under that
  region's row lock) with that region's counter + 1, so it dominates every version any region
  holds and replaces it everywhere, without a conflict. The session sets `@cdcsync_applying` so the
  trigger stays out, and writes the row and then its clock row itself (exactly one change and one
  clock row: producers/clock_matching.py pairs them like a trigger's). The override record is
  logged in the record's region after that write commits (`overrides` is an id of that region's
  log); its `result.origin` names the region written. A write in another region between the read
  and the commit is concurrent with the override and resolved like any conflict.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace
from typing import Any, Literal

import orjson
import pymysql

from common.clock_triggers import APPLYING, CLOCK_EVENTS, trigger_name
from common.metadata_tables import ROW_CLOCKS
from common.mysql import connect
from common.snapshot_encoding import SnapshotEncoder
from common.table_catalog import is_mariadb, snapshot_columns
from consumers.db import conflict_log, dialect as db_dialect
from consumers.db.column_merge import local_write, parse_state, state_json
from consumers.db.column_planning import read_states
from consumers.db.local_versions import ClockRow, write_clocks
from consumers.db import session_setup
from consumers.db.params import param_converter
from schemas import key_fold
from schemas.config import PipelineConfig
from schemas.conflict_record import ConflictRecord, VersionImage
from schemas.identifiers import quote_name
from schemas.row_clock_key import key_hash, row_identity
from schemas.row_version import value_hash
from schemas.vclock import Order, VectorClock

Take = Literal["local", "remote", "json"]
_WINNER = {"local": "local", "remote": "remote", "json": "merged"}


class OverrideError(Exception):
    """The override cannot be done; nothing was written. The message names the problem."""


@dataclass(frozen=True, slots=True)
class Override:
    """What `resolve` did: the override record (with its id), or `record=None` when the row already
    held the chosen values and nothing was written."""

    settled: ConflictRecord
    record: ConflictRecord | None
    previous: VersionImage | None
    written_in: str | None = None    # the region whose row was written (None: nothing written)


def missing_clock_triggers(conn: pymysql.Connection, db: str, table: str) -> list[str]:
    """The names of the table's cdcsync clock triggers (common/clock_triggers.py) that do not exist."""
    wanted = [trigger_name(table, event) for event in CLOCK_EVENTS]
    with conn.cursor() as cur:
        cur.execute("SELECT TRIGGER_NAME FROM information_schema.TRIGGERS WHERE TRIGGER_SCHEMA = %s "
                    "AND EVENT_OBJECT_TABLE = %s", (db, table))
        present = {name for (name,) in cur.fetchall()}
    return [name for name in wanted if name not in present]


def chosen_values(record: ConflictRecord, take: Take, value: Any = None) -> dict[str, Any] | None:
    """The values `--take` selects (None = delete). For `json`, `value` is the decoded JSON: an
    object of column -> wire value, or None; key columns may be left out, but not changed."""
    if take == "local":
        if record.local is None:
            raise OverrideError(f"conflict {record.id} has no local version to take")
        return None if record.local.values is None else dict(record.local.values)
    if take == "remote":
        return None if record.remote.values is None else dict(record.remote.values)
    if value is None:
        return None
    if not isinstance(value, dict):
        raise OverrideError("--value must be a JSON object of column -> value, or null to delete the row")
    for column, key_value in record.pk.items():
        if column in value and value[column] != key_value:
            raise OverrideError(f"--value changes key column {column!r} ({key_value!r} -> {value[column]!r}); "
                                "an override writes the record's own row")
    return {**record.pk, **value}


def _clock_row(cur: pymysql.cursors.Cursor, meta_db: str, db: str, table: str, key: str,
               lock: str = " FOR UPDATE") -> tuple | None:
    cur.execute(f"SELECT counters, hlc_us, deleted, origin FROM {quote_name(meta_db)}.{quote_name(ROW_CLOCKS)} "
                f"WHERE db = %s AND tbl = %s AND pk_hash = %s{lock}", (db, table, key_hash(key)))
    return cur.fetchone()


def _clock(row: tuple | None) -> VectorClock:
    if row is None:
        return VectorClock()
    return VectorClock(counters=orjson.loads(row[0]), hlc_us=int(row[1]))


def _version(values: dict[str, Any] | None, row: tuple | None, origin: str) -> VersionImage:
    clock = _clock(row)
    return VersionImage(values=values, origin=row[3] if row else origin, counters=clock.counters,
                        hlc_us=clock.hlc_us, hash=value_hash(values))


def resolve(conn: pymysql.Connection, meta_db: str, region: str, record_id: int, take: Take,
            value: Any = None) -> Override:
    """Write the chosen values of conflict `record_id` as a local write in `region` (whose database
    `conn` is, autocommit) and log the override, in one transaction. Blocks on the row's lock."""
    record = conflict_log.get(conn, meta_db, record_id)
    if record is None:
        raise OverrideError(f"no conflict record {record_id} in region {region}")
    target = f"{record.db}.{record.table}"
    values = chosen_values(record, take, value)
    missing = missing_clock_triggers(conn, record.db, record.table)
    if missing:
        raise OverrideError(f"{target} has no cdcsync clock triggers ({', '.join(missing)} missing): the write "
                            f"would carry no clock; run `cdcsync init` for region {region} first")
    try:
        encoder = SnapshotEncoder(snapshot_columns(conn, record.db, record.table))
    except LookupError as err:
        raise OverrideError(f"{err} in region {region}") from None
    types = encoder.types
    unknown = [c for c in (values or {}) if c not in types]
    if unknown:
        raise OverrideError(f"{target} has no column {', '.join(map(repr, unknown))} in region {region}")
    key = _identity(conn, record, types)
    name = f"{quote_name(record.db)}.{quote_name(record.table)}"
    where = " AND ".join(f"{quote_name(c)} = %s" for c in record.pk)
    key_params = [_param(v, types[c]) for c, v in record.pk.items()]

    with conn.cursor() as cur:
        # Strict: a value the column cannot hold (operator JSON) is refused, never truncated.
        cur.execute(session_setup.OPERATOR_WRITE)
        conn.begin()
        try:
            cur.execute(f"SELECT {encoder.select_list} FROM {name} WHERE {where} FOR UPDATE", key_params)
            row = cur.fetchone()
            before = encoder.encode_row(row) if row is not None else None
            previous = _version(before, _clock_row(cur, meta_db, record.db, record.table, key), region)
            if _holds(before, values):
                conn.rollback()
                return Override(record, None, previous)
            _write(cur, name, where, key_params, record.pk, values, types, exists=before is not None)
            cur.execute(f"SELECT {encoder.select_list} FROM {name} WHERE {where}", key_params)
            row = cur.fetchone()
            after = encoder.encode_row(row) if row is not None else None
            result = _version(after, _clock_row(cur, meta_db, record.db, record.table, key), region)
            _check_dominates(result, record)
            cur.execute(db_dialect.gtid_state("mariadb" if is_mariadb(conn) else "mysql"))
            (gtid,) = cur.fetchone()
            override = ConflictRecord(
                kind="override", logged_at_us=time.time_ns() // 1000, region=region, db=record.db,
                table=record.table, pk=record.pk, strategy="override", winner=_WINNER[take],
                local=record.local, remote=record.remote, result=result, losers=[previous],
                local_gtid=gtid or None, overrides=record.id)
            new_id = conflict_log.insert(cur, meta_db, override, key=key)
            conn.commit()
        except BaseException:
            conn.rollback()
            raise
    return Override(record, override.model_copy(update={"id": new_id}), previous)


def resolve_anywhere(config: PipelineConfig, region: str, record_id: int, take: Take,
                     value: Any = None) -> Override:
    """`resolve` in `region`; when that region already holds the chosen values, write them in the
    first region whose row differs instead, with a clock that dominates every region's (module
    docstring). `written_in` is None when every region already holds them."""
    with _connect(config, region) as conn:
        done = resolve(conn, config.meta_db, region, record_id, take, value)
    if done.record is not None:
        return replace(done, written_in=region)
    record = done.settled
    values = chosen_values(record, take, value)
    differing = [other for other in config.regions
                 if other != region and not _region_holds(config, other, record, values)]
    if not differing:
        return done
    target = differing[0]
    with _connect(config, target) as conn:
        result, previous, gtid = _write_dominating(config, conn, target, record, values)
    override = ConflictRecord(
        kind="override", logged_at_us=time.time_ns() // 1000, region=region, db=record.db, table=record.table,
        pk=record.pk, strategy="override", winner=_WINNER[take], local=record.local, remote=record.remote,
        result=result, losers=[previous], local_gtid=gtid, overrides=record.id)
    try:
        with _connect(config, region) as conn, conn.cursor() as cur:
            key = _identity(conn, record, _encoder(conn, record, region).types)
            new_id = conflict_log.insert(cur, config.meta_db, override, key=key)
    except (pymysql.MySQLError, OverrideError) as err:
        raise OverrideError(f"the chosen values were written in {target} (they replicate from there), but the "
                            f"override record could not be logged in {region}: {err}") from None
    return Override(record, override.model_copy(update={"id": new_id}), previous, written_in=target)


def _connect(config: PipelineConfig, region: str) -> pymysql.Connection:
    return connect(config.region(region).mysql)


def _encoder(conn: pymysql.Connection, record: ConflictRecord, region: str) -> SnapshotEncoder:
    try:
        return SnapshotEncoder(snapshot_columns(conn, record.db, record.table))
    except LookupError as err:
        raise OverrideError(f"{err} in region {region}") from None


def _read(cur: pymysql.cursors.Cursor, encoder: SnapshotEncoder, record: ConflictRecord,
          lock: str = "") -> dict[str, Any] | None:
    types = encoder.types
    where = " AND ".join(f"{quote_name(c)} = %s" for c in record.pk)
    cur.execute(f"SELECT {encoder.select_list} FROM {quote_name(record.db)}.{quote_name(record.table)} "
                f"WHERE {where}{lock}", [_param(v, types[c]) for c, v in record.pk.items()])
    row = cur.fetchone()
    return encoder.encode_row(row) if row is not None else None


def _region_holds(config: PipelineConfig, region: str, record: ConflictRecord,
                  values: dict[str, Any] | None) -> bool:
    with _connect(config, region) as conn, conn.cursor() as cur:
        encoder = _encoder(conn, record, region)
        cur.execute(session_setup.READ)
        return _holds(_read(cur, encoder, record), values)


def _region_clock(config: PipelineConfig, region: str, record: ConflictRecord, key: str) -> VectorClock:
    with _connect(config, region) as conn, conn.cursor() as cur:
        return _clock(_clock_row(cur, config.meta_db, record.db, record.table, key, lock=""))


def _identity(conn: pymysql.Connection, record: ConflictRecord, types: dict[str, str]) -> str:
    """The record's key identity in this region (text folded by its collation): what pk_hash hashes."""
    try:
        fold = key_fold.folding(snapshot_columns(conn, record.db, record.table).key_collations(),
                                f"{record.db}.{record.table}")
    except key_fold.UnsupportedCollation as err:
        raise OverrideError(str(err)) from None
    with conn.cursor() as cur:
        key_fold.ensure(cur, fold)
    return row_identity(record.pk, types, fold)


def _write_dominating(config: PipelineConfig, conn: pymysql.Connection, target: str, record: ConflictRecord,
                      values: dict[str, Any] | None) -> tuple[VersionImage, VersionImage, str | None]:
    """Write `values` in `target` with the join of every region's clock + 1 for `target`, in one
    transaction of `target`. Returns (the version written, the one it replaced, target's GTID state)."""
    encoder = _encoder(conn, record, target)
    types = encoder.types
    unknown = [c for c in (values or {}) if c not in types]
    if unknown:
        raise OverrideError(f"{record.db}.{record.table} has no column {', '.join(map(repr, unknown))} "
                            f"in region {target}")
    key = _identity(conn, record, types)
    name = f"{quote_name(record.db)}.{quote_name(record.table)}"
    where = " AND ".join(f"{quote_name(c)} = %s" for c in record.pk)
    key_params = [_param(v, types[c]) for c, v in record.pk.items()]
    with conn.cursor() as cur:
        cur.execute(session_setup.OPERATOR_WRITE)
        cur.execute(f"SET {APPLYING} = 1")   # the clock row below is this write's, not a trigger's
        conn.begin()
        try:
            before = _read(cur, encoder, record, " FOR UPDATE")
            stored = _clock_row(cur, config.meta_db, record.db, record.table, key)
            previous = _version(before, stored, target)
            joined = _clock(stored)
            for other in config.regions:
                if other != target:
                    joined = joined.merge(_region_clock(config, other, record, key))
            clock = joined.increment(target, time.time_ns() // 1000)
            stamps = None
            if config.table(record.db, record.table).conflict_strategy == "column-lww":
                # Stamped as the triggers would stamp this write (the other regions merge it by them).
                text = read_states(cur, config.meta_db, record.db, record.table, [key]).get(key_hash(key))
                stamps = state_json(local_write(parse_state(text), before, values, (clock.hlc_us, target)))
            _write(cur, name, where, key_params, record.pk, values, types, exists=before is not None)
            write_clocks(cur, config.meta_db, [ClockRow(record.db, record.table, key, clock, values is None, target,
                                                        stamps=stamps)])
            after = _read(cur, encoder, record)
            result = _version(after, _clock_row(cur, config.meta_db, record.db, record.table, key), target)
            _check_dominates(result, record)
            cur.execute(db_dialect.gtid_state("mariadb" if is_mariadb(conn) else "mysql"))
            (gtid,) = cur.fetchone()
            conn.commit()
        except BaseException:
            conn.rollback()
            raise
        finally:
            cur.execute(f"SET {APPLYING} = NULL")
    return result, previous, gtid or None


def _param(value: Any, sql_type: str) -> Any:
    convert = param_converter(sql_type)
    return value if value is None or convert is None else convert(value)


def _holds(current: dict[str, Any] | None, values: dict[str, Any] | None) -> bool:
    """The row already holds the chosen values (a write would change nothing, so tick nothing)."""
    if current is None or values is None:
        return current is None and values is None
    return all(current.get(c) == v for c, v in values.items())


def _write(cur: pymysql.cursors.Cursor, name: str, where: str, key_params: list[Any], pk: dict[str, Any],
           values: dict[str, Any] | None, types: dict[str, str], *, exists: bool) -> None:
    if values is None:
        cur.execute(f"DELETE FROM {name} WHERE {where}", key_params)
        return
    if exists:
        columns = [c for c in values if c not in pk]
        cur.execute(f"UPDATE {name} SET {', '.join(f'{quote_name(c)} = %s' for c in columns)} WHERE {where}",
                    [_param(values[c], types[c]) for c in columns] + key_params)
        return
    columns = list(values)
    cur.execute(f"INSERT INTO {name} ({', '.join(map(quote_name, columns))}) "
                f"VALUES ({', '.join(['%s'] * len(columns))})", [_param(values[c], types[c]) for c in columns])


def _check_dominates(result: VersionImage, record: ConflictRecord) -> None:
    new = VectorClock(counters=result.counters, hlc_us=result.hlc_us)
    for side, version in (("local", record.local), ("remote", record.remote)):
        if version is None:
            continue
        clock = VectorClock(counters=version.counters, hlc_us=version.hlc_us)
        if new.compare(clock) is not Order.AFTER:
            raise OverrideError(
                f"the row's new clock {dict(new.counters)} does not dominate the {side} version's "
                f"{dict(version.counters)} (the row's stored clock does not count both versions of conflict "
                f"{record.id}); nothing written")
