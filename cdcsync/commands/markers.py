"""`cdcsync markers`: the database sink's per-partition apply markers (common/metadata_tables.py)."""

from __future__ import annotations

from pathlib import Path

import typer

from cdcsync.commands.common import ConfigOption, RegionOption, fail, load

app = typer.Typer(no_args_is_help=True, help="The database sink's applied offsets per source partition.")


@app.command("rebase")
def rebase(config: Path = ConfigOption, region: str = RegionOption,
           topic: str = typer.Option(..., "--topic", help="The source topic whose marker to re-base."),
           partition: int = typer.Option(None, "--partition", help="Only this partition (default: all).")) -> None:
    """Forget what REGION's database sink applied from TOPIC: after a recreated topic or a reset source.

    Stop the region's database sink first. It then applies whatever it reads from the topic again;
    versions it applied before are skipped by their vector clocks (docs/apply.md).
    """
    import pymysql

    from common.mysql import connect
    from common import metadata_tables

    cfg = load(config)
    if region not in cfg.regions:
        fail(f"--region: {region!r} is not in the config's regions ({', '.join(cfg.regions)})", code=2)
    try:
        with connect(cfg.region(region).mysql) as conn, conn.cursor() as cur:
            removed = metadata_tables.delete_markers(cur, cfg.meta_db, topic, partition)
            conn.commit()
    except pymysql.err.MySQLError as err:
        fail(f"region {region}: cannot re-base the markers of {topic}: {err.args[-1]}")
    where = topic if partition is None else f"{topic}[{partition}]"
    typer.echo(f"region {region}: removed {removed} apply marker(s) of {where}")
