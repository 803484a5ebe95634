"""A consumer group's progress per partition: committed offset and watermarks, read without joining.

`cdcsync status` reports it; a sink without partitions asks it whether anyone applies its group's
lag (consumers/assignment_watchdog.py).
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterable
from dataclasses import dataclass

from confluent_kafka import Consumer, KafkaException
from confluent_kafka import TopicPartition as KafkaTP

from common.kafka import kafka_message, watermarks

__all__ = ["PartitionLag", "group_partition_lags", "matching_topics", "partition_lag"]


@dataclass(frozen=True, slots=True)
class PartitionLag:
    topic: str
    partition: int
    committed: int | None      # None: the group has committed nothing on this partition
    low: int
    high: int

    @property
    def lag(self) -> int:
        return partition_lag(self.committed, self.low, self.high)


def partition_lag(committed: int | None, low: int, high: int) -> int:
    """Messages a group has still to read on one partition."""
    position = committed if committed is not None and committed >= 0 else low
    return max(0, high - max(position, low))


def matching_topics(topics: Iterable[str], subscriptions: list[str]) -> list[str]:
    """The topics a consumer subscribed to `subscriptions` gets: `^...` entries are regexes."""
    patterns = [re.compile(s) for s in subscriptions if s.startswith("^")]
    exact = {s for s in subscriptions if not s.startswith("^")}
    return sorted(t for t in topics if t in exact or any(p.search(t) for p in patterns))


def group_partition_lags(settings: dict[str, object], group: str, patterns: list[str],
                         timeout_s: float) -> tuple[PartitionLag, ...]:
    """Per partition of the topics `patterns` match: the group's committed offset and the watermarks.
    Also the sinks' own liveness check (consumers/assignment_watchdog.py)."""
    # The group's id only lets `committed()` fetch its offsets: no subscribe, so no join, no commit.
    consumer = Consumer({**settings, "group.id": group, "enable.auto.commit": False,
                         "enable.auto.offset.store": False, "client.id": f"cdcsync-status-{uuid.uuid4().hex[:8]}"})
    try:
        metadata = consumer.list_topics(timeout=timeout_s)
        topics = matching_topics((t for t in metadata.topics if not t.startswith("__")), patterns)
        wanted = [KafkaTP(t, p) for t in topics for p in sorted(metadata.topics[t].partitions)]
        if not wanted:
            return ()
        committed = {(tp.topic, tp.partition): tp.offset for tp in consumer.committed(wanted, timeout=timeout_s)}
    except KafkaException as err:
        raise RuntimeError(kafka_message(err)) from None
    finally:
        consumer.close()
    ends = watermarks(settings, wanted, timeout_s)
    result = []
    for tp in wanted:
        low, high = ends[(tp.topic, tp.partition)]
        offset = committed.get((tp.topic, tp.partition))
        result.append(PartitionLag(tp.topic, tp.partition, offset if offset is not None and offset >= 0 else None,
                                   low, high))
    return tuple(result)
