"""The Kafka side of a sink: one member of a consumer group, explicit commits only. Keeps the
`Source` contract (consumers/source_protocol.py).

Threading: everything, including the rebalance callbacks, runs on the thread that calls `consume`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from confluent_kafka import Consumer, KafkaException
from confluent_kafka import TopicPartition as KafkaTP

from consumers.records import SourceRecord, TopicPartition
from common.kafka_link import KafkaLinkWatch

log = logging.getLogger(__name__)


class KafkaSource:
    def __init__(self, settings: dict[str, object], group_id: str, *, session_timeout_ms: int,
                 on_revoke: Callable[[list[TopicPartition]], None]) -> None:
        self._consumer = Consumer({
            **settings,
            "group.id": group_id,
            "enable.auto.commit": False,
            "enable.auto.offset.store": False,
            "auto.offset.reset": "earliest",
            "session.timeout.ms": session_timeout_ms,
            "heartbeat.interval.ms": max(500, session_timeout_ms // 6),
            # New tables mean new topics; a regex subscription sees them after a metadata refresh.
            "topic.metadata.refresh.interval.ms": 5000,
            "partition.assignment.strategy": "cooperative-sticky",
            **KafkaLinkWatch("consumer").settings(),     # `kafka consumer: lost broker` / `reconnected`
        })
        self._on_revoke = on_revoke
        self.assigned: set[TopicPartition] = set()

    def subscribe(self, patterns: list[str]) -> None:
        self._consumer.subscribe(patterns, on_assign=self._assigned, on_revoke=self._revoked, on_lost=self._lost)

    def _assigned(self, consumer: Consumer, partitions: list[KafkaTP]) -> None:
        self.assigned |= {TopicPartition(p.topic, p.partition) for p in partitions}
        log.info("assigned %s", sorted((p.topic, p.partition) for p in partitions))

    def _revoked(self, consumer: Consumer, partitions: list[KafkaTP]) -> None:
        revoked = [TopicPartition(p.topic, p.partition) for p in partitions]
        log.info("revoked %s", sorted((p.topic, p.partition) for p in revoked))
        self._on_revoke(revoked)          # the runner finishes and commits its in-flight batch here
        self.assigned -= set(revoked)

    def _lost(self, consumer: Consumer, partitions: list[KafkaTP]) -> None:
        # Lost, not revoked: another member may already own them; committing now could fail, and the
        # database markers make whatever it replays harmless.
        lost = {TopicPartition(p.topic, p.partition) for p in partitions}
        log.warning("partitions lost: %s", sorted((p.topic, p.partition) for p in lost))
        self.assigned -= lost

    def consume(self, max_messages: int, timeout_s: float) -> list[SourceRecord]:
        records = []
        for msg in self._consumer.consume(max_messages, timeout_s):
            err = msg.error()
            if err is not None:
                if err.fatal():
                    raise KafkaException(err)
                log.warning("consumer: %s", err)
                continue
            records.append(SourceRecord.from_message(msg.topic(), msg.partition(), msg.offset(), msg.key(),
                                                     msg.value()))
        return records

    def commit(self, records: list[SourceRecord]) -> None:
        """Commit, synchronously, the offset after the last record of each partition."""
        next_offsets: dict[tuple[str, int], int] = {}
        for r in records:
            next_offsets[(r.topic, r.partition)] = max(next_offsets.get((r.topic, r.partition), 0), r.offset + 1)
        if not next_offsets:
            return
        offsets = [KafkaTP(t, p, o) for (t, p), o in next_offsets.items()]
        try:
            self._consumer.commit(offsets=offsets, asynchronous=False)
        except KafkaException as err:
            # Typically a rebalance took the partition; its new owner replays and the markers skip.
            log.warning("offset commit failed (%s); the next owner will replay, harmlessly", err)

    def lag(self) -> dict[TopicPartition, int]:
        """High watermark minus committed offset, per assigned partition."""
        result: dict[TopicPartition, int] = {}
        if not self.assigned:
            return result
        committed = self._consumer.committed([KafkaTP(tp.topic, tp.partition) for tp in self.assigned], timeout=5)
        for tp in committed:
            # Cached: the high watermark from fetch responses. (The sandbox broker answers a
            # ListOffsets "latest" short of the real end when its last batch holds several records.)
            low, high = self._consumer.get_watermark_offsets(tp, timeout=5, cached=True)
            if high < 0:
                continue
            position = tp.offset if tp.offset >= 0 else low
            result[TopicPartition(tp.topic, tp.partition)] = max(0, high - position)
        return result

    def close(self) -> None:
        self._consumer.close()
