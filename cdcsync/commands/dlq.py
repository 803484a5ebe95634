"""`cdcsync dlq list|show|replay`: a region's dead-letter topic (logic in consumers/dlq_reader.py)."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

import orjson
import typer
from rich.console import Console
from rich.table import Table

from cdcsync.commands.common import ConfigOption, RegionOption, err_console, fail, load
from schemas.config import ConfigError, PipelineConfig

app = typer.Typer(no_args_is_help=True, help="The dead-letter topic `<prefix>.<region>.dlq` of a region's sinks.")

JsonOption = typer.Option(False, "--json", help="One JSON object per line instead of a table.")


def _setup(config: Path, region: str) -> PipelineConfig:
    cfg = load(config)
    try:
        cfg.region(region)
    except ConfigError as err:
        fail(str(err), 2)
    return cfg


def _read(cfg: PipelineConfig, region: str):
    from consumers.dlq_reader import DlqError, read_dead_letters

    try:
        return read_dead_letters(cfg, region)
    except DlqError as err:
        fail(str(err))
        raise AssertionError("unreachable")


def _time(us: int | None) -> str:
    if us is None:
        return "-"
    return datetime.fromtimestamp(us / 1e6, tz=timezone.utc).strftime("%Y-%m-%d %H:%M:%S")


@app.command("list")
def list_entries(config: Path = ConfigOption, region: str = RegionOption, as_json: bool = JsonOption,
                 limit: int = typer.Option(None, "--limit", "-n", min=1, help="Only the N most recent entries.")) -> None:
    """List the entries (oldest first): where each sits, why it failed, where it came from, whether replayed."""
    from consumers.dlq_reader import latest, short

    cfg = _setup(config, region)
    entries = latest(_read(cfg, region), limit)
    if as_json:
        for entry in entries:
            typer.echo(orjson.dumps(entry.summary()).decode())
        return
    table = Table("entry", "kind", "error", "source", "sink", "dead at (UTC)", "replayed",
                  title=f"{cfg.prefix}.{region}.dlq")
    for e in entries:
        source = f"{e.source_topic}[{e.source_partition}]@{e.source_offset}" if e.source else "-"
        table.add_row(str(e.id), e.kind, short(e.error, 60), source, e.sink or "-", _time(e.dead_at_us),
                      _time(e.replayed_at_us) if e.replayed else "no")
    Console().print(table)
    pending = sum(1 for e in entries if not e.replayed)
    err_console.print(f"{len(entries)} entries, {pending} not replayed")


@app.command("show")
def show(config: Path = ConfigOption, region: str = RegionOption,
         entry: str = typer.Argument(..., metavar="ENTRY", help="<partition>:<offset> as `dlq list` shows it, "
                                                                 "or an offset that only one partition has.")) -> None:
    """Print one entry in full, its payload as JSON when it is JSON, else base64."""
    from consumers.dlq_reader import select

    cfg = _setup(config, region)
    try:
        [chosen] = select(_read(cfg, region), [entry])
    except ValueError as err:
        fail(str(err))
        return
    typer.echo(orjson.dumps(chosen.detail(), option=orjson.OPT_INDENT_2).decode())


@app.command("replay")
def replay(config: Path = ConfigOption, region: str = RegionOption,
           entries: list[str] = typer.Argument(None, metavar="[ENTRY]...",
                                               help="Entries to replay: <partition>:<offset> (or an unambiguous "
                                                    "offset)."),
           all_pending: bool = typer.Option(False, "--all", help="Every database-sink entry not replayed yet.")) -> None:
    """Apply entries to the region's database again, through the database sink, after fixing their cause.

    Applied entries are marked replayed; an entry that fails again stays as it is, unmarked.

    Exits 1 if any entry was not applied.
    """
    from consumers.dlq_reader import DlqError, replay as replay_entries, select

    if bool(entries) == all_pending:
        fail("name the entries to replay, or pass --all (not both)", 2)
    cfg = _setup(config, region)
    found = _read(cfg, region)
    if all_pending:
        chosen = [e for e in found if not e.replayed and e.sink == "db"]
        others = sum(1 for e in found if not e.replayed and e.sink != "db")
        if others:
            err_console.print(f"{others} pending entries of other sinks left out (for a cache: cdcsync cache rebuild)")
    else:
        try:
            chosen = select(found, entries)
        except ValueError as err:
            fail(str(err))
            return
        for e in chosen:
            if e.replayed:
                err_console.print(f"{e.id} was already replayed at {_time(e.replayed_at_us)}; replaying it again")
    if not chosen:
        typer.echo("nothing to replay")
        return
    try:
        outcomes = replay_entries(cfg, region, chosen)
    except DlqError as err:
        fail(str(err))
        return
    for o in outcomes:
        source = f"{o.entry.source_topic}[{o.entry.source_partition}]@{o.entry.source_offset}"
        typer.echo(f"{o.entry.id} {o.status} ({source})" + ("" if o.status == "applied" else f": {o.detail}"))
    not_applied = [o for o in outcomes if o.status != "applied"]
    typer.echo(f"{len(outcomes) - len(not_applied)} applied, {len(not_applied)} not applied"
               + (" (still in the dead-letter topic, not marked)" if not_applied else ""))
    if not_applied:
        raise typer.Exit(1)
