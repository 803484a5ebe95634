"""`cdcsync config reference|show|check`."""

from __future__ import annotations

from pathlib import Path

import orjson
import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from cdcsync.commands.common import ConfigOption, err_console, load
from schemas.config_reference import reference_markdown

app = typer.Typer(no_args_is_help=True, help="The pipeline configuration.")


@app.command("reference")
def reference() -> None:
    """Print every setting with its default, as Markdown (the docs site's configuration page renders it)."""
    typer.echo(reference_markdown())


@app.command("show")
def show(config: Path = ConfigOption) -> None:
    """Print the effective config (defaults filled in) with secrets redacted."""
    cfg = load(config)
    typer.echo(orjson.dumps(cfg.model_dump(mode="json"), option=orjson.OPT_INDENT_2).decode())


@app.command("check")
def check(config: Path = ConfigOption,
          as_json: bool = typer.Option(False, "--json", help="One JSON object per check, one per line."),
          timeout: float = typer.Option(10.0, "--timeout", help="Seconds to wait for each Kafka request.")) -> None:
    """Validate the config and test every connection: MySQL reader and applier users (privileges,
    binlog settings), Redis, Kafka (reachable, topics). Exits 1 if any check fails, 2 on a bad config."""
    from cdcsync.connection_checks import check_all

    cfg = load(config)
    results = check_all(cfg, timeout_s=timeout)
    if as_json:
        for result in results:
            typer.echo(orjson.dumps(result.to_json()).decode())
    else:
        table = Table("region", "check", "result", "detail", title="cdcsync config check", show_lines=True)
        colour = {"ok": "green", "warn": "yellow", "fail": "red"}
        for r in results:
            table.add_row(r.region, r.check, f"[{colour[r.outcome]}]{r.outcome}[/]", escape(r.detail))
        Console().print(table)
    failed = [r for r in results if r.outcome == "fail"]
    if failed:
        err_console.print(f"[red]{len(failed)} of {len(results)} checks failed[/red]")
        raise typer.Exit(1)
