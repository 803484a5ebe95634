"""`cdcsync config reference|show`."""

from __future__ import annotations

from pathlib import Path

import orjson
import typer

from cdcsync.commands.common import ConfigOption, load
from schemas.config_reference import reference_markdown

app = typer.Typer(no_args_is_help=True, help="The pipeline configuration.")


@app.command("reference")
def reference() -> None:
    """Print every setting with its default, as Markdown (the README embeds this)."""
    typer.echo(reference_markdown())


@app.command("show")
def show(config: Path = ConfigOption) -> None:
    """Print the effective config (defaults filled in) with secrets redacted."""
    cfg = load(config)
    typer.echo(orjson.dumps(cfg.model_dump(mode="json"), option=orjson.OPT_INDENT_2).decode())
