"""Where a new region's database sink starts reading: recorded before its seed snapshot, committed after.

`cdcsync region add NAME --seed-from SEED` (cdcsync/tools/regions/add.py) copies SEED's database into
NAME. NAME's `<prefix>.NAME.db` group must then read, for each of NAME's source regions S, from a
point where everything before it is already in the copy:

- S == SEED: SEED's change topics' end offsets, recorded before the snapshot starts. Every event
  below them was published after its transaction committed, so before the snapshot: it is in the copy.
- S != SEED: SEED's own database sink group's committed offsets on S's topics. That sink commits
  offsets only after its database commit, so everything below them is in SEED's database, and in
  the copy. A partition without a committed offset is refused, unless it is empty (nothing to miss).

Events after those offsets may also be in the copy already; NAME's sink compares vector clocks
and skips equal and dominated versions, so replaying them is harmless (docs/regions.md).

Offsets are committed with a consumer that has the group's id but never subscribes: no join, and
the group has no members yet, so the broker takes the commit (checked on Tansu in the sandbox).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from confluent_kafka import Consumer, KafkaException, TopicPartition as KafkaTP

from common.group_lag import matching_topics
from common.kafka import client_settings, watermarks
from consumers.service import group_id
from schemas.config import KafkaConfig, PipelineConfig
from schemas.topics import TopicNames


class RegionAddError(RuntimeError):
    """A precondition of `cdcsync region add` does not hold; the message says which and what to do."""


@dataclass(frozen=True, slots=True)
class StartOffset:
    source: str        # the region whose change topic this is
    topic: str
    partition: int
    offset: int
    why: str           # "seed end", "seed sink committed", "empty partition"


@dataclass(frozen=True, slots=True)
class ClusterOffsets:
    """NAME's db group's start offsets on one Kafka cluster."""

    kafka: KafkaConfig
    offsets: tuple[StartOffset, ...]


def _consumer(kafka: KafkaConfig, group: str) -> Consumer:
    # Never subscribes: committed() and commit() with the group's id, no join, nothing disturbed.
    return Consumer({**client_settings(kafka), "group.id": group, "enable.auto.commit": False,
                     "enable.auto.offset.store": False, "client.id": f"cdcsync-region-add-{uuid.uuid4().hex[:8]}"})


def _partitions(consumer: Consumer, pattern: str, timeout_s: float) -> list[KafkaTP]:
    metadata = consumer.list_topics(timeout=timeout_s)
    topics = matching_topics((t for t in metadata.topics if not t.startswith("__")), [pattern])
    return [KafkaTP(t, p) for t in topics for p in sorted(metadata.topics[t].partitions)]


def committed(kafka: KafkaConfig, group: str, pattern: str, *,
              timeout_s: float = 10.0) -> dict[tuple[str, int], int | None]:
    """The group's committed offset on every partition of the topics matching `pattern` (None: none)."""
    consumer = _consumer(kafka, group)
    try:
        wanted = _partitions(consumer, pattern, timeout_s)
        if not wanted:
            return {}
        found = consumer.committed(wanted, timeout=timeout_s)
    except KafkaException as err:
        raise RegionAddError(f"kafka {kafka.bootstrap}: cannot read offsets of group {group}: {err}") from None
    finally:
        consumer.close()
    return {(tp.topic, tp.partition): (tp.offset if tp.offset >= 0 else None) for tp in found}


def _same_cluster(a: KafkaConfig, b: KafkaConfig) -> bool:
    return a.model_dump_json() == b.model_dump_json()


def refuse_used_group(config: PipelineConfig, name: str, *, timeout_s: float = 10.0) -> None:
    """Refuse when NAME's db group has committed offsets anywhere: it is not new."""
    group = group_id(config, name, "db")
    names = TopicNames.of(config)
    for source in config.sources_of(name):
        kafka = config.source_kafka_for(name, source)
        used = sorted(f"{t}[{p}]@{o}" for (t, p), o in
                      committed(kafka, group, names.change_subscription(source), timeout_s=timeout_s).items()
                      if o is not None)
        if used:
            raise RegionAddError(f"consumer group {group} already has committed offsets ({', '.join(used[:5])}"
                                 f"{', ...' if len(used) > 5 else ''}): region {name} is not new; "
                                 f"`region add` only seeds a region whose database sink never ran")


def record_start_offsets(config: PipelineConfig, name: str, seed: str, *,
                         timeout_s: float = 10.0) -> list[ClusterOffsets]:
    """NAME's db group's start offsets, per cluster it reads from. Call BEFORE the seed snapshot."""
    names = TopicNames.of(config)
    seed_group = group_id(config, seed, "db")
    by_cluster: dict[str, tuple[KafkaConfig, list[StartOffset]]] = {}
    for source in config.sources_of(name):
        kafka = config.source_kafka_for(name, source)
        pattern = names.change_subscription(source)
        entry = by_cluster.setdefault(kafka.model_dump_json(), (kafka, []))[1]
        if source == seed:
            probe = _consumer(kafka, f"cdcsync-region-add-{uuid.uuid4().hex}")
            try:
                wanted = _partitions(probe, pattern, timeout_s)
            finally:
                probe.close()
            ends = watermarks(client_settings(kafka), wanted, timeout_s) if wanted else {}
            entry.extend(StartOffset(source, t, p, high, "seed end") for (t, p), (_, high) in sorted(ends.items()))
            continue
        seed_kafka = config.source_kafka_for(seed, source)
        if not _same_cluster(seed_kafka, kafka):
            raise RegionAddError(
                f"region {seed} reads {source}'s topics on {seed_kafka.bootstrap} and region {name} would read "
                f"them on {kafka.bootstrap}: offsets of one cluster mean nothing on another (mirrored topics); "
                f"seed from {source}, or from a region reading the same cluster")
        if source not in config.sources_of(seed):
            raise RegionAddError(f"region {seed} does not apply {source}'s changes, so its database does not "
                                 f"show where region {name} should start on them; seed from a region that does")
        offsets = committed(kafka, seed_group, pattern, timeout_s=timeout_s)
        ends = watermarks(client_settings(kafka), [KafkaTP(t, p) for t, p in offsets], timeout_s) if offsets else {}
        missing = []
        for (topic, partition), offset in sorted(offsets.items()):
            low, high = ends[(topic, partition)]
            if offset is not None:
                entry.append(StartOffset(source, topic, partition, offset, "seed sink committed"))
            elif low >= high:
                entry.append(StartOffset(source, topic, partition, high, "empty partition"))
            else:
                missing.append(f"{topic}[{partition}]")
        if missing:
            raise RegionAddError(
                f"consumer group {seed_group} has no committed offset on {', '.join(missing[:5])}"
                f"{', ...' if len(missing) > 5 else ''}: region {seed}'s database sink has not applied "
                f"{source}'s changes there yet; start it (or let it catch up) and run region add again")
    return [ClusterOffsets(kafka, tuple(offsets)) for kafka, offsets in by_cluster.values()]


def commit_start_offsets(config: PipelineConfig, name: str, clusters: list[ClusterOffsets], *,
                         timeout_s: float = 10.0) -> int:
    """Commit the recorded offsets for NAME's db group; returns how many partitions were committed."""
    group = group_id(config, name, "db")
    done = 0
    for cluster in clusters:
        if not cluster.offsets:
            continue
        consumer = _consumer(cluster.kafka, group)
        try:
            result = consumer.commit(offsets=[KafkaTP(o.topic, o.partition, o.offset) for o in cluster.offsets],
                                     asynchronous=False)
        except KafkaException as err:
            raise RegionAddError(f"kafka {cluster.kafka.bootstrap}: cannot commit offsets of {group}: {err}") from None
        finally:
            consumer.close()
        failed = [f"{tp.topic}[{tp.partition}]: {tp.error}" for tp in result or [] if tp.error is not None]
        if failed:
            raise RegionAddError(f"kafka {cluster.kafka.bootstrap}: commit of {group} failed: {', '.join(failed)}")
        done += len(cluster.offsets)
    return done
