"""`cdcsync conflicts list|show|stats|resolve`: the regions' conflict logs (consumers/db/conflict_log.py)."""

from __future__ import annotations

import signal
import threading
import time
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import orjson
import pymysql
import typer
from rich.console import Console
from rich.table import Table

from cdcsync.commands.common import ConfigOption, err_console, fail, load
from schemas.config import ConfigError, PipelineConfig

app = typer.Typer(no_args_is_help=True, help="The conflict log `<meta_db>.conflict_log` of each region's database.")

JsonOption = typer.Option(False, "--json", help="One JSON object per line instead of a table.")
RegionsOption = typer.Option(None, "--region", "-r", help="Only this region (repeatable); default: every region.")
TableOption = typer.Option(None, "--table", "-t", help="Only this table, db.table.")
SinceOption = typer.Option(None, "--since", help="From this time on: ISO (UTC unless an offset is given) or "
                                                 "a duration ago (30s, 10m, 2h, 1d).")
UntilOption = typer.Option(None, "--until", help="Before this time: ISO or a duration ago.")
OneRegionOption = typer.Option(..., "--region", "-r", envvar="CDCSYNC_REGION",
                               help="The region whose conflict log holds the record.")


class RegionError(Exception):
    """One region cannot answer (the others still do)."""


def _regions(cfg: PipelineConfig, regions: list[str] | None) -> list[str]:
    for region in regions or []:
        try:
            cfg.region(region)
        except ConfigError as err:
            fail(str(err), 2)
    return list(regions) if regions else list(cfg.regions)


def _connect(cfg: PipelineConfig, region: str) -> pymysql.Connection:
    m = cfg.region(region).mysql
    return pymysql.connect(**m.connect_settings(), autocommit=True)   # TLS settings included


def _key_columns(conn: pymysql.Connection, table: str) -> list[tuple[str, str]]:
    """The table's primary key as (column, wire type) in key order, from this region's information_schema."""
    from common.snapshot_encoding import describe
    from common.table_catalog import snapshot_columns

    db, _, name = table.partition(".")
    info = snapshot_columns(conn, db, name)   # LookupError when the table does not exist
    by_name = {c.name: c for c in info.columns}
    if not info.primary_key:
        raise LookupError(f"table {table} has no primary key")
    return [(c, describe(by_name[c])[0]) for c in info.primary_key]


def _filters(table: str | None, key: str | None, since: str | None, until: str | None) -> dict[str, Any]:
    from cdcsync.tools.conflict_filters import FilterError, parse_time_us

    if table is not None and (table.count(".") < 1 or table.startswith(".") or table.endswith(".")):
        fail(f"--table {table!r}: expected db.table", 2)
    if key is not None and table is None:
        fail("--key needs --table (the key is read with the table's key columns)", 2)
    now_us = time.time_ns() // 1000
    times: dict[str, int | None] = {}
    for flag, text in (("--since", since), ("--until", until)):
        try:
            times[flag] = None if text is None else parse_time_us(text, now_us)
        except FilterError as err:
            fail(f"{flag} {err}", 2)
    return {"table": table, "since_us": times["--since"], "until_us": times["--until"]}


def _region_key(conn: pymysql.Connection, region: str, table: str, key: str | None) -> str | None:
    """`--key` as this region's canonical key text of `table`."""
    from cdcsync.tools.conflict_filters import FilterError, canonical_key

    if key is None:
        return None
    from common.table_catalog import snapshot_columns
    from schemas import key_fold

    try:
        db, _, name = table.partition(".")
        fold = key_fold.folding(snapshot_columns(conn, db, name).key_collations(), table)
        with conn.cursor() as cur:
            key_fold.ensure(cur, fold)
        return canonical_key(key, _key_columns(conn, table), fold)
    except (FilterError, key_fold.UnsupportedCollation) as err:
        fail(f"--key: {err}", 2)
    except LookupError as err:
        raise RegionError(f"cannot read the key of {table}: {err}") from None
    raise AssertionError("unreachable")


def _time(us: int | None) -> str:
    if us is None:
        return "-"
    return datetime.fromtimestamp(us / 1e6, tz=timezone.utc).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]


def _clock(counters: dict[str, int]) -> str:
    return " ".join(f"{r}:{n}" for r, n in sorted(counters.items())) or "(empty)"


def _key(pk: dict[str, Any]) -> str:
    return ",".join(f"{c}={v}" for c, v in pk.items())


def _side(version) -> str:
    if version is None:
        return "-"
    return f"{version.origin} {_clock(version.counters)}" + (" (deleted)" if version.values is None else "")


def _line(record) -> str:
    return (f"{record.region} #{record.id} {_time(record.logged_at_us)} {record.kind} {record.db}.{record.table} "
            f"{_key(record.pk)} {record.strategy} winner={record.winner} local=[{_side(record.local)}] "
            f"remote=[{_side(record.remote)}] losers={len(record.losers)}")


def _json(record) -> str:
    return orjson.dumps(record.model_dump(mode="json")).decode()


def _source(record) -> str:
    if record.source_topic is None:
        return "-"
    return f"{record.source_topic}[{record.source_partition}]@{record.source_offset}"


@contextmanager
def _stop_on_signals() -> Iterator[threading.Event]:
    """An event set by SIGINT or SIGTERM while the block runs (the handlers are restored after)."""
    stop = threading.Event()
    previous = {sig: signal.signal(sig, lambda *_: stop.set()) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield stop
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _query_regions(cfg: PipelineConfig, regions: list[str], filters: dict[str, Any], key: str | None,
                   limit: int | None) -> tuple[list, list[str]]:
    """Records of every region (sorted by time), and an error line per region that could not be read."""
    from consumers.db import conflict_log

    found, errors = [], []
    for region in regions:
        try:
            with _connect(cfg, region) as conn:
                region_key = _region_key(conn, region, filters["table"], key) if key else None
                found += conflict_log.query(conn, cfg.meta_db, key=region_key, limit=limit, latest=True, **filters)
        except (pymysql.MySQLError, RegionError) as err:
            errors.append(f"region {region}: {err}")
    found.sort(key=lambda r: (r.logged_at_us, r.region, r.id))
    return found, errors


@app.command("list")
def list_records(config: Path = ConfigOption, regions: list[str] = RegionsOption, table: str = TableOption,
                 key: str = typer.Option(None, "--key", "-k", help="Only this row: a JSON list of the key's values "
                                                                   "(`[42]`) or `col=value,...`; needs --table."),
                 since: str = SinceOption, until: str = UntilOption, as_json: bool = JsonOption,
                 limit: int = typer.Option(None, "--limit", "-n", min=1, help="Only the N most recent per region."),
                 follow: bool = typer.Option(False, "--follow", "-f", help="Then print new records as they are "
                                                                            "logged, until Ctrl-C or SIGTERM."),
                 interval: float = typer.Option(1.0, "--interval", min=0.05, help="--follow: seconds between polls."),
                 follow_timeout: float = typer.Option(None, "--follow-timeout", min=0,
                                                      help="--follow: stop after this many seconds.")) -> None:
    """List conflict records of every region (or --region), oldest first, filtered by table, key and time."""
    cfg = load(config)
    chosen = _regions(cfg, regions)
    filters = _filters(table, key, since, until)
    if follow:
        errors = _follow(cfg, chosen, filters, key, limit, as_json, interval, follow_timeout)
        for line in errors:
            err_console.print(f"[red]error:[/red] {line}", highlight=False)
        if errors:
            raise typer.Exit(1)
        return
    records, errors = _query_regions(cfg, chosen, filters, key, limit)
    for line in errors:
        err_console.print(f"[red]error:[/red] {line}", highlight=False)
    if as_json:
        for record in records:
            typer.echo(_json(record))
    else:
        out = Table("region", "id", "logged (UTC)", "kind", "table", "key", "strategy", "winner", "local", "remote",
                    "losers", title="conflict log")
        for r in records:
            out.add_row(r.region, str(r.id), _time(r.logged_at_us), r.kind if r.overrides is None
                        else f"override of {r.overrides}", f"{r.db}.{r.table}", _key(r.pk), r.strategy, r.winner,
                        _side(r.local), _side(r.remote), str(len(r.losers)))
        Console(width=200).print(out)
        err_console.print(f"{len(records)} records from {len(chosen) - len(errors)} of {len(chosen)} regions")
    if errors:
        raise typer.Exit(1)


SETTLE_S = 10.0   # a sink's transaction commits within this long after taking its conflict_log id


class _Tail:
    """Tails one region's conflict log by id. Ids are taken at INSERT but become visible at COMMIT, so
    a lower id can appear after a higher one: ids above `floor` (the newest id seen SETTLE_S ago) are
    queried again each poll, and the ones already printed are remembered."""

    def __init__(self, newest: int) -> None:
        self.floor = newest
        self.seen: set[int] = set()
        self.marks: deque[tuple[float, int]] = deque()

    def poll(self, conn: pymysql.Connection, meta_db: str, key: str | None, filters: dict[str, Any]) -> list:
        from consumers.db import conflict_log

        now = time.monotonic()
        newest = _newest_id(conn, meta_db)
        new = [r for r in conflict_log.query(conn, meta_db, key=key, after_id=self.floor, **filters)
               if r.id not in self.seen]
        self.seen.update(r.id for r in new)
        self.marks.append((now, newest))
        while self.marks and self.marks[0][0] <= now - SETTLE_S:
            self.floor = max(self.floor, self.marks.popleft()[1])
        self.seen = {i for i in self.seen if i > self.floor}
        return new


def _newest_id(conn: pymysql.Connection, meta_db: str) -> int:
    from schemas.identifiers import quote_name
    from common.metadata_tables import CONFLICT_LOG

    with conn.cursor() as cur:
        cur.execute(f"SELECT COALESCE(MAX(id), 0) FROM {quote_name(meta_db)}.{quote_name(CONFLICT_LOG)}")
        return int(cur.fetchone()[0])


def _follow(cfg: PipelineConfig, regions: list[str], filters: dict[str, Any], key: str | None, limit: int | None,
            as_json: bool, interval: float, timeout: float | None) -> list[str]:
    """Print the matching records, then poll every region for new ones until SIGINT, SIGTERM or the
    timeout. Returns an error line per region that could not be followed."""
    from consumers.db import conflict_log

    errors: list[str] = []
    tails: dict[str, _Tail] = {}
    keys: dict[str, str | None] = {}
    batch: list = []
    with _connect_all(cfg, regions, errors) as conns:
        for region, conn in list(conns.items()):
            try:
                newest = _newest_id(conn, cfg.meta_db)
                keys[region] = _region_key(conn, region, filters["table"], key) if key else None
                batch += [r for r in conflict_log.query(conn, cfg.meta_db, key=keys[region], limit=limit,
                                                        latest=True, **filters) if r.id <= newest]
                tails[region] = _Tail(newest)
            except (pymysql.MySQLError, RegionError) as err:
                errors.append(f"region {region}: {err}")
                del conns[region]
        deadline = None if timeout is None else time.monotonic() + timeout
        with _stop_on_signals() as stop:
            while True:
                batch.sort(key=lambda r: (r.logged_at_us, r.region, r.id))
                for record in batch:
                    typer.echo(_json(record) if as_json else _line(record))
                wait = interval if deadline is None else max(0.0, min(interval, deadline - time.monotonic()))
                if stop.wait(wait) or (deadline is not None and time.monotonic() >= deadline):
                    return errors
                batch = []
                for region, conn in conns.items():
                    try:
                        batch += tails[region].poll(conn, cfg.meta_db, keys[region], filters)
                    except pymysql.MySQLError as err:   # keep following; the server may come back
                        err_console.print(f"[yellow]region {region}: {err}[/yellow]", highlight=False)


@contextmanager
def _connect_all(cfg: PipelineConfig, regions: list[str],
                 errors: list[str]) -> Iterator[dict[str, pymysql.Connection]]:
    """Connections to the regions that answer; an error line for each that does not."""
    conns: dict[str, pymysql.Connection] = {}
    try:
        for region in regions:
            try:
                conns[region] = _connect(cfg, region)
            except pymysql.MySQLError as err:
                errors.append(f"region {region}: {err}")
        yield conns
    finally:
        for conn in conns.values():
            conn.close()


@app.command("show")
def show(record_id: int = typer.Argument(..., metavar="ID", help="The record's id, as `conflicts list` shows it."),
         config: Path = ConfigOption, region: str = OneRegionOption, as_json: bool = typer.Option(
             False, "--json", help="The record as one JSON document.")) -> None:
    """Print one record in full: every version's values and clock, the winner, the source and the GTIDs."""
    from consumers.db import conflict_log

    cfg = load(config)
    _regions(cfg, [region])
    try:
        with _connect(cfg, region) as conn:
            record = conflict_log.get(conn, cfg.meta_db, record_id)
    except pymysql.MySQLError as err:
        fail(f"region {region}: {err}")
        return
    if record is None:
        fail(f"no conflict record {record_id} in region {region}")
        return
    if as_json:
        typer.echo(orjson.dumps(record.model_dump(mode="json"), option=orjson.OPT_INDENT_2).decode())
        return
    console = Console(width=200)
    kind = record.kind if record.overrides is None else f"override of record {record.overrides}"
    console.print(f"conflict {record.id} in {record.region} ({kind}), logged {_time(record.logged_at_us)} UTC",
                  highlight=False)
    for label, value in (("table", f"{record.db}.{record.table}"), ("key", _key(record.pk)),
                         ("strategy", record.strategy), ("winner", record.winner), ("source", _source(record)),
                         ("source gtid", record.source_gtid or "-"), ("local gtid", record.local_gtid or "-")):
        console.print(f"  {label:12} {value}", highlight=False)
    versions = [("local", record.local), ("remote", record.remote), ("result", record.result)]
    versions += [(f"loser {i}", v) for i, v in enumerate(record.losers, 1)]
    out = Table("", *(name for name, _ in versions))
    columns: list[str] = []
    for _, v in versions:
        for column in (v.values or {}) if v is not None else {}:
            if column not in columns:
                columns.append(column)
    for label, get in (("origin", lambda v: v.origin), ("clock", lambda v: _clock(v.counters)),
                       ("hlc", lambda v: _time(v.hlc_us)), ("deleted", lambda v: "yes" if v.values is None else "no")):
        out.add_row(label, *("-" if v is None else get(v) for _, v in versions))
    for column in columns:
        out.add_row(column, *("-" if v is None or v.values is None else
                              orjson.dumps(v.values.get(column)).decode() for _, v in versions))
    console.print(out)


@app.command("stats")
def stats(config: Path = ConfigOption, regions: list[str] = RegionsOption, table: str = TableOption,
          since: str = SinceOption, until: str = UntilOption,
          bucket: str = typer.Option("1h", "--bucket", "-b", help="Bucket size: 1m, 1h, 1d (any <n><s|m|h|d>)."),
          as_json: bool = JsonOption) -> None:
    """Count conflict records per region, time bucket (UTC, aligned on the epoch), table and strategy."""
    from consumers.db import conflict_log
    from cdcsync.tools.conflict_filters import FilterError, parse_bucket_s

    cfg = load(config)
    chosen = _regions(cfg, regions)
    filters = _filters(table, None, since, until)
    try:
        bucket_s = parse_bucket_s(bucket)
    except FilterError as err:
        fail(f"--bucket {err}", 2)
        return
    rows, errors = [], []
    for region in chosen:
        try:
            with _connect(cfg, region) as conn:
                rows += [(region, row) for row in conflict_log.stats(conn, cfg.meta_db, bucket_s=bucket_s,
                                                                     region=None, **filters)]
        except pymysql.MySQLError as err:
            errors.append(f"region {region}: {err}")
    rows.sort(key=lambda item: (item[1].bucket_start_us, item[0], item[1].table, item[1].strategy))
    for line in errors:
        err_console.print(f"[red]error:[/red] {line}", highlight=False)
    if as_json:
        for region, row in rows:
            typer.echo(orjson.dumps({"region": region, "bucket_start_us": row.bucket_start_us,
                                     "bucket_start": _time(row.bucket_start_us), "bucket_s": bucket_s,
                                     "table": row.table, "strategy": row.strategy, "count": row.count}).decode())
    else:
        out = Table("bucket start (UTC)", "region", "table", "strategy", "count", title=f"conflicts per {bucket}")
        for region, row in rows:
            out.add_row(_time(row.bucket_start_us), region, row.table, row.strategy, str(row.count))
        Console(width=200).print(out)
        err_console.print(f"{sum(row.count for _, row in rows)} records")
    if errors:
        raise typer.Exit(1)


@app.command("resolve")
def resolve(record_id: int = typer.Argument(..., metavar="ID", help="The record to settle."),
            config: Path = ConfigOption, region: str = OneRegionOption,
            take: str = typer.Option(..., "--take", help="local, remote (that version's values) or json (--value)."),
            value: str = typer.Option(None, "--value", help="--take json: a JSON object of column -> value (key "
                                                            "columns may be left out), or null to delete the row.")
            ) -> None:
    """Override a resolution: write the chosen values in REGION as a new local write whose clock dominates
    both versions, so it replicates everywhere, and log an override record. Needs the clock triggers.
    When REGION already holds the chosen values, they are written in the first region that does not,
    with a clock that dominates every region's; when every region holds them, nothing is written."""
    from cdcsync.tools.conflict_override import OverrideError, resolve_anywhere

    if take not in ("local", "remote", "json"):
        fail(f"--take {take!r}: expected local, remote or json", 2)
    if (take == "json") != (value is not None):
        fail("--value goes with --take json, and --take json needs --value (null deletes the row)", 2)
    parsed = None
    if value is not None:
        try:
            parsed = orjson.loads(value)
        except orjson.JSONDecodeError as err:
            fail(f"--value is not valid JSON: {err}", 2)
    cfg = load(config)
    _regions(cfg, [region])
    try:
        done = resolve_anywhere(cfg, region, record_id, take, parsed)  # type: ignore[arg-type]
    except OverrideError as err:
        fail(str(err))
        return
    except pymysql.MySQLError as err:
        fail(f"{err}; nothing written, or (if the error came after the write) see `conflicts list`")
        return
    target = f"{done.settled.db}.{done.settled.table} {_key(done.settled.pk)}"
    if done.record is None:
        typer.echo(f"conflict {record_id}: {target} already holds the chosen values in every region (identical "
                   f"everywhere); nothing written")
        return
    result = done.record.result
    what = "deleted" if result.values is None else f"wrote {orjson.dumps(result.values).decode()}"
    if done.written_in != region:
        typer.echo(f"conflict {record_id}: {target} in {region} already holds the chosen values; {done.written_in} "
                   f"does not, so the override is written there")
    typer.echo(f"conflict {record_id}: took {take}; {target} in {done.written_in}: {what}")
    typer.echo(f"new clock {_clock(result.counters)} (dominates local {_side(done.settled.local)} and remote "
               f"{_side(done.settled.remote)}); replaces {_side(done.previous)}")
    typer.echo(f"override logged as record {done.record.id} in {region}")
