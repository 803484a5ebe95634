"""The pipeline configuration: one TOML file, validated once at start-up into frozen models.

Every setting is declared here, once, with its default and a one-line description. The docs site's
configuration reference (docs/reference/configuration.md) is generated from these descriptions (`cdcsync config reference`).
"""

from __future__ import annotations

import fnmatch
import logging
import os
import re
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator, model_validator

from schemas.config_env import apply_env
from schemas.config_secrets import is_secret_extra_key, read_secret_file, secrets_from_files

_NAME = re.compile(r"^[a-z][a-z0-9_-]{0,31}$")


class ConfigError(ValueError):
    """An invalid configuration. The message names the key and the problem."""


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class MySQLConfig(_Frozen):
    host: str = Field("127.0.0.1", description="MySQL/MariaDB host of the region's primary.")
    port: int = Field(3306, ge=1, le=65535, description="MySQL/MariaDB port.")
    user: str = Field("cdcsync", description="User of the applier (database sink, DLQ replay); also the "
                                              "binlog reader's unless `reader_user` is set.")
    password: SecretStr = Field(SecretStr(""), description="Password of `user`.")
    password_file: Path | None = Field(None, description="File holding the password of `user`; wins over `password`.")
    reader_user: str | None = Field(None, description="User of the binlog reader (producer, cache rebuild, verify, "
                                                      "status); default `user`.")
    reader_password: SecretStr | None = Field(None, description="Password of `reader_user`; default `password`.")
    reader_password_file: Path | None = Field(None, description="File holding the password of `reader_user`.")
    flavor: Literal["mariadb", "mysql"] = Field("mariadb", description="Server dialect: `mariadb` or `mysql`.")
    connect_timeout: float = Field(10.0, gt=0, description="Seconds to wait for a connection.")
    ssl_ca: Path | None = Field(None, description="CA certificate (PEM) to verify the server with; turns TLS on.")
    ssl_cert: Path | None = Field(None, description="Client certificate (PEM), for servers that require one.")
    ssl_key: Path | None = Field(None, description="Private key (PEM) of `ssl_cert`.")
    ssl_verify_identity: bool = Field(True, description="With TLS, check that the server certificate names `host`.")

    @model_validator(mode="before")
    @classmethod
    def _secret_files(cls, data: Any) -> Any:
        return secrets_from_files(data, {"password_file": "password", "reader_password_file": "reader_password"})

    @model_validator(mode="after")
    def _tls_pairs(self) -> "MySQLConfig":
        if (self.ssl_cert is None) != (self.ssl_key is None):
            raise ValueError("ssl_cert and ssl_key go together: set both or neither")
        return self

    def reader(self) -> "MySQLConfig":
        """These settings with the binlog reader's credentials as `user` and `password`."""
        if self.reader_user is None and self.reader_password is None:
            return self
        return self.model_copy(update={"user": self.reader_user or self.user,
                                       "password": self.reader_password or self.password})

    def tls_settings(self) -> dict[str, Any]:
        """PyMySQL keyword arguments for TLS (empty without `ssl_ca`)."""
        if self.ssl_ca is None:
            return {}
        settings: dict[str, Any] = {"ssl_ca": str(self.ssl_ca), "ssl_verify_cert": True,
                                    "ssl_verify_identity": self.ssl_verify_identity}
        if self.ssl_cert is not None:
            settings.update(ssl_cert=str(self.ssl_cert), ssl_key=str(self.ssl_key))
        return settings

    def connect_settings(self) -> dict[str, Any]:
        """Keyword arguments of `pymysql.connect` for `user` (call `reader()` first for the reader)."""
        return {"host": self.host, "port": self.port, "user": self.user,
                "password": self.password.get_secret_value(), "connect_timeout": self.connect_timeout,
                **self.tls_settings()}


class RedisConfig(_Frozen):
    host: str = Field("127.0.0.1", description="Redis host of the region's cache.")
    port: int = Field(6379, ge=1, le=65535, description="Redis port.")
    db: int = Field(0, ge=0, description="Redis logical database.")
    username: str | None = Field(None, description="Redis ACL user (AUTH username).")
    password: SecretStr | None = Field(None, description="Redis password.")
    password_file: Path | None = Field(None, description="File holding the Redis password; wins over `password`.")
    ssl: bool = Field(False, description="Connect with TLS.")
    ssl_ca: Path | None = Field(None, description="CA certificate (PEM) to verify the server with (TLS).")
    ssl_cert: Path | None = Field(None, description="Client certificate (PEM), for servers that require one (TLS).")
    ssl_key: Path | None = Field(None, description="Private key (PEM) of `ssl_cert`.")

    @model_validator(mode="before")
    @classmethod
    def _secret_files(cls, data: Any) -> Any:
        return secrets_from_files(data, {"password_file": "password"})


class KafkaConfig(_Frozen):
    bootstrap: str = Field("127.0.0.1:9092", description="Kafka bootstrap servers, `host:port[,host:port]`.")
    partitions: int = Field(3, ge=1, description="Partitions of each topic cdcsync creates.")
    replication_factor: int = Field(1, ge=1, description="Replication factor of each topic cdcsync creates.")
    extra: dict[str, str | int | float | bool | SecretStr] = Field(
        default_factory=dict,
        description="Extra librdkafka settings passed through as they are (TLS, SASL, ...); credentials "
                    "(`sasl.password`, `*.secret`, `ssl.key.password`, ...) are redacted everywhere. They override "
                    "cdcsync's defaults for latency: `socket.nagle.disable` = true for every client, "
                    "`fetch.wait.max.ms` = 100 and `fetch.min.bytes` = 1 for the sinks' consumers "
                    "(common/kafka.py; docs/performance.md, \"Defaults for latency\").",
    )
    extra_files: dict[str, Path] = Field(
        default_factory=dict,
        description="librdkafka settings read from files, e.g. `\"sasl.password\" = \"/run/secrets/kafka\"`.",
    )

    @field_validator("extra", mode="before")
    @classmethod
    def _hide_credentials(cls, extra: Any) -> Any:
        if not isinstance(extra, dict):
            return extra
        for key, value in extra.items():
            if not isinstance(value, (str, int, float, bool, SecretStr)):
                raise ValueError(f"{key}: a librdkafka setting is a string, number or boolean")
        return {k: SecretStr(str(v)) if is_secret_extra_key(k) and not isinstance(v, SecretStr) else v
                for k, v in extra.items()}

    @model_validator(mode="after")
    def _extra_from_files(self) -> "KafkaConfig":
        if not self.extra_files:
            return self
        loaded = {k: SecretStr(read_secret_file(path, f"extra_files.{k}")) for k, path in self.extra_files.items()}
        # Frozen model: set the validated field once, here, before anyone can see the object.
        object.__setattr__(self, "extra", {**self.extra, **loaded})
        return self

    def client_settings(self) -> dict[str, Any]:
        """librdkafka settings of every client: bootstrap plus the extras, secrets revealed. librdkafka's
        own log lines go through the `librdkafka` logger, so they carry the log format and context."""
        settings: dict[str, Any] = {"bootstrap.servers": self.bootstrap, "logger": logging.getLogger("librdkafka")}
        for key, value in self.extra.items():
            settings[key] = value.get_secret_value() if isinstance(value, SecretStr) else value
        return settings


class ProducerConfig(_Frozen):
    include: tuple[str, ...] = Field(
        ("*.*",), description="`db.table` glob patterns to capture. The metadata database is never captured."
    )
    exclude: tuple[str, ...] = Field((), description="`db.table` glob patterns to leave out; wins over `include`.")
    no_primary_key: Literal["skip", "all_columns"] = Field(
        "skip", description="Tables without a primary key: `skip` them (with a warning) or key by all columns."
    )
    snapshot: Literal["initial", "never"] = Field(
        "initial",
        description="With no checkpoint: `initial` snapshots existing rows first; `never` streams from now.",
    )
    snapshot_chunk_rows: int = Field(5000, ge=1, description="Rows per snapshot SELECT chunk.")
    checkpoint_dir: Path = Field(
        Path(".cdcsync/checkpoints"), description="Directory of the producer's checkpoint file (one per region)."
    )
    checkpoint_interval_ms: int = Field(
        500, ge=1, description="How often the acknowledged position is written to the checkpoint file."
    )
    heartbeat_s: float = Field(
        1.0, gt=0, description="Binlog heartbeat period asked of the server; bounds how long SIGTERM waits when idle."
    )
    progress_log_s: float = Field(
        5.0, gt=0, description="A transaction still open after this long logs its progress (rows so far, table, "
        "GTID, published, awaiting the broker), and again every as long."
    )
    linger_ms: int = Field(5, ge=0, description="librdkafka `linger.ms` for change events: how long a change may "
                                                "wait to share a request with the next ones. Each hop of a lone "
                                                "change waits this long (docs/performance.md).")
    max_in_flight_events: int = Field(
        100_000, ge=1000, description="Unacknowledged events before the reader waits for the broker (backpressure)."
    )
    server_id: int | None = Field(
        None, ge=1, description="Replica server_id the reader registers with; default 1000 + region server_id."
    )


class SinkConfig(_Frozen):
    batch_max_events: int = Field(2000, ge=1, description="A sink applies a batch when it holds this many events...")
    batch_max_ms: int = Field(200, ge=1, description="...or when its first event has waited this long (ms) while "
                                                    "more kept arriving...")
    batch_linger_ms: int = Field(0, ge=0, description="...or once the consumer has had no more events waiting for "
                                                      "this long (ms). 0: at once, so a lone change is applied "
                                                      "without waiting and batches grow with the load.")
    busy_batch_events: int = Field(
        50, ge=1, description="...except that a batch already holding this many events when the consumer runs "
                              "dry is under load: it waits for the next fetch, until `batch_max_ms` after its "
                              "first event, so a busy sink applies one batch per two fetches or more (less CPU "
                              "per event); a trickle stays below it and is applied at once."
    )
    session_timeout_ms: int = Field(
        6000, ge=1000, description="Kafka consumer-group session timeout; a dead member's partitions move after it."
    )
    commit_interval_ms: int = Field(
        1000, ge=0, description="While events keep coming, applied offsets are committed at most this often (ms; "
                                "0: after every batch); at rest (once a 0.25 s poll found nothing), on a "
                                "rebalance and on stop. A crash replays at most this long's batches, which "
                                "the sink skips as applied (docs/performance.md)."
    )
    retry_max_attempts: int = Field(8, ge=1, description="Attempts for a transient database or Redis error.")
    retry_base_ms: int = Field(50, ge=1, description="First retry delay; doubles each attempt, with full jitter.")
    retry_max_ms: int = Field(5000, ge=1, description="Largest retry delay.")
    metrics_port: int | None = Field(None, ge=0, le=65535,
                                     description="Port of the sinks' /metrics, /healthz, /readyz (0: any free port).")
    max_clock_skew_ms: int = Field(
        60000, ge=0, description="A clocked version stamped further ahead of the sink host's clock stops the "
                                 "database sink (lww would let that region win every tie); see docs/clocks.md."
    )
    schema_mismatch: Literal["wait", "dead_letter"] = Field(
        "wait", description="What the database sink does with an event its target table cannot hold because the "
                            "schemas differ (an unknown column, a value too long or out of range for the target's "
                            "type): `wait` holds that table's partitions, reports it in `cdcsync status` and "
                            "resumes once the target's schema catches up; `dead_letter` sends the event to the "
                            "dead-letter topic. See docs/schema-changes.md."
    )
    schema_recheck_ms: int = Field(
        5000, ge=100, description="How often (ms) a database sink waiting for a schema re-reads the target "
                                  "table's columns to see whether it can resume."
    )
    max_consecutive_dead_letters: int = Field(
        100, ge=0, description="A sink stops, with one line naming the cause, when more dead letters than this "
                               "come in a row (no event applied between them): a poison flood is a broken deploy, "
                               "not data to drain into the dead-letter topic. Nothing of the batch it goes over "
                               "in is committed; 0: no limit. See docs/apply.md, \"Poison events\"."
    )


class TableConfig(_Frozen):
    cache_format: Literal["hash", "json"] = Field(
        "hash", description="Cache value: a Redis hash of column -> JSON value, or one JSON document (`_json`)."
    )
    cache_ttl_s: int | None = Field(None, ge=1, description="TTL of cached rows; unset keeps them until deleted.")
    conflict_strategy: Literal["lww", "region-priority", "custom", "column-lww"] = Field(
        "lww", description="How concurrent versions of a row are resolved: `lww`, `region-priority`, `custom`, or "
                           "`column-lww` (per column: concurrent changes of different columns both survive; mesh "
                           "topology only, not with `delta_columns`); see docs/conflicts.md."
    )
    region_priority: tuple[str, ...] = Field(
        (), description="Regions, highest priority first, for `region-priority` (all regions, each once)."
    )
    custom_resolver: str | None = Field(
        None, description="`module:function` returning the winning values, for `custom`."
    )
    delta_columns: tuple[str, ...] = Field(
        (), description="Numeric columns (integer or DECIMAL, NOT NULL) merged as counters: every update's "
                        "`after - before` counts once in every region, whatever the conflict strategy decides "
                        "for the other columns (docs/conflicts.md, \"delta columns\"). Mesh topology only."
    )
    single_writer: bool = Field(
        False, description="The table is written in one region only, so it may run without clock triggers: "
                           "`config check`, `status`, the producer and the sinks then do not report its changes "
                           "as unclocked. Concurrent writes to it in two regions are not detected (docs/clocks.md)."
    )

    schema_owner: str | None = Field(
        None, description="The region whose DDL of this table defines its schema (docs/schema-changes.md, "
                          "\"Schema owner\"). DDL of the table run in another region is reported (a warning "
                          "and `cdcsync_producer_ddl_not_replicated_total`), never replicated. The owner's "
                          "ALTER TABLEs are applied by the other regions' database sinks, in order with the "
                          "table's row changes. Must name a region."
    )
    allow_destructive_ddl: bool = Field(
        False, description="Let the database sinks apply the schema owner's destructive ALTERs too (DROP COLUMN, "
                           "a rename, a narrowing MODIFY, a dropped index); refused by default: the table then "
                           "waits, reported in `cdcsync status` (docs/schema-changes.md)."
    )

    @field_validator("conflict_strategy", mode="before")
    @classmethod
    def _offered(cls, value: Any) -> Any:
        # Refused by name, not as a typo: it was once planned, so a config may ask for it; say why not.
        if value == "column-merge":
            raise ValueError(f"{value!r} is not offered under that name: per-column last-writer-wins is "
                             "'column-lww' (see docs/conflicts.md)")
        return value

    @model_validator(mode="after")
    def _strategy_settings(self) -> "TableConfig":
        if self.conflict_strategy == "custom" and not self.custom_resolver:
            raise ValueError("conflict_strategy 'custom' needs custom_resolver = \"module:function\"")
        if self.custom_resolver is not None and self.custom_resolver.count(":") != 1:
            raise ValueError(f"custom_resolver {self.custom_resolver!r} must be `module:function`")
        if self.conflict_strategy == "region-priority" and not self.region_priority:
            raise ValueError("conflict_strategy 'region-priority' needs region_priority")
        if len(set(self.region_priority)) != len(self.region_priority):
            raise ValueError(f"region_priority lists a region twice: {list(self.region_priority)}")
        if len(set(self.delta_columns)) != len(self.delta_columns) or not all(self.delta_columns):
            raise ValueError(f"delta_columns must name distinct columns: {list(self.delta_columns)}")
        if self.conflict_strategy == "column-lww" and self.delta_columns:
            # The per-column stamps decide a column's value by the max-stamped write; a counter sums every
            # write. Both on one row would need the delta frontier and the stamps to agree on deletes and
            # re-inserts, which is not designed (docs/conflicts.md, "column-lww").
            raise ValueError("conflict_strategy 'column-lww' does not combine with delta_columns (a column is "
                             "either the last write's value or a sum of every write's delta; the two are not "
                             "designed together): use lww with delta_columns, or column-lww without")
        return self


class LookupConfig(_Frozen):
    """`CacheReader` and the per-table Bloom filters its region's `cdcsync bloom` maintains (docs/lookup.md)."""

    fp_rate: float = Field(
        0.01, gt=0, lt=0.5, description="False-positive rate each table's Bloom filter is sized for."
    )
    headroom: float = Field(
        2.0, ge=1.0, description="A filter is sized for the table's row count times this, so it can grow "
                                 "before a rebuild.",
    )
    min_capacity: int = Field(1000, ge=1, description="Smallest number of keys a filter is sized for.")
    rebuild_stale_ratio: float = Field(
        0.25, gt=0, description="Rebuild a filter when its deleted keys pass this fraction of the keys it holds."
    )
    rebuild_fp_factor: float = Field(
        2.0, gt=1, description="Rebuild a filter when its observed false-positive rate passes `fp_rate` times this."
    )
    rebuild_min_samples: int = Field(
        2000, ge=1, description="Absent-key lookups a filter must have answered before its observed rate counts."
    )
    negative_ttl_s: int = Field(30, ge=1, description="TTL of the negative cache entry of a key the database lacks.")
    freshness_wait_ms: int = Field(
        3000, ge=0, description="How long an absent answer waits for the filter to prove it covers the lookup's "
                                "start before the database answers instead (keep it above 250 ms, the idle "
                                "proof period).",
    )
    check_interval_s: float = Field(
        5.0, gt=0, description="How often `cdcsync bloom` checks growth, stale ratio and observed rate of each "
                               "filter.",
    )


class TopologyConfig(_Frozen):
    mode: Literal["mesh", "star"] = Field(
        "mesh", description="`mesh`: every region applies every other region's writes; `star`: spokes go through `hub`."
    )
    hub: str | None = Field(None, description="The relaying region of a star topology.")


class RegionConfig(_Frozen):
    name: str = Field(description="Region name: lower case, used in topic names and as the clock's actor.")
    server_id: int = Field(ge=1, description="server_id of the region's primary.")
    mysql: MySQLConfig = Field(default_factory=MySQLConfig)
    redis: RedisConfig = Field(default_factory=RedisConfig)
    kafka: KafkaConfig | None = Field(None, description="Region's own Kafka cluster; default the top-level one.")
    producer: ProducerConfig = Field(default_factory=ProducerConfig)
    metrics_port: int | None = Field(
        None, ge=0, le=65535, description="Port of the producer's /metrics, /healthz, /readyz (0: any free port).")
    sink: SinkConfig = Field(default_factory=SinkConfig)
    sources: tuple[str, ...] | None = Field(
        None, description="Regions whose topics this region's database sink reads; default from the topology."
    )

    @field_validator("name")
    @classmethod
    def _valid_name(cls, value: str) -> str:
        if not _NAME.match(value):
            raise ValueError(f"region name {value!r} must match {_NAME.pattern}")
        return value


class PipelineConfig(_Frozen):
    prefix: str = Field("cdcsync", description="Prefix of every topic, consumer group and cache key.")
    topic_mode: Literal["per_table", "per_region"] = Field(
        "per_table",
        description="`per_table`: `<prefix>.<region>.<db>.<table>`; `per_region`: `<prefix>.<region>.changes`.",
    )
    meta_db: str = Field("cdcsync", description="Database holding cdcsync's own tables in every region.")
    kafka: KafkaConfig = Field(default_factory=KafkaConfig)
    topology: TopologyConfig = Field(default_factory=TopologyConfig)
    cross_region_reads: Literal["source_cluster", "local_cluster"] = Field(
        "source_cluster",
        description="Where a database sink reads another region's topics: from that region's Kafka cluster "
                    "(`source_cluster`), or from its own, where MirrorMaker 2 mirrors them under the same names "
                    "(`local_cluster`).",
    )
    cache_tombstone_ttl_s: int = Field(
        86400, ge=1, description="How long a deleted row's cache tombstone (its version) is kept against replays."
    )
    tombstone_min_age_s: int = Field(
        604800, ge=0, description="Default `--min-age` of `cdcsync tombstones purge`: a row-clock tombstone is purged "
        "only when older than this in every region; longer than the longest replication outage to survive, and "
        "at least `cache_tombstone_ttl_s` (the purge refuses a shorter `--min-age`)."
    )
    auto_increment_collisions: Literal["refuse", "warn"] = Field(
        "refuse", description="Regions whose `auto_increment_increment`/`auto_increment_offset` can generate the same "
                              "id for a replicated AUTO_INCREMENT table: the producer and `config check` `refuse` "
                              "(fail) or `warn`."
    )
    lookup: LookupConfig = Field(default_factory=LookupConfig)
    tables: dict[str, TableConfig] = Field(
        default_factory=dict, description="Per-table settings, keyed by `db.table`; unlisted tables use defaults."
    )
    regions: dict[str, RegionConfig] = Field(description="The regions, keyed by name.")

    @model_validator(mode="before")
    @classmethod
    def _names_from_keys(cls, data: Any) -> Any:
        if isinstance(data, dict) and isinstance(data.get("regions"), dict):
            regions = {}
            for key, region in data["regions"].items():
                if isinstance(region, dict):
                    region = {"name": key, **region}
                regions[key] = region
            data = {**data, "regions": regions}
        return data

    @model_validator(mode="after")
    def _consistent(self) -> "PipelineConfig":
        if not self.regions:
            raise ValueError("at least one region is required")
        for key, region in self.regions.items():
            if key != region.name:
                raise ValueError(f"regions.{key}.name is {region.name!r}; it must equal the key {key!r}")
        ids = [r.server_id for r in self.regions.values()]
        if len(set(ids)) != len(ids):
            raise ValueError(f"regions.*.server_id must be unique, got {sorted(ids)}")
        hub = self.topology.hub
        if self.topology.mode == "star" and hub not in self.regions:
            raise ValueError(f"topology.hub must name a region when topology.mode is 'star' (got {hub!r})")
        for region in self.regions.values():
            for source in region.sources or ():
                if source not in self.regions or source == region.name:
                    raise ValueError(f"regions.{region.name}.sources: {source!r} is not another region")
        if self.tombstone_min_age_s < self.cache_tombstone_ttl_s:
            raise ValueError(f"tombstone_min_age_s ({self.tombstone_min_age_s}) must be at least "
                             f"cache_tombstone_ttl_s ({self.cache_tombstone_ttl_s}): a purged clock would restart "
                             f"below a cached tombstone that has not expired")
        for key in self.tables:
            if key.count(".") != 1:
                raise ValueError(f"tables: key {key!r} must be `db.table`")
        for key, table in self.tables.items():
            unknown = [r for r in table.region_priority if r not in self.regions]
            missing = [r for r in self.regions if table.region_priority and r not in table.region_priority]
            if unknown or missing:
                raise ValueError(f'tables."{key}".region_priority: unknown regions {unknown}, '
                                 f"regions not listed {missing}; list every region once")
            if table.schema_owner is not None and table.schema_owner not in self.regions:
                raise ValueError(f'tables."{key}".schema_owner: {table.schema_owner!r} is not a region '
                                 f"(regions: {', '.join(self.regions)})")
            if table.delta_columns and self.topology.mode != "mesh":
                # A hub's applied delta is published without a clock, which its spokes would apply again.
                raise ValueError(f'tables."{key}".delta_columns: offered in a mesh topology only '
                                 f"(topology.mode is {self.topology.mode!r}); see docs/conflicts.md")
            if table.conflict_strategy == "column-lww" and self.topology.mode != "mesh":
                # Merged per write: each region must receive every region's own writes from their origin,
                # and a star hub's applied merge is published without the writes it merged.
                raise ValueError(f'tables."{key}".conflict_strategy: \'column-lww\' is offered in a mesh topology '
                                 f"only (topology.mode is {self.topology.mode!r}); see docs/conflicts.md")
        return self

    def sources_of(self, region: str) -> tuple[str, ...]:
        """Regions whose change topics `region`'s database sink consumes."""
        configured = self.region(region).sources
        if configured is not None:
            return configured
        others = tuple(r for r in self.regions if r != region)
        if self.topology.mode == "mesh":
            return others
        hub = self.topology.hub
        return others if region == hub else (hub,)  # type: ignore[return-value]

    def accepts(self, region: str, source: str, origin: str) -> bool:
        """Whether `region`'s database sink applies an event read from `source`'s topics.

        Mesh: only writes first made in the source region (applied copies are never echoed).
        Star: the hub relays, so a spoke reading the hub's topics takes any origin but itself.
        """
        if origin == region:
            return False
        if self.topology.mode == "star" and source == self.topology.hub and region != source:
            return True
        return origin == source

    def table(self, db: str, table: str) -> TableConfig:
        return self.tables.get(f"{db}.{table}") or TableConfig()

    def region(self, name: str) -> RegionConfig:
        try:
            return self.regions[name]
        except KeyError:
            raise ConfigError(f"unknown region {name!r}; the config has {sorted(self.regions)}") from None

    def kafka_for(self, region: str) -> KafkaConfig:
        return self.region(region).kafka or self.kafka

    def source_kafka_for(self, region: str, source: str) -> KafkaConfig:
        """The cluster on which `region`'s sinks find `source`'s topics."""
        if source == region or self.cross_region_reads == "local_cluster":
            return self.kafka_for(region)
        return self.kafka_for(source)


def table_selected(producer: ProducerConfig, db: str, table: str) -> bool:
    """Whether `db.table` passes the include and exclude globs."""
    name = f"{db}.{table}"
    if any(fnmatch.fnmatchcase(name, pat) for pat in producer.exclude):
        return False
    return any(fnmatch.fnmatchcase(name, pat) for pat in producer.include)


def _key(loc: tuple[int | str, ...]) -> str:
    """A config key as the docs write it: a `db.table` part quoted, `tables."shop.t".cache_ttl_s`."""
    return ".".join(f'"{p}"' if "." in str(p) else str(p) for p in loc) or "(top level)"


def _describe(err: ValidationError, sources: dict[str, str] | None = None) -> str:
    lines = []
    for item in err.errors():
        path = ".".join(str(p) for p in item["loc"])
        origin = next((f" (from {var})" for prefix, var in (sources or {}).items()
                       if path == prefix or path.startswith(prefix + ".")), "")
        message = item["msg"].removeprefix("Value error, ")  # pydantic's prefix for a validator's ValueError
        lines.append(f"  {_key(item['loc'])}: {message}{origin}")
    return "invalid config:\n" + "\n".join(lines)


def parse_config(data: dict[str, Any], *, sources: dict[str, str] | None = None) -> PipelineConfig:
    """Validate a config mapping; raise ConfigError naming every bad key (and the environment
    variable that set it, per `sources`)."""
    try:
        return PipelineConfig.model_validate(data)
    except ValidationError as err:
        raise ConfigError(_describe(err, sources)) from None


def load_config(path: str | Path, environ: Mapping[str, str] | None = None) -> PipelineConfig:
    """Read a TOML config file, apply the CDCSYNC_* environment overrides (schemas/config_env.py;
    `environ` defaults to the process environment) and validate the result."""
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text())
    except FileNotFoundError:
        raise ConfigError(f"config file {path} does not exist") from None
    except tomllib.TOMLDecodeError as err:
        raise ConfigError(f"config file {path} is not valid TOML: {err}") from None
    data, sources = apply_env(data, PipelineConfig, os.environ if environ is None else environ)
    return parse_config(data, sources=sources)
