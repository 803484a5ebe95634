"""Options and helpers shared by the sub-commands."""

from __future__ import annotations

import logging
from pathlib import Path

import typer
from rich.console import Console
from rich.markup import escape

from schemas.config import ConfigError, PipelineConfig, load_config

# soft_wrap: an error stays one line whatever the terminal width (operators grep for it).
err_console = Console(stderr=True, soft_wrap=True)

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


def start_logging(level: str, fmt: str, *, region: str | None = None, component: str | None = None) -> None:
    """Configure logging, or exit 2 naming the bad option."""
    from cdcsync import logging_setup

    try:
        logging_setup.setup(level, fmt, region=region, component=component)
    except ValueError as err:
        err_console.print(f"[red]error:[/red] {err}", highlight=False)
        raise typer.Exit(2) from None


def serve_health(port: int | None):
    """Serve /metrics, /healthz and /readyz on `port` (nothing when unset); returns the state to report to."""
    from common.health_server import HealthState, serve

    state = HealthState()
    if port is not None:
        try:
            serve(port, state)
        except OSError as err:
            fail(f"cannot serve metrics on port {port}: {err.strerror or err}", code=2)
    return state


def report(message: str) -> None:
    """Print an error as one line: a JSON log line under `--log-format json`, else `error: ...` on stderr."""
    from cdcsync import logging_setup

    if logging_setup.json_lines:
        logging.getLogger("cdcsync").error(message)
        return
    # Escaped: a message may quote config keys like `[regions.x]`, which rich would take as markup.
    err_console.print(f"[red]error:[/red] {escape(message)}", highlight=False)


def fail(message: str, code: int = 1) -> None:
    report(message)
    raise typer.Exit(code)
