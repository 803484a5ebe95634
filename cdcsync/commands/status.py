"""`cdcsync status`: producer checkpoints and sink-group lag, per region (logic in cdcsync/tools/status.py)."""

from __future__ import annotations

from pathlib import Path

import orjson
import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from cdcsync.commands.common import ConfigOption, err_console, load
from common.clock_coverage import unclocked_message


def _position(gtid: str, file: str, pos: int) -> str:
    return f"{gtid or '-'}\n{file}:{pos}"


def _dead_letters(by_sink: dict[str, int] | None) -> str:
    if by_sink is None:
        return "error"
    if not by_sink:
        return "0"
    return "\n".join(f"{n} {sink}" for sink, n in sorted(by_sink.items()))


def _age(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    return f"{seconds:.1f}s" if seconds < 120 else f"{seconds / 60:.0f}m" if seconds < 7200 else f"{seconds / 3600:.1f}h"


def status(config: Path = ConfigOption,
           as_json: bool = typer.Option(False, "--json", help="Print one JSON document instead of tables."),
           timeout: float = typer.Option(10.0, "--timeout", help="Seconds to wait for each Kafka request.")) -> None:
    """Per region: the producer's checkpoint against the server's binlog position, and sink-group lag.

    The groups are `<prefix>.<region>.db` and `<prefix>.<region>.cache`. Exits 1 if any region reported an error,
    has replicated tables without clock triggers (not declared single_writer), or has dead letters neither
    replayed nor discarded (`cdcsync dlq list`), or when the regions' replicated tables differ (`cdcsync schema diff`), or while a database sink waits for a
    schema (a table it holds because the target cannot hold an event yet).
    """
    from cdcsync.tools.status import pipeline_status

    from cdcsync.tools.schema_drift import lines, mesh_drift

    cfg = load(config)
    regions = pipeline_status(cfg, timeout_s=timeout)
    drift = lines(mesh_drift(cfg)[0]) if len(cfg.regions) > 1 else []   # an unreadable region is in its errors
    if as_json:
        typer.echo(orjson.dumps({"regions": [r.to_json() for r in regions], "schema_drift": drift}).decode())
    else:
        console = Console()
        table = Table("region", "checkpoint", "age", "server", "behind (txns / bytes)", "db lag", "cache lag",
                      "dead letters", "errors", title="cdcsync status", show_lines=True)
        for r in regions:
            cp, server = r.checkpoint, r.server
            lags = {g.sink: ("error" if g.lag is None else str(g.lag)) for g in r.groups}
            txns, nbytes = r.behind_transactions, r.behind_bytes
            unclocked = [f"no clock triggers: {', '.join(r.unclocked_tables)}"] if r.unclocked_tables else []
            table.add_row(r.region, _position(cp.gtid_state, cp.binlog_file, cp.binlog_pos) if cp else "none",
                          _age(r.checkpoint_age_s),
                          _position(server.gtid_state, server.file, server.pos) if server else "unreachable",
                          f"{'-' if txns is None else txns} / {'-' if nbytes is None else nbytes}",
                          lags.get("db", "-"), lags.get("cache", "-"), _dead_letters(r.dead_letters_by_sink),
                          "\n".join([*r.errors, *unclocked, *r.schema_waits]) or "-")
        console.print(table)
        lagging = Table("group", "topic", "partition", "committed", "high", "lag", title="partitions with lag")
        for r in regions:
            for g in r.groups:
                for p in g.partitions:
                    if p.lag:
                        lagging.add_row(g.group, p.topic, str(p.partition),
                                        "-" if p.committed is None else str(p.committed), str(p.high), str(p.lag))
        if lagging.row_count:
            console.print(lagging)
    for r in regions:
        if r.unclocked_tables:
            err_console.print(f"[red]{r.region}: {unclocked_message(r.unclocked_tables)}[/red]", highlight=False)
    for r in regions:
        if r.dead_letters_pending:
            err_console.print(f"[red]{r.region}: {r.dead_letters_pending} dead letters wait (neither replayed nor "
                              f"discarded): cdcsync dlq list --config {config} --region {r.region}[/red]",
                              highlight=False)
    for r in regions:
        for line in r.schema_waits:
            err_console.print(f"[red]{r.region}: {escape(line)}[/red]", highlight=False)
    for line in drift:
        err_console.print(f"[red]schema drift: {escape(line)}[/red]", highlight=False)
    if drift or any(r.errors or r.unclocked_tables or r.dead_letters_pending or r.schema_waits for r in regions):
        raise typer.Exit(1)
