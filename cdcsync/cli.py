"""The `cdcsync` command. Each sub-command lives in its own module under cdcsync/commands/."""

from __future__ import annotations

import typer

from cdcsync.commands import sandbox

app = typer.Typer(no_args_is_help=True, add_completion=False,
                  help="Multi-region change-data-capture sync: binlog -> Kafka -> caches and peer databases.")
app.add_typer(sandbox.app, name="sandbox")


def main() -> None:
    app()
