"""Options and helpers shared by the sub-commands."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console

from schemas.config import ConfigError, PipelineConfig, load_config

err_console = Console(stderr=True)

ConfigOption = typer.Option(..., "--config", "-c", envvar="CDCSYNC_CONFIG", help="Pipeline config (TOML).",
                            exists=False, dir_okay=False)
RegionOption = typer.Option(..., "--region", "-r", envvar="CDCSYNC_REGION", help="Region name from the config.")
LogFormatOption = typer.Option("text", "--log-format", envvar="CDCSYNC_LOG_FORMAT", help="text or json.")
LogLevelOption = typer.Option("info", "--log-level", envvar="CDCSYNC_LOG_LEVEL", help="debug, info, warning, error.")


def load(path: Path) -> PipelineConfig:
    """Load the config or exit 2 with the message that names the bad key."""
    try:
        return load_config(path)
    except ConfigError as err:
        err_console.print(f"[red]{err}[/red]")
        raise typer.Exit(2) from None


def fail(message: str, code: int = 1) -> None:
    err_console.print(f"[red]error:[/red] {message}", highlight=False)
    raise typer.Exit(code)
