"""`cdcsync schema export` (JSON Schema of every message type, from the pydantic models) and
`cdcsync schema diff` (the replicated tables compared across regions, cdcsync/tools/schema_drift.py)."""

from __future__ import annotations

from pathlib import Path

import orjson
import typer

from cdcsync.commands.common import ConfigOption, err_console, load
from schemas.json_schema import message_schemas

app = typer.Typer(no_args_is_help=True, help="The wire contract, and the replicated tables' schemas across regions.")


@app.command("export")
def export(out: Path = typer.Option(None, "--out", "-o", help="Directory to write one file per message type; "
                                                                 "default: print one JSON document.")) -> None:
    """Write the JSON Schema of every message type (change, ddl, ...)."""
    schemas = message_schemas()
    if out is None:
        typer.echo(orjson.dumps(schemas, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS).decode())
        return
    out.mkdir(parents=True, exist_ok=True)
    for name, schema in schemas.items():
        (out / f"{name}.schema.json").write_bytes(orjson.dumps(schema, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS))
    typer.echo(f"wrote {len(schemas)} schemas to {out}")


@app.command("diff")
def diff(config: Path = ConfigOption,
         as_json: bool = typer.Option(False, "--json", help="Print one JSON document instead of a table.")) -> None:
    """Compare every replicated table across the regions: columns (type, nullability, default,
    collation), PRIMARY and UNIQUE keys, the table's collation, and its clock triggers.

    Exits 0 when the regions agree, 1 when anything differs or a region cannot be read.
    """
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    from cdcsync.tools.schema_drift import mesh_drift

    cfg = load(config)
    drifts, unread = mesh_drift(cfg)
    if as_json:
        typer.echo(orjson.dumps({"drift": [d.to_json() for d in drifts], "unread": unread}).decode())
    elif drifts:
        regions = list(cfg.regions)
        table = Table("table", "what", *regions, title="cdcsync schema diff", show_lines=True)
        for d in drifts:
            what = f"{d.aspect} {d.name}" if d.name else d.aspect
            table.add_row(escape(d.table), escape(what), *(escape(d.values.get(r, "-")) for r in regions))
        Console().print(table)
    elif not unread:
        typer.echo(f"no schema drift: {', '.join(r for r in cfg.regions)} agree on every replicated table")
    for line in unread:
        err_console.print(f"[red]{escape(line)}[/red]", highlight=False)
    if drifts or unread:
        raise typer.Exit(1)
