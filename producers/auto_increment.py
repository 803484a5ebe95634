"""AUTO_INCREMENT in several writing regions: the settings that keep their generated ids apart.

Two regions that insert into the same table at once each pick the next id from their own server.
With `auto_increment_increment = 1` in both they pick the same ids: the rows are two versions of one
key, the clock decision keeps one, and the other region's committed rows are gone (only the
conflict log shows them). MariaDB and MySQL generate ids `offset + k * increment`, so the regions
never collide when every region uses the same `auto_increment_increment`, at least the number of
regions, and its own `auto_increment_offset` between 1 and that increment (an offset above the
increment is ignored by the server).

`collisions` is the rule; `replicated_auto_increment_tables` finds the tables it matters for. The
producer's preflight and `cdcsync config check` apply it, and refuse or warn per
`auto_increment_collisions`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import pymysql

from schemas.config import PipelineConfig, ProducerConfig, table_selected
from common.mysql import connect

SYSTEM_SCHEMAS = ("mysql", "information_schema", "performance_schema", "sys")
FIX = ("set the same auto_increment_increment (at least the number of regions; leave room for regions you "
       "may add) in every region, and auto_increment_offset = 1, 2, 3, ... (a different one per region, at most "
       "the increment), in each server's config and with SET GLOBAL")


@dataclass(frozen=True, slots=True)
class AutoIncrement:
    increment: int
    offset: int


def read_settings(cur: pymysql.cursors.Cursor) -> AutoIncrement:
    """The server's global settings (what new sessions, the application's, start with)."""
    cur.execute("SELECT @@GLOBAL.auto_increment_increment, @@GLOBAL.auto_increment_offset")
    increment, offset = cur.fetchone()
    return AutoIncrement(int(increment), int(offset))


def replicated_auto_increment_tables(cur: pymysql.cursors.Cursor, producer: ProducerConfig,
                                     meta_db: str) -> list[str]:
    """`db.table` of the replicated tables (the producer's selection) that have an AUTO_INCREMENT column."""
    excluded = (*SYSTEM_SCHEMAS, meta_db)
    cur.execute("SELECT TABLE_SCHEMA, TABLE_NAME FROM information_schema.COLUMNS WHERE EXTRA LIKE '%%auto_increment%%' "
                f"AND TABLE_SCHEMA NOT IN ({', '.join(['%s'] * len(excluded))}) ORDER BY TABLE_SCHEMA, TABLE_NAME",
                excluded)
    return [f"{db}.{table}" for db, table in cur.fetchall() if table_selected(producer, db, table)]


def collisions(settings: Mapping[str, AutoIncrement], region_count: int) -> list[str]:
    """Why two of the regions (those in `settings`, of `region_count` configured) can generate the same
    id; empty when they cannot. Regions missing from `settings` (unreachable) are not compared."""
    if region_count <= 1:
        return []
    problems = []
    for region, s in settings.items():
        if s.increment < region_count:
            problems.append(f"region {region}: auto_increment_increment = {s.increment}, fewer than the "
                            f"{region_count} regions, so two regions generate the same ids")
        if s.offset > s.increment:
            problems.append(f"region {region}: auto_increment_offset = {s.offset} is above auto_increment_increment "
                            f"= {s.increment}, and the server then ignores it")
    if len({s.increment for s in settings.values()}) > 1:
        listed = ", ".join(f"{r} {s.increment}" for r, s in settings.items())
        problems.append(f"auto_increment_increment differs between regions ({listed}), so their id sequences cross")
    by_offset: dict[int, list[str]] = {}
    for region, s in settings.items():
        by_offset.setdefault(s.offset, []).append(region)
    for offset, regions in sorted(by_offset.items()):
        if len(regions) > 1:
            problems.append(f"regions {', '.join(regions)} share auto_increment_offset = {offset}, so they generate "
                            f"the same ids")
    return problems


@dataclass(frozen=True, slots=True)
class Finding:
    tables: list[str]          # the region's replicated tables with an AUTO_INCREMENT column
    problems: list[str]        # `collisions` of the regions read (empty without such tables)
    unread: list[str]          # regions whose settings could not be read: "region: error"


def _connect(config: PipelineConfig, region: str, timeout_s: float | None) -> pymysql.Connection:
    mysql = config.region(region).mysql.reader()
    return connect(mysql, autocommit=False, connect_timeout=timeout_s)


def inspect(config: PipelineConfig, region: str, *, peer_timeout_s: float | None = None) -> Finding:
    """Whether `region`'s replicated AUTO_INCREMENT tables can get colliding ids: its own server's
    settings (an error reaching it raises) against every other region's that can be read."""
    with _connect(config, region, None) as conn, conn.cursor() as cur:
        tables = replicated_auto_increment_tables(cur, config.region(region).producer, config.meta_db)
        own = read_settings(cur)
    if not tables or len(config.regions) <= 1:
        return Finding(tables, [], [])
    settings, unread = {region: own}, []
    for other in config.regions:
        if other == region:
            continue
        try:
            with _connect(config, other, peer_timeout_s) as conn, conn.cursor() as cur:
                settings[other] = read_settings(cur)
        except (pymysql.MySQLError, OSError) as err:
            unread.append(f"{other}: {err.args[-1] if err.args else err}")
    # Keep the configured order, so messages list regions as the config does.
    ordered = {r: settings[r] for r in config.regions if r in settings}
    return Finding(tables, collisions(ordered, len(config.regions)), unread)


def describe(finding: Finding) -> str:
    """One line: the problems, the tables they concern and the fix."""
    shown = ", ".join(finding.tables[:5]) + (f" and {len(finding.tables) - 5} more" if len(finding.tables) > 5 else "")
    return f"{'; '.join(finding.problems)} (replicated AUTO_INCREMENT tables: {shown}): {FIX}"
