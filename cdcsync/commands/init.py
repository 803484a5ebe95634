"""`cdcsync init`: metadata tables and clock triggers in every region (logic in cdcsync/tools/clock_init.py)."""

from __future__ import annotations

from pathlib import Path

import typer

from cdcsync.commands.common import ConfigOption, err_console, fail, load
from schemas.config import PipelineConfig


def init(config: Path = ConfigOption,
         region: str = typer.Option(None, "--region", "-r", help="Only this region (default: every region).")) -> None:
    """Create the metadata tables and (re)create the clock triggers on every replicated table.

    Idempotent: unchanged triggers are left alone, changed ones replaced, stale ones dropped.
    """
    from cdcsync.tools.clock_init import ForeignKeyRefused, init_region
    from schemas.key_fold import UnsupportedCollation

    cfg = load(config)
    if region is not None and region not in cfg.regions:
        fail(f"unknown region {region!r} (config has {', '.join(cfg.regions)})", code=2)
    for name in ([region] if region else list(cfg.regions)):
        try:
            report = init_region(cfg, name)
        except UnsupportedCollation as err:
            fail(f"{name}: {err}")
        except ForeignKeyRefused as err:
            fail(str(err))
        typer.echo(f"{report.region}: metadata tables ensured in {cfg.meta_db}; triggers: "
                   f"{len(report.created)} created, {len(report.replaced)} replaced, "
                   f"{len(report.unchanged)} unchanged, {len(report.dropped)} dropped")
        for verb, names in (("created", report.created), ("replaced", report.replaced), ("dropped", report.dropped)):
            for name in names:
                typer.echo(f"  {verb} {name}")
        for line in report.rekeyed:
            typer.echo(f"  re-keyed row_clocks of {line} rows (key identity: docs/clocks.md, \"How keys compare\")")
        for warning in report.warnings:
            err_console.print(f"[yellow]warning:[/yellow] {report.region}: {warning}", highlight=False)
    if len(cfg.regions) > 1:
        _report_drift(cfg)


def _report_drift(cfg: PipelineConfig) -> None:
    """Schema drift left after init (cdcsync/tools/schema_drift.py): a warning per difference, not a failure,
    since an operator altering the regions one by one runs init in each in turn."""
    from rich.markup import escape

    from cdcsync.tools.schema_drift import lines, mesh_drift

    drifts, unread = mesh_drift(cfg)
    for line in [*lines(drifts), *unread]:
        err_console.print(f"[yellow]schema drift:[/yellow] {escape(line)}", highlight=False)
