"""Kafka plumbing shared by both sides: client settings, creating topics explicitly (auto-created
topics are not to be trusted), and reading partition watermarks. Topic names: schemas/topics.py."""

from __future__ import annotations

import logging
import time
import uuid

from confluent_kafka import Consumer, KafkaError, KafkaException
from confluent_kafka import TopicPartition as KafkaTP
from confluent_kafka.admin import AdminClient, NewTopic

from schemas.config import KafkaConfig

log = logging.getLogger(__name__)


def client_settings(kafka: KafkaConfig) -> dict[str, object]:
    """librdkafka settings common to every client: bootstrap plus the pass-through extras."""
    return kafka.client_settings()


class TopicCreator:
    """Creates topics once per process; remembers what exists so the hot path asks nothing."""

    def __init__(self, kafka: KafkaConfig) -> None:
        self._admin = AdminClient(client_settings(kafka))
        self._kafka = kafka
        self._known: set[str] = set()

    def ensure(self, *topics: str, timeout: float = 30.0) -> None:
        missing = [t for t in topics if t not in self._known]
        if not missing:
            return
        existing = set(self._admin.list_topics(timeout=timeout).topics)
        to_create = [t for t in missing if t not in existing]
        if to_create:
            futures = self._admin.create_topics(
                [NewTopic(t, num_partitions=self._kafka.partitions, replication_factor=self._kafka.replication_factor)
                 for t in to_create], request_timeout=timeout)
            for topic, future in futures.items():
                try:
                    future.result()
                    log.info("created topic %s", topic)
                except KafkaException as err:
                    if err.args[0].name() != "TOPIC_ALREADY_EXISTS":
                        raise
        self._known.update(missing)


def watermarks(settings: dict[str, object], partitions: list[KafkaTP],
               timeout_s: float) -> dict[tuple[str, int], tuple[int, int]]:
    """(low, high) watermarks per partition. The high one is the larger of the ListOffsets answer
    and the one a fetch of the partition's last record reports: the sandbox broker (Tansu) answers
    ListOffsets with its last batch's base offset + 1, short of the end whenever that batch holds
    several records. The probe uses a throwaway group id, assigns, and commits nothing."""
    consumer = Consumer({**settings, "group.id": f"cdcsync-status-{uuid.uuid4().hex}", "enable.auto.commit": False,
                         "enable.auto.offset.store": False, "enable.partition.eof": True})
    try:
        listed = {}
        for tp in partitions:
            listed[(tp.topic, tp.partition)] = consumer.get_watermark_offsets(tp, timeout=timeout_s, cached=False)
        probe = {key: max(low, high - 1) for key, (low, high) in listed.items() if high > low}
        if not probe:
            return dict(listed)
        consumer.assign([KafkaTP(t, p, offset) for (t, p), offset in probe.items()])
        waiting = set(probe)
        deadline = time.monotonic() + timeout_s
        while waiting and time.monotonic() < deadline:
            for msg in consumer.consume(500, 0.2):
                err = msg.error()
                if err is None or err.code() == KafkaError._PARTITION_EOF:
                    waiting.discard((msg.topic(), msg.partition()))
        result = dict(listed)
        for (topic, partition), (low, high) in listed.items():
            if (topic, partition) in probe:
                _, fetched = consumer.get_watermark_offsets(KafkaTP(topic, partition), cached=True)
                result[(topic, partition)] = (low, max(high, fetched))
        return result
    except KafkaException as err:
        raise RuntimeError(kafka_message(err)) from None
    finally:
        consumer.close()


def kafka_message(err: KafkaException) -> str:
    first = err.args[0] if err.args else err
    return first.str() if hasattr(first, "str") else str(first)
