"""`cdcsync schema export`: JSON Schema of every message type, from the pydantic models."""

from __future__ import annotations

from pathlib import Path

import orjson
import typer

from schemas.json_schema import message_schemas

app = typer.Typer(no_args_is_help=True, help="The wire contract.")


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
