"""`cdcsync region remove NAME`: drop a removed region's entry from every remaining region's clocks.

Run with the config WITHOUT `[regions.NAME]`, after the operator stopped NAME's producer and sinks,
restarted the other regions' sinks with that config, paused the application's writes and let the
pipeline drain (docs/regions.md, "Removing a region", says why only then). In this order:

1. Preconditions, each refused with a `RegionRemoveError`: NAME is not in the config; every
   remaining region's database sink group has no lag, on its own sources' topics and on NAME's
   change topics (a star spoke: on the hub's topics only). Lag that cannot be read is refused
   unless `ignore_lag`; lag that is read and not zero always is.
2. In every remaining region, `<meta_db>.row_clocks`: NAME's entry is removed from `counters` (in
   SQL, chunked) and from the clocks of the version images in `heads` (in Python, chunked).
3. `cdcsync init` in every remaining region: the clock triggers bake in the region list.

Idempotent: a second run finds nothing to rewrite.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import orjson
import pymysql

from cdcsync.tools.clock_init import InitReport, init_region
from cdcsync.tools.status import GroupLag, sink_group_lag, topic_group_lag
from common.metadata_tables import ROW_CLOCKS
from schemas.config import PipelineConfig
from schemas.topics import TopicNames

CHUNK_ROWS = 1000


class RegionRemoveError(Exception):
    """A precondition of `region remove` does not hold; nothing was written."""


@dataclass(slots=True)
class RegionRemoveReport:
    name: str
    lags: list[GroupLag] = field(default_factory=list)
    counters: dict[str, int] = field(default_factory=dict)   # region -> rows whose counters were rewritten
    heads: dict[str, int] = field(default_factory=dict)      # region -> rows whose heads were rewritten
    init: list[InitReport] = field(default_factory=list)


def drain_lags(config: PipelineConfig, name: str, *, timeout_s: float = 10.0) -> list[GroupLag]:
    """Per remaining region: its database group's lag on the remaining regions' topics (an event in
    flight there may carry NAME's counter) and, unless it is a star spoke (which got NAME's events
    through the hub's topics), on NAME's change topics."""
    subscription = TopicNames.of(config).change_subscription(name)
    lags = []
    for region in config.regions:
        lags.append(sink_group_lag(config, region, "db", timeout_s=timeout_s))
        if config.topology.mode == "star" and region != config.topology.hub:
            continue
        # NAME's cluster is gone from the config: its topics are on the region's own cluster when
        # sinks read there (local_cluster), else on the shared default cluster.
        kafka = config.kafka_for(region) if config.cross_region_reads == "local_cluster" else config.kafka
        lag = topic_group_lag(kafka, f"{config.prefix}.{region}.db", "db", [subscription], timeout_s=timeout_s)
        if lag.error is None and not lag.partitions:   # wrong cluster, or NAME never published: unknown
            lag = GroupLag(lag.group, "db", error=f"no change topic of {name} on {kafka.bootstrap}")
        lags.append(lag)
    return lags


def check_preconditions(config: PipelineConfig, name: str, *, ignore_lag: bool = False,
                        timeout_s: float = 10.0) -> list[GroupLag]:
    if name in config.regions:
        raise RegionRemoveError(f"region {name!r} is still in the config: remove [regions.{name}] and run "
                                f"with that config (the remaining regions are {', '.join(config.regions)})")
    lags = drain_lags(config, name, timeout_s=timeout_s)
    behind = [f"{g.group}: {g.lag} events" for g in lags if g.error is None and g.lag]
    if behind:
        raise RegionRemoveError(f"{name}'s events are not applied everywhere yet ({'; '.join(behind)}): "
                                f"let the database sinks drain, restarted with this config, and run again")
    unread = [f"{g.group}: {g.error}" for g in lags if g.error is not None]
    if unread and not ignore_lag:
        raise RegionRemoveError(f"cannot read the database sinks' lag ({'; '.join(unread)}): check with "
                                f"`cdcsync status` that {name}'s events are applied everywhere, then pass --ignore-lag")
    return lags


def _connect(config: PipelineConfig, region: str) -> pymysql.Connection:
    return pymysql.connect(**config.region(region).mysql.connect_settings(), autocommit=True)


def strip_counters(conn: pymysql.Connection, config: PipelineConfig, region: str, name: str) -> int:
    """Remove NAME's counter from every row clock, a chunk per statement (short row locks)."""
    path = f'$."{name}"'
    mention = ("JSON_EXISTS(counters, %s)" if config.region(region).mysql.flavor == "mariadb"
               else "JSON_CONTAINS_PATH(counters, 'one', %s)")
    total = 0
    with conn.cursor() as cur:
        while True:
            count = cur.execute(f"UPDATE `{config.meta_db}`.`{ROW_CLOCKS}` SET counters = JSON_REMOVE(counters, %s) "
                                f"WHERE {mention} LIMIT {CHUNK_ROWS}", (path, path))
            total += count
            if count < CHUNK_ROWS:
                return total


def without_in_heads(heads: str, name: str) -> str:
    """`heads` JSON (a list of version images) with NAME's counter dropped from each image's clock."""
    images = orjson.loads(heads)
    for image in images:
        image["counters"] = {r: c for r, c in image.get("counters", {}).items() if r != name}
    return orjson.dumps(images).decode()


def strip_heads(conn: pymysql.Connection, config: PipelineConfig, name: str) -> int:
    """Rewrite the heads that mention NAME. Keyed scan in chunks; each chunk is one transaction."""
    table = f"`{config.meta_db}`.`{ROW_CLOCKS}`"
    needle = f'%"{name}"%'   # a superset (NAME may also be an origin or a value); rewriting is exact
    total, after = 0, ("", "", b"")
    with conn.cursor() as cur:
        while True:
            cur.execute(f"SELECT db, tbl, pk_hash, heads FROM {table} WHERE (db, tbl, pk_hash) > (%s, %s, %s) "
                        f"AND heads LIKE %s ORDER BY db, tbl, pk_hash LIMIT {CHUNK_ROWS}", (*after, needle))
            rows = cur.fetchall()
            if not rows:
                return total
            conn.begin()
            for db, tbl, pk_hash, heads in rows:
                rewritten = without_in_heads(heads, name)
                if orjson.loads(rewritten) != orjson.loads(heads):
                    total += cur.execute(f"UPDATE {table} SET heads = %s WHERE db = %s AND tbl = %s AND pk_hash = %s",
                                         (rewritten, db, tbl, pk_hash))
            conn.commit()
            after = rows[-1][:3]


def remove_region(config: PipelineConfig, name: str, *, ignore_lag: bool = False, dry_run: bool = False,
                  step: Callable[[str], None] | None = None) -> RegionRemoveReport:
    """Check, then (unless `dry_run`) rewrite the clocks and re-run init in every remaining region."""
    say = step or (lambda text: None)
    report = RegionRemoveReport(name)
    say("checking preconditions")
    report.lags = check_preconditions(config, name, ignore_lag=ignore_lag)
    if dry_run:
        return report
    for region in config.regions:
        say(f"removing {name} from {region}'s row clocks")
        with _connect(config, region) as conn:
            report.counters[region] = strip_counters(conn, config, region, name)
            report.heads[region] = strip_heads(conn, config, name)
    say("re-running init in every remaining region (clock triggers)")
    report.init = [init_region(config, region) for region in config.regions]
    return report
