"""`cdcsync status`: per region, how far the producer and the two sink groups are behind.

- Producer: its checkpoint file (`<producer.checkpoint_dir>/<region>.json`) against the server's
  binlog position right now (`SHOW MASTER STATUS`, `@@gtid_binlog_pos`). `behind_transactions`
  (MariaDB GTIDs: the per-domain sequence differences, summed) and `behind_bytes` (same binlog
  file only) are what is not checkpointed yet. The checkpoint's age keeps growing on an idle server
  whose position does not move; "behind" is the signal, the age is context.
- Sinks: for the groups `<prefix>.<region>.db` and `<prefix>.<region>.cache`, per partition of the
  topics they subscribe to, the high watermark minus the group's committed offset (or minus the
  low watermark when the group has committed nothing there). Committed offsets are fetched with a
  consumer that has the group's id but never subscribes, so it never joins or disturbs the group.
  High watermarks are checked with a one-record fetch (see `watermarks`).

- Dead letters: the entries of the region's dead-letter topic neither replayed nor discarded
  (`dead_letters_pending`, per sink in `dead_letters_by_sink`; cdcsync/tools/dlq_reader.py). Each waits
  for an operator, so the command exits non-zero while there are any.

- Clock triggers: the replicated tables without their clock triggers and not declared
  `single_writer` (`unclocked_tables`, common/clock_coverage.py): concurrent writes to them diverge
  silently, so the command exits non-zero while there are any.

- Schema waits: the source partitions the region's database sink holds because the target table
  cannot hold their next event yet (`<meta_db>.schema_waits`, consumers/db/schema_waits.py), one
  "waiting for schema" line per table (`schema_waits`); the command exits non-zero while there are any.

Read-only and safe at any time. A failure (database, Kafka, checkpoint file) is recorded in the
region's `errors` and the rest of the report is still filled in; nothing raises.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from common.checkpoint_store import FileCheckpointStore
from common.clock_coverage import unclocked_tables
from common.group_lag import PartitionLag, group_partition_lags
from common.kafka import client_settings
from schemas.checkpoint import Checkpoint, CheckpointError
from schemas.config import KafkaConfig, PipelineConfig
from schemas.position import BinlogPosition, MariaGtidState

SINKS = ("db", "cache")


@dataclass(frozen=True, slots=True)
class GroupLag:
    group: str
    sink: str
    partitions: tuple[PartitionLag, ...] = ()
    error: str | None = None

    @property
    def lag(self) -> int | None:
        return None if self.error is not None else sum(p.lag for p in self.partitions)

    def to_json(self) -> dict[str, Any]:
        return {"group": self.group, "sink": self.sink, "lag": self.lag, "error": self.error,
                "partitions": [{"topic": p.topic, "partition": p.partition, "committed": p.committed,
                                "low": p.low, "high": p.high, "lag": p.lag} for p in self.partitions]}


@dataclass(slots=True)
class RegionStatus:
    region: str
    checkpoint: Checkpoint | None = None
    checkpoint_path: str | None = None
    server: BinlogPosition | None = None
    groups: list[GroupLag] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    unclocked_tables: list[str] = field(default_factory=list)   # replicated, no clock triggers, not single-writer
    dead_letters_by_sink: dict[str, int] | None = None          # pending dead letters per sink; None: unread
    schema_waits: list[str] = field(default_factory=list)        # "waiting for schema" lines, one per table
    now_us: int = 0

    @property
    def dead_letters_pending(self) -> int | None:
        return None if self.dead_letters_by_sink is None else sum(self.dead_letters_by_sink.values())

    @property
    def checkpoint_age_s(self) -> float | None:
        return None if self.checkpoint is None else max(0.0, (self.now_us - self.checkpoint.updated_at_us) / 1e6)

    @property
    def behind_transactions(self) -> int | None:
        if self.checkpoint is None or self.server is None:
            return None
        return transactions_behind(self.checkpoint.gtid_state, self.server.gtid_state)

    @property
    def behind_bytes(self) -> int | None:
        if self.checkpoint is None or self.server is None:
            return None
        return bytes_behind(self.checkpoint.position, self.server)

    def to_json(self) -> dict[str, Any]:
        cp = self.checkpoint
        return {
            "region": self.region,
            "checkpoint": None if cp is None else {
                "path": self.checkpoint_path, "gtid_state": cp.gtid_state, "binlog_file": cp.binlog_file,
                "binlog_pos": cp.binlog_pos, "updated_at_us": cp.updated_at_us, "age_s": self.checkpoint_age_s},
            "server": None if self.server is None else {
                "gtid_state": self.server.gtid_state, "binlog_file": self.server.file, "binlog_pos": self.server.pos},
            "producer_behind": {"transactions": self.behind_transactions, "bytes": self.behind_bytes},
            "groups": [g.to_json() for g in self.groups],
            "errors": list(self.errors),
            "unclocked_tables": list(self.unclocked_tables),
            "dead_letters_pending": self.dead_letters_pending,
            "dead_letters_by_sink": self.dead_letters_by_sink,
            "schema_waits": list(self.schema_waits),
        }


# -- pure parts -------------------------------------------------------------------------------------
def transactions_behind(checkpoint_gtid: str, server_gtid: str) -> int | None:
    """Transactions in the server's binlog after the checkpoint, from MariaDB GTID states (summed
    per-domain sequence differences); None when either is not a MariaDB GTID state."""
    try:
        checkpoint, server = MariaGtidState(checkpoint_gtid), MariaGtidState(server_gtid)
    except ValueError:
        return None
    domains = {int(g.split("-", 1)[0]) for g in filter(None, (p.strip() for p in server_gtid.split(",")))}
    behind = 0
    for domain in domains:
        have, head = checkpoint.seq(domain) or 0, server.seq(domain) or 0
        behind += max(0, head - have)
    return behind


def bytes_behind(checkpoint: BinlogPosition, server: BinlogPosition) -> int | None:
    """Binlog bytes after the checkpoint; None when the server has moved to another binlog file."""
    if checkpoint.file != server.file:
        return None
    return max(0, server.pos - checkpoint.pos)


# -- servers ----------------------------------------------------------------------------------------
def pipeline_status(config: PipelineConfig, *, timeout_s: float = 10.0) -> list[RegionStatus]:
    """The status of every region of the config, in config order."""
    return [region_status(config, name, timeout_s=timeout_s) for name in config.regions]


def region_status(config: PipelineConfig, region: str, *, timeout_s: float = 10.0) -> RegionStatus:
    status = RegionStatus(region, now_us=time.time_ns() // 1000)
    _producer_position(config, region, status)
    _clock_triggers(config, region, status)
    _schema_waits(config, region, status)
    _group_lags(config, region, status, timeout_s)
    _dead_letters(config, region, status, timeout_s)
    return status


def _dead_letters(config: PipelineConfig, region: str, status: RegionStatus, timeout_s: float) -> None:
    from cdcsync.tools.dlq_reader import DlqError, read_dead_letters

    try:
        entries = read_dead_letters(config, region, timeout_s=timeout_s)
    except DlqError as err:
        status.errors.append(f"dead letters: {err}")
        return
    counts: dict[str, int] = {}
    for entry in entries:
        if entry.pending:
            counts[entry.sink or "unknown"] = counts.get(entry.sink or "unknown", 0) + 1
    status.dead_letters_by_sink = counts


def schema_wait_lines(waits: list[Any], now_us: int) -> list[str]:
    """One line per waiting table (`metadata_tables.SchemaWait` rows), naming its held partitions."""
    by_table: dict[str, list[Any]] = {}
    for wait in waits:
        by_table.setdefault(wait.table, []).append(wait)
    lines = []
    for table, rows in by_table.items():
        first = min(rows, key=lambda w: w.since_us)
        held = ", ".join(f"{w.topic}[{w.partition}]@{w.offset}" for w in rows)
        lines.append(f"waiting for schema: {table} for {max(0.0, (now_us - first.since_us) / 1e6):.0f}s, "
                     f"{first.reason} (from {', '.join(sorted({w.source_region for w in rows}))}; held {held}); "
                     f"cdcsync schema diff")
    return lines


def _schema_waits(config: PipelineConfig, region: str, status: RegionStatus) -> None:
    from common import metadata_tables
    from common.mysql import connect

    try:
        with connect(config.region(region).mysql) as conn, conn.cursor() as cur:
            cur.execute("SELECT 1 FROM information_schema.TABLES WHERE TABLE_SCHEMA = %s AND TABLE_NAME = %s",
                        (config.meta_db, metadata_tables.SCHEMA_WAITS))
            waits = metadata_tables.read_schema_waits(cur, config.meta_db) if cur.fetchone() else []
    except Exception as err:  # any failure of one region's server is reported in its row
        status.errors.append(f"schema waits: cannot read: {err}")
        return
    status.schema_waits = schema_wait_lines(waits, status.now_us)


def _clock_triggers(config: PipelineConfig, region: str, status: RegionStatus) -> None:
    """Stale clock triggers are an error: their region's writes may pair with no clock row."""
    from cdcsync.tools.clock_init import stale_trigger_problem

    try:
        problem = stale_trigger_problem(config, region)
    except Exception as err:  # any failure of one region's server is reported in its row
        problem = f"clock triggers: cannot check: {err}"
    if problem is not None:
        status.errors.append(problem)


def _producer_position(config: PipelineConfig, region: str, status: RegionStatus) -> None:
    from common.mysql import connect, current_position

    settings = config.region(region)
    store = FileCheckpointStore(settings.producer.checkpoint_dir, region, settings.server_id)
    status.checkpoint_path = str(store.path)
    try:
        status.checkpoint = store.load()
        if status.checkpoint is None:
            status.errors.append(f"checkpoint: no file at {store.path} (producer not started yet, or run "
                                 f"`cdcsync status` where its checkpoint_dir is)")
    except (CheckpointError, OSError) as err:
        status.errors.append(f"checkpoint: {err}")
    try:
        with connect(settings.mysql.reader()) as conn:
            status.server = current_position(conn, settings.mysql.flavor)
    except Exception as err:  # any failure of one region's server is reported in its row
        status.errors.append(f"mysql {settings.mysql.host}:{settings.mysql.port}: {err}")
        return
    try:   # as the config's user: information_schema shows triggers only to who may manage them
        with connect(settings.mysql) as conn:
            status.unclocked_tables = unclocked_tables(config, region, conn)
    except Exception as err:
        status.errors.append(f"clock triggers: cannot check ({err})")


def _group_lags(config: PipelineConfig, region: str, status: RegionStatus, timeout_s: float) -> None:
    for sink in SINKS:
        lag = sink_group_lag(config, region, sink, timeout_s=timeout_s)
        status.groups.append(lag)
        if lag.error is not None:  # reported, never raised: the other regions still get their rows
            status.errors.append(lag.error)


def sink_group_lag(config: PipelineConfig, region: str, sink: str, *, timeout_s: float = 10.0) -> GroupLag:
    """The lag of one sink group (`db` or `cache`) of a region; a failure is the result's `error`."""
    from consumers.service import group_id, subscriptions

    group = group_id(config, region, sink)  # type: ignore[arg-type]
    # A sink may read several clusters (one per source region): its group exists on each.
    partitions: list[PartitionLag] = []
    try:
        for kafka, patterns in subscriptions(config, region, sink):  # type: ignore[arg-type]
            try:
                partitions.extend(group_partition_lags(client_settings(kafka), group, patterns, timeout_s))
            except Exception as err:
                raise RuntimeError(f"kafka {kafka.bootstrap} ({group}): {err}") from None
    except Exception as err:
        return GroupLag(group, sink, error=str(err))
    return GroupLag(group, sink, tuple(partitions))


def topic_group_lag(kafka: KafkaConfig, group: str, sink: str, patterns: list[str], *,
                    timeout_s: float = 10.0) -> GroupLag:
    """The lag of `group` on the topics `patterns` match on one cluster (`region remove` asks about
    a region no longer in the config); a failure is the result's `error`."""
    try:
        return GroupLag(group, sink, group_partition_lags(client_settings(kafka), group, patterns, timeout_s))
    except Exception as err:
        return GroupLag(group, sink, error=f"kafka {kafka.bootstrap} ({group}): {err}")
