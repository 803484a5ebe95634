"""`cdcsync config check`: test every connection the config describes, one result per check.

Per region: the binlog reader's MySQL user (binlog settings, REPLICATION SLAVE/CLIENT, SELECT;
the producer's own preflight), the applier's MySQL user (DML on the replicated schemas and on the
metadata tables, which must exist unless it may create them), Redis (AUTH, a write and a script
under the key prefix, as the cache sink does) and every Kafka cluster the region's components use
(reachable; the region's `_schema` and `dlq` topics present), and that the installed clock triggers
are not stale (cdcsync/tools/clock_init.py `stale_triggers`), and that every
replicated table has them (a table without them fails unless declared `single_writer`). It also checks the replicated tables' foreign keys (no referential action that changes rows
without binlog events, as `cdcsync init` refuses them) and their AUTO_INCREMENT settings (no two
regions generating the same ids; producers/auto_increment.py), and, once for the whole mesh, that
the regions agree on the replicated tables' schemas (cdcsync/tools/schema_drift.py; a failure names
each table and difference, one line each). Nothing raises: a failure becomes a
result. Messages carry the server's error text, never a configured secret.
"""

from __future__ import annotations

import uuid
from dataclasses import asdict, dataclass
from typing import Literal

import pymysql
import redis
from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient

from cdcsync.tools.applier_grants import applier_problems, may_create
from cdcsync.tools.clock_init import ForeignKeyRefused, wanted_triggers
from common import metadata_tables
from common.clock_coverage import coverage, unclocked_message
from common.mysql import connect
from common.redis_connect import redis_client
from producers import auto_increment, preflight
from producers.service import fixed_schemas
from schemas.config import KafkaConfig, MySQLConfig, PipelineConfig
from schemas.topics import TopicNames

Outcome = Literal["ok", "warn", "fail"]


@dataclass(frozen=True, slots=True)
class CheckResult:
    region: str
    check: str
    outcome: Outcome
    detail: str

    def to_json(self) -> dict[str, str]:
        return asdict(self)


def replicated_schemas(config: PipelineConfig) -> list[str]:
    """Schemas any region's include patterns name without wildcards."""
    return sorted({s for r in config.regions.values() for s in fixed_schemas(r.producer.include)})


def check_reader(config: PipelineConfig, region: str) -> CheckResult:
    mysql = config.region(region).mysql.reader()
    where = f"{mysql.host}:{mysql.port} as {mysql.user!r}"
    schemas = fixed_schemas(config.region(region).producer.include)
    try:
        problems = preflight.source_problems(mysql, schemas)
    except (preflight.PreflightError, pymysql.MySQLError, OSError) as err:
        return CheckResult(region, "mysql reader", "fail", str(err))
    if problems:
        return CheckResult(region, "mysql reader", "fail", f"{where}: " + "; ".join(problems))
    return CheckResult(region, "mysql reader", "ok", f"{where}: binlog settings and privileges fit for capture")


def check_applier(config: PipelineConfig, region: str) -> CheckResult:
    mysql: MySQLConfig = config.region(region).mysql
    where = f"{mysql.host}:{mysql.port} as {mysql.user!r}"
    try:
        with connect(mysql, autocommit=False) as conn, conn.cursor() as cur:
            cur.execute("SHOW GRANTS FOR CURRENT_USER()")
            grants = [row[0] for row in cur.fetchall()]
            cur.execute("SELECT TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA = %s",
                        (config.meta_db,))
            present = {row[0] for row in cur.fetchall()}
    except (pymysql.MySQLError, OSError) as err:
        return CheckResult(region, "mysql applier", "fail", f"cannot connect to {where}: {err.args[-1]}")
    problems = applier_problems(grants, replicated_schemas(config), config.meta_db)
    missing = [t for t in metadata_tables.TABLES if t not in present]
    if missing and not may_create(grants, config.meta_db):
        problems.append(f"metadata tables {', '.join(missing)} missing in {config.meta_db} and the user may not "
                        f"create them: run `cdcsync init` as an admin user")
    if problems:
        return CheckResult(region, "mysql applier", "fail", f"{where}: " + "; ".join(problems))
    note = "" if replicated_schemas(config) else " (include patterns name no schema; schema grants not checked)"
    return CheckResult(region, "mysql applier", "ok", f"{where}: DML privileges present{note}")


def check_key_collations(config: PipelineConfig, region: str) -> CheckResult:
    """Every replicated table's text key columns are in a collation the key fold covers."""
    from cdcsync.tools.clock_init import unsupported_key_collations

    mysql: MySQLConfig = config.region(region).mysql
    try:
        with connect(mysql, autocommit=False) as conn:
            refused = unsupported_key_collations(config, region, conn)
    except (pymysql.MySQLError, OSError) as err:
        return CheckResult(region, "key collations", "fail", f"{mysql.host}:{mysql.port}: {err}")
    if refused:
        return CheckResult(region, "key collations", "fail", "; ".join(refused))
    return CheckResult(region, "key collations", "ok", "every text primary-key column has a supported collation")


def check_redis(config: PipelineConfig, region: str) -> CheckResult:
    cfg = config.region(region).redis
    where = f"{cfg.host}:{cfg.port}" + (f" as {cfg.username!r}" if cfg.username else "")
    key = f"{config.prefix}:_config_check:{uuid.uuid4().hex}"
    try:
        client = redis_client(cfg)
        try:
            client.ping()
            client.set(key, "1", ex=60)
            client.delete(key)
            client.eval("return 1", 1, key)   # the cache sink writes through Lua scripts
        finally:
            client.close()
    except (redis.RedisError, OSError) as err:
        return CheckResult(region, "redis", "fail", f"{where}: {err}")
    return CheckResult(region, "redis", "ok", f"{where}: AUTH, writes and scripts under {config.prefix}:*")


def _clusters(config: PipelineConfig, region: str) -> list[tuple[str, KafkaConfig]]:
    clusters: dict[str, tuple[str, KafkaConfig]] = {}
    own = config.kafka_for(region)
    clusters[own.bootstrap] = ("kafka", own)
    for source in config.sources_of(region):
        cluster = config.source_kafka_for(region, source)
        clusters.setdefault(cluster.bootstrap, (f"kafka (source {source})", cluster))
    return list(clusters.values())


def check_kafka(config: PipelineConfig, region: str, timeout_s: float) -> list[CheckResult]:
    results = []
    names = TopicNames.of(config)
    for label, cluster in _clusters(config, region):
        try:
            metadata = AdminClient(cluster.client_settings()).list_topics(timeout=timeout_s)
        except KafkaException as err:
            results.append(CheckResult(region, label, "fail", f"{cluster.bootstrap}: {err.args[0].str()}"))
            continue
        detail = f"{cluster.bootstrap}: {len(metadata.brokers)} broker(s)"
        if label != "kafka":
            results.append(CheckResult(region, label, "ok", detail))
            continue
        missing = [t for t in (names.schema(region), names.dlq(region)) if t not in metadata.topics]
        if missing:
            results.append(CheckResult(region, label, "warn", f"{detail}; topics {', '.join(missing)} do not exist "
                                                              f"yet (the producer and sinks create them at start)"))
        else:
            results.append(CheckResult(region, label, "ok", f"{detail}; topics present"))
    return results


def check_clock_triggers(config: PipelineConfig, region: str) -> CheckResult:
    """Every replicated table has clock triggers (or is declared single-writer), and the installed
    ones are what `cdcsync init` would generate now (not stale)."""
    missing = check_clock_coverage(config, region)
    if missing.outcome != "ok":
        return missing
    from cdcsync.tools.clock_init import connect_region, stale_trigger_problem, stale_triggers

    try:
        problem = stale_trigger_problem(config, region)
        if problem is None:
            with connect_region(config, region) as conn:
                _, unreadable = stale_triggers(config, region, conn)
    except (pymysql.MySQLError, OSError) as err:
        return CheckResult(region, "clock triggers", "fail", f"cannot read the triggers: {err.args[-1]}")
    if problem is not None:
        return CheckResult(region, "clock triggers", "fail", problem)
    if unreadable:
        return CheckResult(region, "clock triggers", "warn", f"not checked: `user` lacks the TRIGGER privilege, so "
                                                             f"the server hides the bodies of {len(unreadable)} "
                                                             f"clock triggers; run `config check` as the user that "
                                                             f"runs `cdcsync init`")
    return CheckResult(region, "clock triggers", "ok", "every replicated table has its clock triggers (or is "
                                                       "declared single_writer), and they are current")


def check_clock_coverage(config: PipelineConfig, region: str) -> CheckResult:
    """Every replicated table has its clock triggers, or is declared single-writer: otherwise
    concurrent writes to it diverge without a conflict (common/clock_coverage.py)."""
    mysql: MySQLConfig = config.region(region).mysql
    try:
        with connect(mysql, autocommit=False) as conn:
            found = coverage(config, region, conn)
    except (pymysql.MySQLError, OSError) as err:
        return CheckResult(region, "clock triggers", "fail", f"cannot check: {err.args[-1]}")
    if found.unclocked:
        return CheckResult(region, "clock triggers", "fail", unclocked_message(found.unclocked))
    if found.unseen:
        return CheckResult(region, "clock triggers", "warn",
                           f"{mysql.user!r} lacks the TRIGGER privilege on {', '.join(found.unseen)}, so it cannot "
                           f"see their clock triggers: run `cdcsync config check` with the user that ran "
                           f"`cdcsync init` to check them")
    return CheckResult(region, "clock triggers", "ok",
                       "every replicated table has its clock triggers or is declared single_writer")


def check_foreign_keys(config: PipelineConfig, region: str) -> CheckResult:
    """The referential actions `cdcsync init` would refuse (cdcsync/tools/foreign_keys.py)."""
    mysql = config.region(region).mysql
    try:
        with connect(mysql, autocommit=False) as conn:
            wanted = wanted_triggers(config, region, conn, refuse=False)[0]
    except ForeignKeyRefused as err:
        return CheckResult(region, "foreign keys", "fail", str(err).replace("\n  - ", " | "))
    except (pymysql.MySQLError, OSError) as err:
        return CheckResult(region, "foreign keys", "fail", f"cannot read the schema at {mysql.host}:{mysql.port}: "
                                                           f"{err.args[-1]}")
    cascades = sum(1 for t in wanted if t.timing == "BEFORE")
    return CheckResult(region, "foreign keys", "ok", f"no hidden referential action; {cascades} parent table(s) "
                                                     f"get a cascade trigger from `cdcsync init`")


def check_auto_increment(config: PipelineConfig, region: str, timeout_s: float) -> CheckResult:
    """Ids of the region's replicated AUTO_INCREMENT tables that another region can generate too."""
    try:
        finding = auto_increment.inspect(config, region, peer_timeout_s=timeout_s)
    except (pymysql.MySQLError, OSError) as err:
        return CheckResult(region, "auto_increment", "fail", f"cannot read the settings: {err.args[-1]}")
    if finding.problems:
        outcome: Outcome = "fail" if config.auto_increment_collisions == "refuse" else "warn"
        return CheckResult(region, "auto_increment", outcome, auto_increment.describe(finding))
    if not finding.tables:
        return CheckResult(region, "auto_increment", "ok", "no replicated table has an AUTO_INCREMENT column")
    if finding.unread:
        return CheckResult(region, "auto_increment", "warn", f"not compared with {'; '.join(finding.unread)}")
    return CheckResult(region, "auto_increment", "ok", "every region generates its own ids")


def check_schema_drift(config: PipelineConfig) -> CheckResult:
    """The replicated tables' schemas agree across the regions (reported as region `all`)."""
    from cdcsync.tools.schema_drift import lines, mesh_drift

    drifts, unread = mesh_drift(config)
    if drifts:
        return CheckResult("all", "schema drift", "fail", "\n".join(lines(drifts)) + "\n(cdcsync schema diff)")
    if unread:
        return CheckResult("all", "schema drift", "warn", "not compared: " + "; ".join(unread))
    return CheckResult("all", "schema drift", "ok", "every region has the same replicated tables, columns, keys "
                                                    "and collations, and current clock triggers")


def check_all(config: PipelineConfig, *, timeout_s: float = 10.0) -> list[CheckResult]:
    results = []
    for region in config.regions:
        results.append(check_reader(config, region))
        results.append(check_applier(config, region))
        results.append(check_clock_triggers(config, region))
        results.append(check_key_collations(config, region))
        results.append(check_foreign_keys(config, region))
        results.append(check_auto_increment(config, region, timeout_s))
        results.append(check_redis(config, region))
        results.extend(check_kafka(config, region, timeout_s))
    if len(config.regions) > 1:
        results.append(check_schema_drift(config))
    return results
