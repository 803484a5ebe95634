"""`cdcsync sandbox up|down|status`."""

from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from deploy.local import Sandbox, SandboxError

app = typer.Typer(no_args_is_help=True, help="Local sandbox: MariaDB and Redis per region, one broker, no Docker.")
console = Console(stderr=True, soft_wrap=True)

DirOption = typer.Option(Path("sandbox"), "--dir", envvar="CDCSYNC_SANDBOX_DIR", help="Sandbox directory.")


@app.command()
def up(regions: str = typer.Option("eu,us,ap", "--regions", envvar="CDCSYNC_SANDBOX_REGIONS",
                                   help="Comma-separated region names."),
       dir: Path = DirOption,
       durable: bool = typer.Option(False, "--durable", help="Start MariaDB with sync_binlog=1 and "
                                                             "innodb_flush_log_at_trx_commit=1 (fsync at every "
                                                             "commit; slower). Kept across restarts.")) -> None:
    """Start (or complete) the sandbox and write sandbox.json and cdcsync.toml."""
    names = [r.strip() for r in regions.split(",") if r.strip()]
    try:
        with console.status(f"starting sandbox for {', '.join(names)} in {dir}"):
            contract = Sandbox(dir, durable=True if durable else None).up(names)
    except (SandboxError, RuntimeError, FileNotFoundError) as err:
        console.print(f"[red]sandbox up failed:[/red] {err}")
        raise typer.Exit(1) from None
    console.print(f"sandbox is up: config {contract['config']}, kafka {contract['kafka']['bootstrap']}")
    typer.echo(str(Path(dir).resolve() / "sandbox.json"))


@app.command()
def down(dir: Path = DirOption) -> None:
    """Stop the processes that `up` started, and nothing else."""
    stopped = Sandbox(dir).down()
    console.print(f"stopped: {', '.join(stopped) if stopped else 'nothing was running'}")


@app.command()
def status(dir: Path = DirOption, as_json: bool = typer.Option(False, "--json", help="Print JSON.")) -> None:
    """Show what is up. Exits 1 if anything recorded is not running."""
    services = Sandbox(dir).status()
    if not services:
        console.print(f"no sandbox in {dir}")
        raise typer.Exit(1)
    if as_json:
        typer.echo(json.dumps([s.__dict__ if hasattr(s, "__dict__") else
                               {k: getattr(s, k) for k in s.__slots__} for s in services]))
    else:
        table = Table("service", "pid", "port", "running", "accepting")
        for s in services:
            table.add_row(s.name, str(s.pid or "-"), str(s.port), "yes" if s.running else "no",
                          "yes" if s.accepting else "no")
        Console().print(table)
    if not all(s.accepting for s in services):
        raise typer.Exit(1)
