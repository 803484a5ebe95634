"""`cdcsync verify`: every region's tables compared, and each cache with its database (logic in cdcsync/tools/verify.py)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson
import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from cdcsync.commands.common import ConfigOption, err_console, fail, load
from cdcsync.progress import progress_bar

if TYPE_CHECKING:
    from cdcsync.tools.verify import VerifyReport


def verify(config: Path = ConfigOption,
           table: str = typer.Option(None, "--table", "-t", help="Only this `db.table`."),
           as_json: bool = typer.Option(False, "--json", help="Print one JSON document instead of tables."),
           chunk_rows: int = typer.Option(1000, "--chunk-rows", min=1,
                                          help="Rows per checksum chunk (cut at the first region's keys)."),
           no_cache: bool = typer.Option(False, "--no-cache", help="Do not compare the caches with the databases."),
           details: int = typer.Option(20, "--details", min=0, help="How many differences to show in detail."),
           repair: bool = typer.Option(False, "--repair", help="Turn every row difference into a new version every "
                                       "region accepts, logged as a repair in every region (docs/operations/verify.md)."),
           dry_run: bool = typer.Option(False, "--dry-run", help="With --repair: show what it would write, write nothing."),
           prefer: str = typer.Option(None, "--prefer", help="With --repair: the region whose version wins (default: "
                                      "the table's conflict strategy)."),
           every: str = typer.Option(None, "--every", help="Run again every DURATION (90s, 15m, 1h) until stopped, "
                                     "exporting divergence metrics on --metrics-port."),
           metrics_port: int = typer.Option(None, "--metrics-port", help="With --every: serve the verify gauges "
                                            "(cdcsync_verify_*) for Prometheus on this port.")) -> None:
    """Compare every replicated table across all regions (chunk checksums, then a row diff of the
    differing chunks) and each region's cache with its database. Run it at quiescence.

    Exits 0 when everything matches, 1 on any difference, 2 when a region cannot be read.
    """
    from cdcsync.tools.verify import VerifyError, verify as run_verify

    if (dry_run or prefer) and not repair:
        fail("--dry-run and --prefer go with --repair", code=2)
    if metrics_port is not None and every is None:
        fail("--metrics-port goes with --every", code=2)
    cfg = load(config)
    if every is not None:
        _scheduled(cfg, every, metrics_port, table=table, chunk_rows=chunk_rows, check_cache=not no_cache,
                   repair=repair and not dry_run, prefer=prefer)
        return
    if repair:
        details = max(details, 1_000_000)   # every difference is repaired, not only the ones shown
    tasks: dict[str, Any] = {}
    with progress_bar(err_console) as bar:
        def progress(name: str, done: int, total: int) -> None:
            if name not in tasks:
                tasks[name] = bar.add_task(f"verify {name}", total=total)
            bar.update(tasks[name], completed=done, total=total)

        try:
            report = run_verify(cfg, table=table, chunk_rows=chunk_rows, check_cache=not no_cache,
                                max_details=details, progress=progress)
        except VerifyError as err:
            fail(str(err), code=2)
    if as_json:
        typer.echo(orjson.dumps(report.to_json()).decode())
    else:
        print_report(report)
    for line in rebuild_hints(report, config):
        err_console.print(line, highlight=False, markup=False, soft_wrap=True)
    if repair and report.row_details:
        _repair(cfg, report, prefer=prefer, dry_run=dry_run, as_json=as_json)
        if not dry_run:
            return   # repaired: the new versions replicate; run verify again once the sinks applied them
    if not report.ok:
        raise typer.Exit(1)


def _scheduled(cfg: Any, every: str, metrics_port: int | None, *, table: str | None, chunk_rows: int,
               check_cache: bool, repair: bool, prefer: str | None) -> None:
    """Verify (and repair) every `every` until SIGTERM/SIGINT; one JSON line per round."""
    import signal
    import threading

    from prometheus_client import start_http_server

    from cdcsync.tools.conflict_override import OverrideError
    from cdcsync.tools.repair import RepairError, repair as run_repair
    from cdcsync.tools.verify import VerifyError, verify as run_verify
    from cdcsync.tools.verify_schedule import VerifyMetrics, parse_interval

    try:
        interval = parse_interval(every)
    except ValueError as err:
        fail(str(err), code=2)
    metrics = VerifyMetrics()
    if metrics_port is not None:
        start_http_server(metrics_port, registry=metrics.registry)
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    while not stop.is_set():
        try:
            report = run_verify(cfg, table=table, chunk_rows=chunk_rows, check_cache=check_cache,
                                max_details=1_000_000 if repair else 20)
            repaired: dict[str, int] = {}
            if repair and report.row_details:
                for done in run_repair(cfg, report, prefer=prefer):
                    repaired[done.table] = repaired.get(done.table, 0) + 1
            metrics.record(report, repaired)
            typer.echo(orjson.dumps({"ok": report.ok, "row_differences": report.row_differences,
                                     "cache_differences": report.cache_differences, "repaired": repaired}).decode())
        except (VerifyError, RepairError, OverrideError) as err:
            metrics.errors.inc()
            err_console.print(f"verify round failed: {err}", highlight=False, markup=False, soft_wrap=True)
        stop.wait(interval)


def _repair(cfg: Any, report: VerifyReport, *, prefer: str | None, dry_run: bool, as_json: bool) -> None:
    from cdcsync.tools.conflict_override import OverrideError
    from cdcsync.tools.repair import RepairError, repair

    try:
        done = repair(cfg, report, prefer=prefer, dry_run=dry_run)
    except (RepairError, OverrideError) as err:
        fail(str(err), code=2)
    if as_json:
        typer.echo(orjson.dumps({"repairs": [r.to_json() for r in done], "dry_run": dry_run}).decode())
        return
    for r in done:
        where = "would write" if r.written_in is None else f"wrote in {r.written_in}"
        typer.echo(f"repair {r.table} {_value(r.key)}: {r.winner}'s version wins, {where}: {_value(r.values)}")
    typer.echo(f"{len(done)} rows {'to repair (dry run, nothing written)' if dry_run else 'repaired'}; "
               f"run verify again once the sinks applied them")


def rebuild_hints(report: VerifyReport, config: Path) -> list[str]:
    """One line per region whose cache lacks database rows: most often Redis restarted or was
    flushed, and the sinks only write what changes, so only a rebuild refills it."""
    return [f"{region}: {n} rows missing from the cache (Redis restarted or flushed?); refill it with: "
            f"cdcsync cache rebuild --config {config} --region {region}"
            for region, n in report.missing_from_cache.items() if n]


def _value(value: Any) -> str:
    return orjson.dumps(value).decode()


def _line(console: Console, text: str) -> None:
    """One detail line as it is: no markup, no wrapping (values may hold `[`, and lines get long)."""
    console.print(escape(text), soft_wrap=True)


def _rows(rows: dict[str, int]) -> str:
    if len(set(rows.values())) <= 1:
        return str(next(iter(rows.values()), 0))
    return "\n".join(f"{region} {n}" for region, n in rows.items())


def print_report(report: VerifyReport) -> None:
    """The verify report as tables and detail lines (what `cdcsync verify` prints; the demo too)."""
    console = Console(highlight=False)
    summary = Table("table", "regions", "rows", "chunks", "differing chunks", "row diffs", "cache diffs", "problems",
                    title="cdcsync verify", show_lines=True)
    for t in report.tables:
        summary.add_row(escape(t.table), ", ".join(t.regions) or "-", _rows(t.rows) if t.rows else "-",
                        str(t.chunks), str(t.differing_chunks), str(t.row_differences),
                        str(t.cache_differences) if t.cache_checked else "-",
                        escape("\n".join([*t.problems, *([f"skipped: {t.skipped}"] if t.skipped else [])]) or "-"))
    console.print(summary)
    if report.row_details:
        console.print(f"row differences (first {len(report.row_details)} of {report.row_differences}):")
        for d in report.row_details:
            key = ", ".join(f"{c}={_value(v)}" for c, v in d.key.items())
            where = {"missing": f"missing in {', '.join(d.absent_from)}",
                     "extra": f"extra in {', '.join(d.present_in)}", "differs": "differs"}[d.kind]
            _line(console, f"  {d.table} {key}: {where}")
            for column, values in d.columns.items():
                _line(console, f"    {column}: " + ", ".join(f"{r}={_value(v)}" for r, v in values.items()))
    if report.cache_details:
        console.print(f"cache differences (first {len(report.cache_details)} of {report.cache_differences}):")
        for c in report.cache_details:
            what = {"missing": "row missing from the cache", "extra": "cache entry without a database row",
                    "differs": "cache differs from the database"}[c.kind]
            _line(console, f"  {c.region} {c.key}: {what}")
            for column, sides in c.columns.items():
                _line(console, f"    {column}: " + ", ".join(f"{s}={_value(v)}" for s, v in sides.items()))
    skipped = [t.table for t in report.tables if t.skipped]
    not_compared = f"; {len(skipped)} not compared (no primary key): {', '.join(skipped)}" if skipped else ""
    if report.ok:
        matched = sum(t.matched for t in report.tables)
        _line(console, f"OK: {matched} tables match in {', '.join(report.regions)}{not_compared}")
    else:
        problems = sum(len(t.problems) for t in report.tables)
        _line(console, f"DIFFERENCES: {report.row_differences} rows, {report.cache_differences} cache entries, "
                       f"{problems} table problems{not_compared}")
