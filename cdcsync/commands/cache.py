"""`cdcsync cache rebuild`."""

from __future__ import annotations

from pathlib import Path

import typer

from cdcsync.commands.common import ConfigOption, RegionOption, err_console, fail, load
from cdcsync.progress import progress_bar

app = typer.Typer(no_args_is_help=True, help="The region caches.")


@app.command("rebuild")
def rebuild(config: Path = ConfigOption, region: str = RegionOption,
            table: str = typer.Option(None, "--table", "-t", help="Only this `db.table`."),
            force: bool = typer.Option(False, "--force", help="Rewrite also the cached rows whose version equals "
                                                              "the database's (cached before a column was added or "
                                                              "dropped); newer cached versions are still kept.")) -> None:
    """Repopulate a region's Redis from its database; safe while the cache sink runs."""
    from cdcsync.tools.cache_rebuild import rebuild_cache

    cfg = load(config)
    tasks: dict[str, int] = {}
    with progress_bar() as bar:
        def progress(name: str, done: int, total: int) -> None:
            if name not in tasks:
                tasks[name] = bar.add_task(f"rebuild {name}", total=max(total, 1))
            bar.update(tasks[name], completed=done, total=max(total, done, 1))

        try:
            written = rebuild_cache(cfg, region, table=table, force=force, progress=progress)
        except ValueError as err:
            fail(str(err))
    for name, rows in written.items():
        err_console.print(f"{name}: {rows} rows")
    typer.echo(f"rebuilt {sum(written.values())} rows in {len(written)} tables of region {region}")
