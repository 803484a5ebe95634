"""`cdcsync dlq list|show|replay|discard`: a region's dead-letter topic (logic in cdcsync/tools/dlq_reader.py)."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING

import orjson
import typer
from rich.console import Console
from rich.table import Table

from cdcsync.commands.common import ConfigOption, RegionOption, err_console, fail, load
from schemas.config import ConfigError, PipelineConfig

if TYPE_CHECKING:
    from cdcsync.tools.dlq_reader import DlqEntry

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
    from cdcsync.tools.dlq_reader import DlqError, read_dead_letters

    try:
        return read_dead_letters(cfg, region)
    except DlqError as err:
        fail(str(err))
        raise AssertionError("unreachable")


def _handled(entry: DlqEntry) -> str:
    if entry.replayed:
        return f"replayed {_time(entry.replayed_at_us)}"
    if entry.discarded:
        return f"discarded {_time(entry.discarded_at_us)}: {entry.discard_reason}"
    return "no"


def _selected(found: list[DlqEntry], entries: list[str], *, force: bool, verb: str) -> list[DlqEntry]:
    """The entries named on the command line; handled ones refused unless `force` (fail() exits)."""
    from cdcsync.tools.dlq_reader import select

    chosen: list[DlqEntry] = []
    try:
        chosen = select(found, entries)
    except ValueError as err:
        fail(str(err))
    if not force:
        _refuse_handled(chosen, verb)
    return chosen


def _refuse_handled(chosen: list[DlqEntry], action: str) -> None:
    """Exit 1 if a named entry was replayed or discarded already: doing it twice is a decision."""
    done = [e for e in chosen if not e.pending]
    if done:
        what = ", ".join(f"{e.id} ({_handled(e)})" for e in done)
        fail(f"already handled: {what}; pass --force to {action} again")


def _time(us: int | None) -> str:
    if us is None:
        return "-"
    return datetime.fromtimestamp(us / 1e6, tz=timezone.utc).strftime("%Y-%m-%d %H:%M:%S")


@app.command("list")
def list_entries(config: Path = ConfigOption, region: str = RegionOption, as_json: bool = JsonOption,
                 limit: int = typer.Option(None, "--limit", "-n", min=1, help="Only the N most recent entries.")) -> None:
    """List the entries (oldest first): where each sits, why it failed, where it came from, whether replayed."""
    from cdcsync.tools.dlq_reader import latest, short

    cfg = _setup(config, region)
    entries = latest(_read(cfg, region), limit)
    if as_json:
        for entry in entries:
            typer.echo(orjson.dumps(entry.summary()).decode())
        return
    table = Table("entry", "kind", "error", "source", "sink", "dead at (UTC)", "handled",
                  title=f"{cfg.prefix}.{region}.dlq")
    for e in entries:
        source = f"{e.source_topic}[{e.source_partition}]@{e.source_offset}" if e.source else "-"
        table.add_row(str(e.id), e.kind, short(e.error, 60), source, e.sink or "-", _time(e.dead_at_us), _handled(e))
    Console().print(table)
    pending = sum(1 for e in entries if e.pending)
    err_console.print(f"{len(entries)} entries, {pending} pending (neither replayed nor discarded)")


@app.command("show")
def show(config: Path = ConfigOption, region: str = RegionOption,
         entry: str = typer.Argument(..., metavar="ENTRY", help="<partition>:<offset> as `dlq list` shows it, "
                                                                 "or an offset that only one partition has.")) -> None:
    """Print one entry in full, its payload as JSON when it is JSON, else base64."""
    from cdcsync.tools.dlq_reader import select

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
           all_pending: bool = typer.Option(False, "--all", help="Every pending database-sink entry."),
           force: bool = typer.Option(False, "--force", help="Replay named entries even if already replayed "
                                                             "or discarded.")) -> None:
    """Apply entries to the region's database again, through the database sink, after fixing their cause.

    Applied entries are marked replayed; an entry that fails again stays as it is, unmarked. A named
    entry already replayed or discarded is refused (exit 1) unless --force.

    Exits 1 if any entry was not applied.
    """
    from cdcsync.tools.dlq_reader import DlqError, replay as replay_entries

    if bool(entries) == all_pending:
        fail("name the entries to replay, or pass --all (not both)", 2)
    cfg = _setup(config, region)
    found = _read(cfg, region)
    if all_pending:
        chosen = [e for e in found if e.pending and e.sink == "db"]
        others = sum(1 for e in found if e.pending and e.sink != "db")
        if others:
            err_console.print(f"{others} pending entries of other sinks left out (for a cache: cdcsync cache rebuild)")
    else:
        chosen = _selected(found, entries, force=force, verb="replay")
        for e in chosen:
            if not e.pending:
                err_console.print(f"{e.id} was already {_handled(e)}; replaying it again (--force)")
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


@app.command("discard")
def discard(config: Path = ConfigOption, region: str = RegionOption,
            entries: list[str] = typer.Argument(None, metavar="[ENTRY]...",
                                                help="Entries to discard: <partition>:<offset> (or an unambiguous "
                                                     "offset)."),
            all_pending: bool = typer.Option(False, "--all", help="Every pending entry, of every sink."),
            reason: str = typer.Option(..., "--reason", help="Why the entries need no replay (kept with them)."),
            force: bool = typer.Option(False, "--force", help="Discard named entries even if already replayed "
                                                              "or discarded.")) -> None:
    """Mark entries as handled without replaying them (e.g. the row was fixed by hand, or a cache
    entry was refilled by `cdcsync cache rebuild`). Nothing is applied; `status` stops counting them.

    Exits 1 if a named entry was already replayed or discarded (unless --force).
    """
    from cdcsync.tools.dlq_reader import DlqError, discard as discard_entries, short

    if bool(entries) == all_pending:
        fail("name the entries to discard, or pass --all (not both)", 2)
    if not reason.strip():
        fail("--reason is empty: say why the entries need no replay", 2)
    cfg = _setup(config, region)
    found = _read(cfg, region)
    if all_pending:
        chosen = [e for e in found if e.pending]
    else:
        chosen = _selected(found, entries, force=force, verb="discard")
    if not chosen:
        typer.echo("nothing to discard")
        return
    try:
        discard_entries(cfg, region, chosen, reason)
    except (DlqError, ValueError) as err:
        fail(str(err))
        return
    for e in chosen:
        typer.echo(f"{e.id} discarded ({e.kind}: {short(e.error, 60)})")
    typer.echo(f"{len(chosen)} discarded")
