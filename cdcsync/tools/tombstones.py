"""`cdcsync tombstones purge`: delete row-clock tombstones every region has seen (docs/clocks.md, "Tombstone purge").

A tombstone `(db, tbl, pk_hash)` is purged only when, in EVERY region of the config:

- its `<meta_db>.row_clocks` row exists with `deleted = 1`,
- it holds the identical clock (the same non-zero counters and the same `hlc_us`),
- the data row is absent,
- and its `updated_at` is older than the minimum age;

and only when every region's database sink group has zero lag (unless the caller passes
`ignore_lag`). The minimum age is never below `cache_tombstone_ttl_s` (refused otherwise). The lag is measured AFTER the candidates are read, so every version a candidate's
clock counts was already in Kafka when the lag was found to be zero.

The purge then works per chunk of keys: it opens a transaction in every region, locks the data row
(a locking read, which also locks the gap of an absent key) and then the clock row in each, in the
same order as an application write and its trigger or as the database sink, re-checks the
conditions under those locks, deletes conditionally (`... AND deleted = 1 AND counters = ... AND
hlc_us = ...`), and commits in every region only once every region holds its locks. So a write or
an applied version of one of these keys can only follow the purge, in every region, and a
tombstone replaced in the meantime is kept. `dry_run` takes the same locks, counts, and rolls back.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import orjson
import pymysql

from cdcsync.tools.status import sink_group_lag
from common.metadata_tables import ROW_CLOCKS
from schemas.config import PipelineConfig
from schemas.identifiers import quote_name
from schemas.row_clock_key import key_kind, split_key

CHUNK_KEYS = 200
LOCK_WAIT_S = 10
NO_SUCH_TABLE = 1146

Clock = tuple[tuple[tuple[str, int], ...], int]   # (sorted non-zero counters, hlc_us): comparable


class PurgeRefused(RuntimeError):
    """The purge cannot run safely now (a sink group lags or its lag cannot be read), or the
    minimum age is below `cache_tombstone_ttl_s`."""


class PartialPurge(RuntimeError):
    """A chunk committed in some regions and failed in another: its tombstones remain there."""


@dataclass(slots=True)
class TablePurge:
    """Counts of one table. `tombstones`: distinct keys with a tombstone in any region;
    `candidates`: identical and old enough everywhere when read; `purged`: deleted (or, in a
    dry run, would be); `kept`: tombstones - purged."""

    db: str
    table: str
    tombstones: int = 0
    candidates: int = 0
    purged: int = 0

    @property
    def kept(self) -> int:
        return self.tombstones - self.purged

    @property
    def name(self) -> str:
        return f"{self.db}.{self.table}"


@dataclass(slots=True)
class PurgeReport:
    dry_run: bool
    min_age_s: float
    tables: list[TablePurge] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def clock_of(counters_text: str, hlc_us: int) -> Clock:
    """The comparable clock of a row_clocks row: the JSON text's formatting and zero entries ignored."""
    counters = orjson.loads(counters_text)
    return tuple(sorted((str(r), int(c)) for r, c in counters.items() if int(c) != 0)), int(hlc_us)


def _connect(config: PipelineConfig, region: str, *, autocommit: bool) -> pymysql.Connection:
    m = config.region(region).mysql
    return pymysql.connect(**m.connect_settings(), autocommit=autocommit)   # TLS settings included


# -- reading ----------------------------------------------------------------------------------------
def read_tombstones(conn: pymysql.Connection, meta_db: str, min_age_s: float,
                    table: tuple[str, str] | None = None) -> dict[tuple[str, str, bytes], tuple[str, Clock, bool]]:
    """(db, tbl, pk_hash) -> (pk text, clock, old enough) of a region's tombstones. The age is the
    server's: `updated_at` at least `min_age_s` before its NOW(6), compared as epoch times."""
    where, params = "deleted = 1", [int(min_age_s * 1_000_000)]   # µs; epoch arithmetic, so no DST ambiguity
    if table is not None:
        where += " AND db = %s AND tbl = %s"
        params += list(table)
    with conn.cursor() as cur:
        cur.execute(f"SELECT db, tbl, pk_hash, pk, counters, hlc_us, "
                    f"UNIX_TIMESTAMP(updated_at) * 1000000 <= UNIX_TIMESTAMP(NOW(6)) * 1000000 - %s "
                    f"FROM {quote_name(meta_db)}.{quote_name(ROW_CLOCKS)} WHERE {where}", params)
        return {(db, tbl, bytes(h)): (pk, clock_of(c, t), bool(old)) for db, tbl, h, pk, c, t, old in cur.fetchall()}


def candidates(per_region: list[dict[tuple[str, str, bytes], tuple[str, Clock, bool]]]
               ) -> dict[tuple[str, str, bytes], tuple[str, Clock]]:
    """The tombstones present, old enough and with the identical clock in every region."""
    first, *others = per_region
    found = {}
    for key, (pk, clock, old) in first.items():
        if old and all(key in o and o[key][1] == clock and o[key][2] for o in others):
            found[key] = (pk, clock)
    return found


def check_lag(config: PipelineConfig, *, timeout_s: float = 10.0) -> None:
    """Raise `PurgeRefused` unless every region's database sink group has zero lag."""
    problems = []
    for region in config.regions:
        lag = sink_group_lag(config, region, "db", timeout_s=timeout_s)
        if lag.error is not None:
            problems.append(f"{lag.group}: lag unknown ({lag.error})")
        elif lag.lag:
            problems.append(f"{lag.group}: {lag.lag} change(s) not applied yet")
    if problems:
        raise PurgeRefused("refusing to purge tombstones while a database sink may still apply versions they "
                           "guard against: " + "; ".join(problems) + " (wait for zero lag, see `cdcsync status`)")


# -- the locked re-check and delete -------------------------------------------------------------------
def _key_columns(cur: pymysql.cursors.Cursor, db: str, table: str) -> list[tuple[str, str]]:
    cur.execute("SELECT s.COLUMN_NAME, c.COLUMN_TYPE FROM information_schema.STATISTICS s "
                "JOIN information_schema.COLUMNS c ON c.TABLE_SCHEMA = s.TABLE_SCHEMA "
                "AND c.TABLE_NAME = s.TABLE_NAME AND c.COLUMN_NAME = s.COLUMN_NAME "
                "WHERE s.TABLE_SCHEMA = %s AND s.TABLE_NAME = %s AND s.INDEX_NAME = 'PRIMARY' ORDER BY s.SEQ_IN_INDEX",
                (db, table))
    return [(name, column_type) for name, column_type in cur.fetchall()]


def _row_present(cur: pymysql.cursors.Cursor, db: str, table: str, columns: list[tuple[str, str]], pk: str) -> bool:
    """Whether the data row of key text `pk` exists, with a locking read (which also locks the gap of
    an absent key, so no local insert of it can commit before the purge does). A key that no longer
    fits the table's key (schema drift) counts as present: the tombstone is kept. The comparison
    uses the columns' collations, so a row equal to the key only under a case-insensitive collation
    also counts as present: keeping a tombstone is always safe."""
    try:
        texts = split_key(pk)
    except ValueError:
        return True
    if len(texts) != len(columns):
        return True
    params: list[Any] = []
    for text, (_, column_type) in zip(texts, columns):
        kind, _ = key_kind(column_type)
        params.append(bytes.fromhex(text) if kind == "binary" else text)
    where = " AND ".join(f"{quote_name(name)} = %s" for name, _ in columns)
    cur.execute(f"SELECT COUNT(*) FROM {quote_name(db)}.{quote_name(table)} WHERE {where} FOR UPDATE", params)
    return bool(cur.fetchone()[0])


def _lock_region(cur: pymysql.cursors.Cursor, meta_db: str, db: str, table: str,
                 keys: list[tuple[bytes, str, Clock]]) -> dict[bytes, str]:
    """Lock the chunk's data rows, then its clock rows, in one region; pk_hash -> the stored
    counters text of each key that still qualifies here (tombstone, same clock, no row)."""
    columns = _key_columns(cur, db, table)   # none: the table is gone here, so no row can exist
    present = {h for h, pk, _ in keys if columns and _row_present(cur, db, table, columns, pk)}
    cur.execute(f"SELECT pk_hash, counters, hlc_us, deleted FROM {quote_name(meta_db)}.{quote_name(ROW_CLOCKS)} "
                f"WHERE db = %s AND tbl = %s AND pk_hash IN ({', '.join(['%s'] * len(keys))}) FOR UPDATE",
                [db, table, *(h for h, _, _ in keys)])
    stored = {bytes(h): (c, clock_of(c, t), int(d)) for h, c, t, d in cur.fetchall()}
    wanted = {h: clock for h, _, clock in keys}
    return {h: text for h, (text, clock, deleted) in stored.items()
            if deleted == 1 and clock == wanted[h] and h not in present}


def _chunks(items: list[Any], size: int) -> Iterator[list[Any]]:
    for i in range(0, len(items), size):
        yield items[i:i + size]


def _purge_chunk(conns: dict[str, pymysql.Connection], meta_db: str, db: str, table: str,
                 keys: list[tuple[bytes, str, Clock]], dry_run: bool) -> int:
    """Re-check and delete one chunk in every region, all locks held before any commit. Returns the
    number of keys purged (or that would be); any failure rolls every region back."""
    for conn in conns.values():
        conn.begin()
    committed: list[str] = []
    try:
        qualifying: dict[str, dict[bytes, str]] = {}
        for region, conn in conns.items():
            with conn.cursor() as cur:
                qualifying[region] = _lock_region(cur, meta_db, db, table, keys)
        purge = set.intersection(*(set(q) for q in qualifying.values()))
        if purge and not dry_run:
            for region, conn in conns.items():
                rows = [(h, qualifying[region][h], clock[1]) for h, _, clock in keys if h in purge]
                with conn.cursor() as cur:
                    cur.executemany(
                        f"DELETE FROM {quote_name(meta_db)}.{quote_name(ROW_CLOCKS)} WHERE db = %s AND tbl = %s "
                        f"AND pk_hash = %s AND deleted = 1 AND counters = %s AND hlc_us = %s",
                        [(db, table, h, text, hlc) for h, text, hlc in rows])
        for region, conn in conns.items():
            if dry_run:
                conn.rollback()
            else:
                conn.commit()
                committed.append(region)
        return len(purge)
    except Exception as err:
        for region, conn in conns.items():
            if region not in committed:
                try:
                    conn.rollback()
                except Exception:  # the connection is gone: the server rolls back itself
                    pass
        if committed:   # the tombstones are gone in some regions only: say where, loudly
            raise PartialPurge(f"{db}.{table}: purge committed in {', '.join(committed)} but failed in another "
                               f"region ({err}); the remaining tombstones of this chunk stay there") from err
        raise


def purge(config: PipelineConfig, *, min_age_s: float, table: tuple[str, str] | None = None, dry_run: bool = False,
          ignore_lag: bool = False, lag_timeout_s: float = 10.0) -> PurgeReport:
    """Purge the tombstones that every region has seen (module docstring). Raises `PurgeRefused`
    when a database sink group lags (unless `ignore_lag`)."""
    ttl = config.cache_tombstone_ttl_s
    if min_age_s < ttl:
        # A key re-inserted after its clock is purged restarts at {region: 1}; a cache tombstone with a
        # higher clock, still alive, would refuse that write until it expires (docs/clocks.md).
        raise PurgeRefused(f"--min-age {min_age_s:g}s is shorter than cache_tombstone_ttl_s ({ttl}s): a row "
                           f"re-inserted after its clock is purged would be refused by a cached tombstone that has "
                           f"not expired; use --min-age {ttl}s or more (or lower cache_tombstone_ttl_s)")
    report = PurgeReport(dry_run=dry_run, min_age_s=min_age_s)
    per_region = []
    for region in config.regions:
        with _connect(config, region, autocommit=True) as conn:
            per_region.append(read_tombstones(conn, config.meta_db, min_age_s, table))
    found = candidates(per_region)
    tables: dict[tuple[str, str], TablePurge] = {}
    for tombstones in per_region:
        for db, tbl, _ in tombstones:
            tables.setdefault((db, tbl), TablePurge(db, tbl))
    for (db, tbl) in tables:
        tables[(db, tbl)].tombstones = len({h for r in per_region for d, t, h in r if (d, t) == (db, tbl)})
    for db, tbl, _ in found:
        tables[(db, tbl)].candidates += 1
    report.tables = [tables[k] for k in sorted(tables)]
    if not found:
        return report
    if not ignore_lag:
        check_lag(config, timeout_s=lag_timeout_s)
    conns = {region: _connect(config, region, autocommit=False) for region in config.regions}
    try:
        for conn in conns.values():
            with conn.cursor() as cur:
                cur.execute("SET SESSION innodb_lock_wait_timeout = %s", (LOCK_WAIT_S,))
        for (db, tbl), entry in tables.items():
            keys = sorted((h, pk, clock) for (d, t, h), (pk, clock) in found.items() if (d, t) == (db, tbl))
            for chunk in _chunks(keys, CHUNK_KEYS):
                try:
                    entry.purged += _purge_chunk(conns, config.meta_db, db, tbl, chunk, dry_run)
                except pymysql.err.OperationalError as err:   # lock wait timeout, deadlock: try next run
                    report.warnings.append(f"{entry.name}: {len(chunk)} tombstone(s) skipped: {err.args[-1]}")
    finally:
        for conn in conns.values():
            conn.close()
    return report
