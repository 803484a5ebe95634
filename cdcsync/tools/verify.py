"""`cdcsync verify`: do all regions' databases hold the same rows, and each cache its database's rows?

**What is compared.** Every replicated table: per region, the base tables its producer selects
(`producer.include` / `exclude`; a table without a primary key only with `no_primary_key =
"all_columns"`), or just `table`. A table selected in a region but absent there, and a primary key
or a column (name, wire type) that differs between regions, are differences of their own; the rows
are then compared on the columns every region has with the same type.

1. **Chunk checksums.** The key space is cut at every `chunk_rows`-th primary key of a reference
   region (the first compared region in config order) into `(-inf, b1)`, `[b1, b2)`, ...,
   `[bk, +inf)`. Every region checksums the same ranges, and the two open ends hold the rows only
   other regions have, below or above every key of the reference. Per range, each region computes
   in SQL `COUNT(*)` and the exact `SUM` of a 64-bit digest of every row (see `column_digest`).
   A keyless table is one range.
2. **Row diff.** Where a range's (count, sum) differ between regions, its rows are fetched from every
   region, encoded to wire values by `SnapshotEncoder` (so a DECIMAL, a DATETIME(6), NULL and ''
   compare exactly as the pipeline carries them) and compared by primary key: a row missing from
   some regions, extra in some, or with differing columns (each region's value). The row diff is
   the verdict: a range whose checksums differ while its wire values are equal (a JSON value stored
   with other spacing or key order, say) counts as a differing chunk with no row difference.
3. **Caches** (unless `check_cache=False`): every row of a region's database must be in that
   region's Redis under its `cache_key` with equal values (`decode_row`; the version fields `_v`
   and `_c` are not columns), and every live (non-tombstone) cache key of the table must be a row
   of that database. A table with `cache_ttl_s` is not checked for missing entries, since they
   expire.

**Consistency.** Each region is read inside its own consistent snapshot (`ConsistentSnapshot`), all
opened at the start, but not at the same instant in every region; the caches are read live while
the snapshots are read. Writes during a run, or changes still in Kafka or a sink's batch, show up as
differences: run it at quiescence (writes stopped, `cdcsync status` showing no lag).

Read-only. A database or Redis that cannot be reached, or a failed read, raises `VerifyError`
naming the region. Memory: one chunk of rows per region, plus the cache keys of one table per region
(to find the live cache keys that have no row).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import orjson
import pymysql
import redis

from common.snapshot_encoding import describe
from common.snapshot_reader import ConsistentSnapshot, SnapshotTable, snapshot_key_values
from common.table_catalog import ColumnInfo
from consumers.cache.sink import cache_key, decode_row, redis_client
from schemas import key_fold
from schemas.config import PipelineConfig, table_selected
from schemas.identifiers import quote_name

Key = tuple[Any, ...]
RowKind = Literal["missing", "extra", "differs"]
Progress = Callable[[str, int, int], None]
OCCURRENCES = "(occurrences)"   # pseudo-column: how many identical rows a keyless table holds

_TEXT_TYPES = {"char", "varchar", "tinytext", "text", "mediumtext", "longtext", "enum", "set"}


class VerifyError(Exception):
    """A region could not be read (connection, privileges, a failed query), or a bad argument."""

    def __init__(self, message: str, region: str | None = None) -> None:
        super().__init__(f"region {region}: {message}" if region else message)
        self.region = region


@dataclass(frozen=True, slots=True)
class RowDifference:
    """One primary key whose rows are not the same in every compared region.

    `kind`: `differs` (present everywhere, `columns` differ), `missing` (absent from `absent_from`
    while most regions have it; a tie goes to the first region in config order) or `extra` (present
    only in `present_in`, a minority). `columns`: column -> region -> wire value, for the columns
    whose values differ between the regions that have the row.
    """

    table: str
    key: dict[str, Any]
    kind: RowKind
    present_in: tuple[str, ...]
    absent_from: tuple[str, ...]
    columns: dict[str, dict[str, Any]]

    def to_json(self) -> dict[str, Any]:
        return {"table": self.table, "key": self.key, "kind": self.kind, "present_in": list(self.present_in),
                "absent_from": list(self.absent_from), "columns": self.columns}


@dataclass(frozen=True, slots=True)
class CacheDifference:
    """A region's cache disagreeing with its database on one row.

    `kind`: `missing` (a database row with no live cache entry), `extra` (a live cache entry with no
    database row) or `differs`; `columns`: column -> {"database": value, "cache": value}, a side
    left out where the column is absent. `row` is the database row (missing) or the cached one (extra).
    """

    table: str
    region: str
    key: str
    kind: RowKind
    columns: dict[str, dict[str, Any]] = field(default_factory=dict)
    row: dict[str, Any] | None = None

    def to_json(self) -> dict[str, Any]:
        return {"table": self.table, "region": self.region, "key": self.key, "kind": self.kind,
                "columns": self.columns, "row": self.row}


@dataclass(slots=True)
class TableResult:
    """What verify found for one table. Counts are exact; details are kept in `VerifyReport`."""

    table: str
    regions: tuple[str, ...] = ()            # regions whose rows were compared
    reference: str | None = None             # region whose keys cut the chunks
    rows: dict[str, int] = field(default_factory=dict)
    chunks: int = 0
    differing_chunks: int = 0                # checksums differed (then the rows were diffed)
    row_differences: int = 0
    cache_checked: tuple[str, ...] = ()
    cache_differences: int = 0
    problems: list[str] = field(default_factory=list)   # missing table, schema differences
    skipped: str | None = None               # why the table was not compared at all

    @property
    def ok(self) -> bool:
        return not (self.problems or self.row_differences or self.cache_differences)

    @property
    def matched(self) -> bool:
        """Compared and found equal. A skipped table (no primary key, not replicated) is ok, since
        nothing is wrong with it, but never counted as matched: its rows were not compared."""
        return self.ok and self.skipped is None

    def to_json(self) -> dict[str, Any]:
        return {"table": self.table, "ok": self.ok, "matched": self.matched, "regions": list(self.regions), "reference": self.reference,
                "rows": self.rows, "chunks": self.chunks, "differing_chunks": self.differing_chunks,
                "row_differences": self.row_differences, "cache_checked": list(self.cache_checked),
                "cache_differences": self.cache_differences, "problems": self.problems, "skipped": self.skipped}


@dataclass(slots=True)
class VerifyReport:
    """Every table's result, and the first `max_details` row and cache differences in detail."""

    regions: tuple[str, ...]
    chunk_rows: int
    check_cache: bool
    max_details: int
    tables: list[TableResult] = field(default_factory=list)
    row_details: list[RowDifference] = field(default_factory=list)
    cache_details: list[CacheDifference] = field(default_factory=list)
    missing_from_cache: dict[str, int] = field(default_factory=dict)   # region -> database rows with no cache entry

    @property
    def ok(self) -> bool:
        return all(t.ok for t in self.tables)

    @property
    def row_differences(self) -> int:
        return sum(t.row_differences for t in self.tables)

    @property
    def cache_differences(self) -> int:
        return sum(t.cache_differences for t in self.tables)

    def add_row_difference(self, diff: RowDifference) -> None:
        if len(self.row_details) < self.max_details:
            self.row_details.append(diff)

    def add_cache_difference(self, diff: CacheDifference) -> None:
        if diff.kind == "missing":
            self.missing_from_cache[diff.region] = self.missing_from_cache.get(diff.region, 0) + 1
        if len(self.cache_details) < self.max_details:
            self.cache_details.append(diff)

    def to_json(self) -> dict[str, Any]:
        return {"ok": self.ok, "regions": list(self.regions), "chunk_rows": self.chunk_rows,
                "check_cache": self.check_cache, "row_differences": self.row_differences,
                "cache_differences": self.cache_differences, "missing_from_cache": dict(self.missing_from_cache),
                "tables": [t.to_json() for t in self.tables],
                "row_details": [d.to_json() for d in self.row_details],
                "cache_details": [d.to_json() for d in self.cache_details]}


# -- pure helpers ----------------------------------------------------------------------------------------------------

def column_digest(column: ColumnInfo, is_json: bool, flavor: str = "mariadb") -> str:
    """SQL for a 32-hex-digit digest of one column's value, `'N'` for NULL.

    The value is taken in the form the snapshot reads it (`SnapshotEncoder`'s expression: temporal
    values as their text, FLOAT widened to DOUBLE, BIT as an integer), text converted to utf8mb4 so
    two regions' charsets compare by character, MariaDB's JSON text compacted. Each column is hashed
    on its own: NULL (`N`) and '' (the MD5 of nothing) differ, no separator can be ambiguous, and no
    concatenation of a wide row can exceed `max_allowed_packet` (CONCAT then returns NULL).

    Why MD5 and SUM rather than `BIT_XOR(CRC32(CONCAT_WS(...)))`: CONCAT_WS skips NULLs (NULL vs ''
    and shifted columns collide), XOR cancels two equal digests (duplicate rows of a keyless table),
    and CRC32 is linear, so the same bit change in two rows of equal length cancels out (two rows
    whose flag both went from 0 to 1). `row_digest` keeps 64 bits of an MD5 of the column digests;
    a chunk's checksum is COUNT(*) and their exact SUM (DECIMAL), so two different chunks collide
    with a probability of about 2^-64.
    """
    _, expression, _ = describe(column, is_json)
    if is_json or column.data_type == "json":
        if flavor == "mariadb":
            expression = f"JSON_COMPACT({expression})"
    elif column.data_type in _TEXT_TYPES:
        expression = f"CONVERT({expression} USING utf8mb4)"
    return f"IFNULL(MD5({expression}), 'N')"


def row_digest(column_digests: Sequence[str]) -> str:
    """SQL for the 64-bit unsigned digest of a row, from its columns' `column_digest`s."""
    return f"CAST(CONV(LEFT(MD5(CONCAT({', '.join(column_digests)})), 16), 16, 10) AS UNSIGNED)"


def checksum_sql(source: str, column_digests: Sequence[str], condition: str) -> str:
    """`(COUNT(*), SUM(row digest))` of the rows of `source` matching `condition`."""
    return f"SELECT COUNT(*), COALESCE(SUM({row_digest(column_digests)}), 0) FROM {source} WHERE {condition}"


def _compare(key: Sequence[str], values: Key, strict: str, last: str) -> str:
    """`key <op> values` for a composite key, as ORs of equal prefixes (a form range scans can use)."""
    terms = []
    for i, column in enumerate(key):
        op = last if i == len(key) - 1 else strict
        terms.append(" AND ".join([*(f"{quote_name(c)} = %s" for c in key[:i]), f"{quote_name(column)} {op} %s"]))
    return " OR ".join(f"({t})" for t in terms)


def _compare_params(values: Key) -> list[Any]:
    params: list[Any] = []
    for i in range(len(values)):
        params.extend(values[: i + 1])
    return params


def range_condition(key: Sequence[str], lo: Key | None, hi: Key | None) -> tuple[str, list[Any]]:
    """SQL condition and parameters for `lo <= key < hi` (None: unbounded on that side)."""
    parts: list[str] = []
    params: list[Any] = []
    if lo is not None:
        parts.append(_compare(key, lo, ">", ">="))
        params.extend(_compare_params(lo))
    if hi is not None:
        parts.append(_compare(key, hi, "<", "<"))
        params.extend(_compare_params(hi))
    return (" AND ".join(f"({p})" for p in parts) or "TRUE"), params


def chunk_ranges(boundaries: Sequence[Key]) -> list[tuple[Key | None, Key | None]]:
    """`[(None, b1), (b1, b2), ..., (bk, None)]`: ranges covering every key, whoever holds it."""
    starts: list[Key | None] = [None, *boundaries]
    ends: list[Key | None] = [*boundaries, None]
    return list(zip(starts, ends))


def row_key(row: dict[str, Any], key_columns: Sequence[str], fold: dict[str, str] | None = None) -> str:
    """The canonical primary key of a wire row (as the topic key and the cache key write it): text
    key columns whose collation folds (`fold`: column -> collation) by their fold, so the regions'
    rows pair up as the server compares keys (`'bob'` with `'BOB'`, whose values then differ)."""
    pk = {c: row[c] for c in key_columns}
    return orjson.dumps(key_fold.key_values(pk, key_fold.fold_pk(pk, fold) if fold else None)).decode()


ChunkRows = dict[str, tuple[dict[str, Any], int]]   # canonical key -> (wire row, how many such rows)


def row_kind(present_in: Sequence[str], absent_from: Sequence[str], regions: Sequence[str]) -> RowKind:
    """`differs` when no region lacks the row; else `missing` where most regions have it, `extra` where
    a minority has it (a tie: `missing` if the first of `regions` has it)."""
    if not absent_from:
        return "differs"
    if len(present_in) != len(absent_from):
        return "missing" if len(present_in) > len(absent_from) else "extra"
    return "missing" if regions[0] in present_in else "extra"


def diff_rows(table: str, rows: dict[str, ChunkRows], regions: Sequence[str], columns: Sequence[str],
              key_columns: Sequence[str]) -> list[RowDifference]:
    """The differences between the regions' rows of one chunk, in first-seen key order."""
    keys: dict[str, None] = {}
    for region in regions:
        keys.update(dict.fromkeys(rows[region]))
    result = []
    for key in keys:
        present = tuple(r for r in regions if key in rows[r])
        absent = tuple(r for r in regions if key not in rows[r])
        differing: dict[str, dict[str, Any]] = {}
        for column in columns:
            values = {r: rows[r][key][0].get(column) for r in present}
            if any(v != values[present[0]] for v in values.values()):
                differing[column] = values
        counts = {r: rows[r][key][1] for r in present}
        if len(set(counts.values())) > 1:
            differing[OCCURRENCES] = counts
        if absent or differing:
            first = rows[present[0]][key][0]
            key_values = {c: first.get(c) for c in key_columns}
            result.append(RowDifference(table, key_values, row_kind(present, absent, regions), present, absent,
                                        differing))
    return result


def cache_mismatch(db_row: dict[str, Any], cached: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Column -> {"database": v, "cache": v} for every column whose values differ (empty: equal)."""
    result: dict[str, dict[str, Any]] = {}
    for column in [*db_row, *(c for c in cached if c not in db_row)]:
        if column in db_row and column in cached and db_row[column] == cached[column]:
            continue
        sides = {}
        if column in db_row:
            sides["database"] = db_row[column]
        if column in cached:
            sides["cache"] = cached[column]
        result[column] = sides
    return result


def glob_escape(text: str) -> str:
    """`text` matched literally by a Redis SCAN MATCH pattern."""
    return "".join("\\" + ch if ch in "*?[]\\^" else ch for ch in text)


def schema_problems(types: dict[str, dict[str, str]], regions: Sequence[str]) -> tuple[list[str], list[str]]:
    """(problems, common columns): `types` is region -> column -> wire type. The common columns are
    those every region has with the same type, in the first region's order."""
    problems = []
    names: dict[str, None] = {}
    for region in regions:
        names.update(dict.fromkeys(types[region]))
    common = []
    for name in names:
        found = {r: types[r].get(name) for r in regions}
        if len(set(found.values())) == 1:
            common.append(name)
        elif None in found.values():
            problems.append(f"column {name}: only in {', '.join(r for r in regions if found[r] is not None)}")
        else:
            problems.append(f"column {name}: " + ", ".join(f"{found[r]} in {r}" for r in regions))
    return problems, common


# -- reading the regions ---------------------------------------------------------------------------------------------

@contextlib.contextmanager
def _reading(region: str, what: str) -> Iterator[None]:
    try:
        yield
    except (pymysql.MySQLError, redis.RedisError, OSError) as err:
        raise VerifyError(f"{what}: {err}", region) from err


@dataclass(slots=True)
class _Region:
    name: str
    flavor: str
    snapshot: ConsistentSnapshot
    cache: redis.Redis | None


def _open(stack: contextlib.ExitStack, config: PipelineConfig, name: str, check_cache: bool) -> _Region:
    cfg = config.region(name)
    mysql, cache = cfg.mysql.reader(), None
    with _reading(name, f"MySQL {mysql.host}:{mysql.port}"):
        snapshot = stack.enter_context(ConsistentSnapshot(mysql, config.meta_db))
    if check_cache:
        with _reading(name, f"Redis {cfg.redis.host}:{cfg.redis.port}"):
            cache = redis_client(cfg.redis)
            stack.callback(cache.close)
            cache.ping()
    return _Region(name, mysql.flavor, snapshot, cache)


@dataclass(slots=True)
class _Plan:
    name: str
    tables: dict[str, SnapshotTable]     # compared region -> its table, in config order
    result: TableResult


def _plan(config: PipelineConfig, regions: dict[str, _Region], only: str | None) -> list[_Plan]:
    listed: dict[str, dict[str, SnapshotTable]] = {}
    for name, region in regions.items():
        with _reading(name, "listing tables"):
            try:
                found = region.snapshot.tables(config.region(name).producer, only=only)
            except (ValueError, LookupError) as err:   # an unsupported column type; a table dropped meanwhile
                raise VerifyError(f"listing tables: {err}", name) from err
        for t in found:
            listed.setdefault(f"{t.db}.{t.table}", {})[name] = t
    if only is not None and only not in listed:
        raise VerifyError(f"table {only!r} is not a base table in any region")
    plans = []
    for name in sorted(listed):
        db, table = name.split(".", 1)
        result = TableResult(name)
        here = listed[name]
        for region in regions:
            if region not in here and (only or table_selected(config.region(region).producer, db, table)):
                result.problems.append(f"missing in {region}")
        compared = {r: t for r, t in here.items()
                    if t.has_primary_key or config.region(r).producer.no_primary_key == "all_columns"}
        if not compared:
            result.skipped = "no primary key (not replicated: producer.no_primary_key = 'skip')"
        plans.append(_Plan(name, compared, result))
    return plans


def _boundaries(snapshot: ConsistentSnapshot, t: SnapshotTable, chunk_rows: int) -> list[Key]:
    """Every `chunk_rows`-th primary key of one region, the first excluded."""
    columns = ", ".join(quote_name(c) for c in t.key_columns)
    source = f"{quote_name(t.db)}.{quote_name(t.table)}"
    found: list[Key] = []
    while True:
        condition, params = range_condition(t.key_columns, found[-1] if found else None, None)
        rows = snapshot.query(f"SELECT {columns} FROM {source} WHERE {condition} ORDER BY {columns} "
                              f"LIMIT 1 OFFSET {chunk_rows}", params)
        if not rows:
            return found
        found.append(tuple(rows[0]))


def _fetch(snapshot: ConsistentSnapshot, t: SnapshotTable, condition: str, params: list[Any]) -> ChunkRows:
    order = f" ORDER BY {', '.join(quote_name(c) for c in t.key_columns)}" if t.has_primary_key else ""
    sql = f"SELECT {t.encoder.select_list} FROM {quote_name(t.db)}.{quote_name(t.table)} WHERE {condition}{order}"
    rows: ChunkRows = {}
    for raw in snapshot.query(sql, params):
        row = t.encoder.encode_row(raw)
        key = row_key(row, t.key_columns, t.fold)
        seen = rows.get(key)
        rows[key] = (row, seen[1] + 1 if seen else 1)
    return rows


class _CacheCheck:
    """One region's cache against one table's database rows, chunk by chunk, then the leftovers."""

    def __init__(self, config: PipelineConfig, region: _Region, t: SnapshotTable, report: VerifyReport,
                 result: TableResult) -> None:
        assert region.cache is not None
        self.client = region.cache
        self.region = region.name
        self.prefix = config.prefix
        self.table = t
        self.expires = config.table(t.db, t.table).cache_ttl_s is not None
        self.report = report
        self.result = result
        self.seen: set[bytes] = set()

    def _differ(self, kind: RowKind, key: str, columns: dict[str, dict[str, Any]] | None = None,
                row: dict[str, Any] | None = None) -> None:
        self.result.cache_differences += 1
        self.report.add_cache_difference(CacheDifference(self.result.table, self.region, key, kind, columns or {}, row))

    def chunk(self, rows: ChunkRows) -> None:
        t = self.table
        keys = [cache_key(self.prefix, t.db, t.table, snapshot_key_values(t, row)) for row, _ in rows.values()]
        self.seen.update(k.encode() for k in keys)
        with _reading(self.region, "reading the cache"):
            pipe = self.client.pipeline(transaction=False)
            for key in keys:
                pipe.hgetall(key)
            stored = pipe.execute()
        for key, (row, _), fields in zip(keys, rows.values(), stored):
            cached = decode_row(fields)
            if cached is None:
                if not self.expires:
                    self._differ("missing", key, row=row)
            elif mismatch := cache_mismatch(row, cached):
                self._differ("differs", key, mismatch)

    def leftovers(self) -> None:
        """Live cache keys of the table that no database row of the region accounted for."""
        t = self.table
        pattern = f"{glob_escape(self.prefix)}:{glob_escape(t.db)}.{glob_escape(t.table)}:*"
        with _reading(self.region, "scanning the cache"):
            batch = []
            for key in self.client.scan_iter(match=pattern, count=1000):
                if key not in self.seen:
                    batch.append(key)
                if len(batch) >= 500:
                    self._extra(batch)
                    batch = []
            self._extra(batch)

    def _extra(self, keys: list[bytes]) -> None:
        if not keys:
            return
        pipe = self.client.pipeline(transaction=False)
        for key in keys:
            pipe.hgetall(key)
        for key, fields in zip(keys, pipe.execute()):
            cached = decode_row(fields)
            if cached is not None:   # a tombstone, or a key expired meanwhile, is absent
                self._differ("extra", key.decode(errors="replace"), row=cached)


def _verify_table(config: PipelineConfig, regions: dict[str, _Region], plan: _Plan, report: VerifyReport,
                  chunk_rows: int, progress: Progress | None) -> None:
    result, tables = plan.result, plan.tables
    names = tuple(tables)
    result.regions = names
    keys = {r: t.key_columns for r, t in tables.items()}
    if len(set(keys.values())) > 1:
        result.problems.append("primary key differs: " + ", ".join(f"({', '.join(k)}) in {r}" for r, k in keys.items()))
        return
    problems, common = schema_problems({r: t.encoder.types for r, t in tables.items()}, names)
    result.problems.extend(problems)
    if not common:
        return
    reference = names[0]
    result.reference = reference
    ref = tables[reference]
    with _reading(reference, f"reading {plan.name}"):
        bounds = _boundaries(regions[reference].snapshot, ref, chunk_rows) if ref.has_primary_key else []
    ranges = chunk_ranges(bounds)
    result.chunks = len(ranges)
    digests = {}
    for r, t in tables.items():
        assert t.columns is not None
        info = {c.name: c for c in t.columns.columns}
        digests[r] = [column_digest(info[c], c in t.columns.json_columns, regions[r].flavor) for c in common]
    caches = [_CacheCheck(config, regions[r], t, report, result) for r, t in tables.items()
              if regions[r].cache is not None]
    result.cache_checked = tuple(c.region for c in caches)
    result.rows = dict.fromkeys(names, 0)
    for done, (lo, hi) in enumerate(ranges, 1):
        condition, params = range_condition(ref.key_columns, lo, hi)
        sums = {}
        for r, t in tables.items():
            with _reading(r, f"checksumming {plan.name}"):
                count, total = regions[r].snapshot.query(
                    checksum_sql(f"{quote_name(t.db)}.{quote_name(t.table)}", digests[r], condition), params)[0]
            sums[r] = (int(count), int(total))
            result.rows[r] += int(count)
        differs = len(set(sums.values())) > 1
        rows: dict[str, ChunkRows] = {}
        if differs or caches:
            for r, t in tables.items():
                with _reading(r, f"reading {plan.name}"):
                    rows[r] = _fetch(regions[r].snapshot, t, condition, params)
        if differs:
            result.differing_chunks += 1
            for diff in diff_rows(plan.name, rows, names, common, ref.key_columns):
                result.row_differences += 1
                report.add_row_difference(diff)
        for check in caches:
            check.chunk(rows[check.region])
        if progress is not None:
            progress(plan.name, done, len(ranges))
    for check in caches:
        check.leftovers()


def verify(config: PipelineConfig, *, table: str | None = None, chunk_rows: int = 1000, check_cache: bool = True,
           max_details: int = 20, progress: Progress | None = None) -> VerifyReport:
    """Compare every replicated table (or only `db.table`) across all regions, and each region's cache
    with its database (unless `check_cache` is False). See the module docstring for what, how and
    when. `progress(table, chunks_done, chunks_total)` is called after every chunk.

    Raises VerifyError when a region cannot be read or `table` is no base table in any region.
    """
    if chunk_rows < 1:
        raise VerifyError("chunk_rows must be at least 1")
    if table is not None and table.count(".") != 1:
        raise VerifyError(f"table {table!r} must be `db.table`")
    report = VerifyReport(tuple(config.regions), chunk_rows, check_cache, max_details)
    with contextlib.ExitStack() as stack:
        regions = {name: _open(stack, config, name, check_cache) for name in config.regions}
        for plan in _plan(config, regions, table):
            report.tables.append(plan.result)
            if plan.result.skipped is None:
                _verify_table(config, regions, plan, report, chunk_rows, progress)
    return report
