"""`cdcsync region add`: seed a new region from an existing one (logic in cdcsync/tools/regions/add.py)."""

from __future__ import annotations

from pathlib import Path

import typer

from cdcsync.commands.common import ConfigOption, err_console, fail, load
from producers.snapshot import progress_bar

app = typer.Typer(no_args_is_help=True, help="Regions of the pipeline.")


@app.command("add")
def add(name: str = typer.Argument(..., help="The new region, already configured as regions.NAME."),
        seed_from: str = typer.Option(..., "--seed-from", help="The existing region whose data NAME starts with."),
        config: Path = ConfigOption) -> None:
    """Copy a consistent snapshot of --seed-from (rows and clocks) into NAME, register NAME with the
    other regions, and position NAME's producer and database sink; see docs/operations/regions.md."""
    from cdcsync.tools.regions.add import RegionAddError, add_region

    cfg = load(config)
    tasks: dict[str, int] = {}
    with progress_bar(err_console) as bar:
        def progress(label: str, done: int, total: int) -> None:
            if label not in tasks:
                tasks[label] = bar.add_task(f"copy {label}", total=max(total, 1))
            bar.update(tasks[label], completed=done, total=max(total, done, 1))

        try:
            report = add_region(cfg, name, seed_from, progress=progress,
                                step=lambda text: bar.console.print(f"[bold]{text}[/bold]", highlight=False))
        except RegionAddError as err:
            fail(str(err))
    for cluster in report.offsets:
        for o in cluster.offsets:
            typer.echo(f"start offset {o.topic}[{o.partition}] = {o.offset} ({o.why})")
    for table, rows in report.copy.rows.items():
        typer.echo(f"copied {table}: {rows} rows, {report.copy.clocks.get(table, 0)} clocks")
    position = report.copy.position
    if position is not None:
        typer.echo(f"snapshot of {seed_from} at {position.file}:{position.pos} gtid {position.gtid_state or '-'}")
    for init in report.init:
        typer.echo(f"init {init.region}: triggers {len(init.created)} created, {len(init.replaced)} replaced, "
                   f"{len(init.unchanged)} unchanged, {len(init.dropped)} dropped")
    typer.echo(f"topics ensured: {', '.join(report.topics)}")
    cp = report.checkpoint
    assert cp is not None
    typer.echo(f"producer checkpoint {report.checkpoint_path}: {cp.binlog_file}:{cp.binlog_pos} "
               f"gtid {cp.gtid_state or '-'}")
    typer.echo(f"committed {report.committed} start offsets for {cfg.prefix}.{name}.db")
    typer.echo(f"""region {name} is seeded from {seed_from}. Next:
  1. start {name}'s producer (with this checkpoint_dir) and its sinks:
       cdcsync producer --config CONFIG --region {name}
       cdcsync consumer --config CONFIG --region {name} --sink db
       cdcsync consumer --config CONFIG --region {name} --sink cache
  2. restart every other region's sinks with this config, so they read {name}'s topics
  3. cdcsync cache rebuild --config CONFIG --region {name}
  4. cdcsync verify --config CONFIG""")


@app.command("remove")
def remove(name: str = typer.Argument(..., help="The removed region, no longer in the config."),
           config: Path = ConfigOption,
           dry_run: bool = typer.Option(False, "--dry-run", help="Only check the preconditions and print the lags."),
           ignore_lag: bool = typer.Option(False, "--ignore-lag",
                                           help="Go on when the sinks' lag on NAME's topics cannot be read.")) -> None:
    """Drop NAME's entry from every remaining region's row clocks and re-run init there; see
    docs/operations/regions.md. Run it with the config WITHOUT [regions.NAME], after NAME's producer and
    sinks are stopped and the other regions' database sinks, restarted with this config, drained NAME's topics."""
    from cdcsync.tools.regions.remove import RegionRemoveError, remove_region

    cfg = load(config)
    try:
        report = remove_region(cfg, name, ignore_lag=ignore_lag, dry_run=dry_run,
                               step=lambda text: err_console.print(f"[bold]{text}[/bold]", highlight=False))
    except RegionRemoveError as err:
        fail(str(err))
    for lag in report.lags:
        typer.echo(f"lag {lag.group}: {lag.error if lag.error is not None else lag.lag}")
    if dry_run:
        typer.echo("dry run: the preconditions hold; nothing was written")
        return
    for region in cfg.regions:
        typer.echo(f"{region}: {report.counters[region]} clocks and {report.heads[region]} heads rewritten")
    for init in report.init:
        typer.echo(f"init {init.region}: triggers {len(init.created)} created, {len(init.replaced)} replaced, "
                   f"{len(init.unchanged)} unchanged, {len(init.dropped)} dropped")
    typer.echo(f"region {name} is removed from the clocks of {', '.join(cfg.regions)}. Next: "
               f"cdcsync verify --config CONFIG, then resume the application's writes")
