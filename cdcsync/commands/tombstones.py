"""`cdcsync tombstones purge`: delete row-clock tombstones every region has seen (logic in cdcsync/tools/tombstones.py)."""

from __future__ import annotations

import re
from pathlib import Path

import typer

from cdcsync.commands.common import ConfigOption, err_console, fail, load

app = typer.Typer(no_args_is_help=True, help="Row-clock tombstones (the clocks of deleted rows).")

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw]?)\s*$")
_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_duration(text: str) -> float:
    """Seconds of `30s`, `15m`, `12h`, `7d`, `2w` or a bare number of seconds."""
    match = _DURATION.match(text.lower())
    if not match:
        raise ValueError(f"not a duration: {text!r} (use e.g. 0s, 90m, 12h, 7d)")
    return float(match.group(1)) * _UNITS[match.group(2)]


@app.command("purge")
def purge(config: Path = ConfigOption,
          min_age: str = typer.Option(None, "--min-age",
                                      help="Purge only tombstones at least this old in every region (0s, 12h, 7d). "
                                           "Default: the config's tombstone_min_age_s."),
          table: str = typer.Option(None, "--table", help="Only this table, `db.table`."),
          dry_run: bool = typer.Option(False, "--dry-run", help="Count what would be purged; delete nothing."),
          ignore_lag: bool = typer.Option(False, "--ignore-lag",
                                          help="Skip the zero-lag check of the database sinks (tests only: unsafe)."),
          timeout: float = typer.Option(10.0, "--timeout", help="Seconds to wait for each Kafka request.")) -> None:
    """Delete the tombstones that hold the identical clock in every region, with no row, older than --min-age.

    Refuses (exit 1) unless every region's database sink group has zero lag. Prints counts per table.
    """
    import pymysql

    from cdcsync.tools.tombstones import PartialPurge, PurgeRefused, purge as run_purge

    cfg = load(config)
    try:
        min_age_s = float(cfg.tombstone_min_age_s) if min_age is None else parse_duration(min_age)
    except ValueError as err:
        fail(f"--min-age: {err}", code=2)
    selected = None
    if table is not None:
        db, dot, name = table.partition(".")
        if not dot or not db or not name:
            fail(f"--table: expected `db.table`, got {table!r}", code=2)
        selected = (db, name)
    try:
        report = run_purge(cfg, min_age_s=min_age_s, table=selected, dry_run=dry_run, ignore_lag=ignore_lag,
                           lag_timeout_s=timeout)
    except PurgeRefused as err:
        fail(str(err))
    except (PartialPurge, pymysql.err.MySQLError) as err:
        fail(f"tombstone purge stopped: {err}")
    verb = "would purge" if dry_run else "purged"
    if not report.tables:
        typer.echo("no tombstones")
    for entry in report.tables:
        typer.echo(f"{entry.name}: {entry.tombstones} tombstones, {entry.candidates} seen everywhere, "
                   f"{verb} {entry.purged}, kept {entry.kept}")
    for warning in report.warnings:
        err_console.print(f"[yellow]warning:[/yellow] {warning}", highlight=False)
