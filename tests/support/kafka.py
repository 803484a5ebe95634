"""Reading topics in tests: assign every partition from the start (no group join to wait for)."""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass

from confluent_kafka import Consumer, TopicPartition
from confluent_kafka.admin import AdminClient

from common.kafka import TopicCreator, client_settings
from consumers.topic_ids import TopicIds
from schemas.codec import decode
from schemas.config import KafkaConfig
from schemas.events import ChangeEvent, DdlEvent


@dataclass(frozen=True, slots=True)
class Record:
    topic: str
    partition: int
    offset: int
    key: bytes | None
    headers: dict[str, bytes]
    message: ChangeEvent | DdlEvent


def topics_with_prefix(bootstrap: str, prefix: str) -> list[str]:
    admin = AdminClient({"bootstrap.servers": bootstrap})
    return sorted(t for t in admin.list_topics(timeout=10).topics if t.startswith(prefix))


def read_all(bootstrap: str, topics: list[str], *, expect: int | None = None, idle_s: float = 2.0,
             timeout_s: float = 60.0) -> list[Record]:
    """Every message of `topics`, decoded and validated. Stops at `expect` messages, or after
    `idle_s` without a new one, or at `timeout_s`."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"test-{uuid.uuid4().hex}",
                         "enable.auto.commit": False, "auto.offset.reset": "earliest"})
    try:
        deadline = time.monotonic() + timeout_s
        metadata = consumer.list_topics(timeout=10)
        while not all(t in metadata.topics for t in topics):   # the producer creates them on first use
            if time.monotonic() > deadline:
                raise AssertionError(f"topics never appeared: {sorted(set(topics) - set(metadata.topics))}")
            time.sleep(0.2)
            metadata = consumer.list_topics(timeout=10)
        assignment = [TopicPartition(t, p, 0) for t in topics for p in metadata.topics[t].partitions]
        consumer.assign(assignment)
        records: list[Record] = []
        last_new = time.monotonic()
        while time.monotonic() < deadline:
            batch = consumer.consume(1000, 0.2)
            for msg in batch:
                if msg.error():
                    raise RuntimeError(str(msg.error()))
                records.append(Record(msg.topic(), msg.partition(), msg.offset(), msg.key(),
                                      dict(msg.headers() or []), decode(msg.value())))
            if batch:
                last_new = time.monotonic()
            if expect is not None and len(records) >= expect:
                break
            if expect is None and time.monotonic() - last_new > idle_s:
                break
        return records
    finally:
        consumer.close()


class CreatingTopicIds(TopicIds):
    """For tests that hand a sink records they made themselves, naming topics nobody produced to:
    each topic is created for real on its first lookup, then the real cluster is asked for its id
    (the sink stores it in its marker). Unanswered lookups raise as in `TopicIds`."""

    def __init__(self, kafka: KafkaConfig) -> None:
        super().__init__(client_settings(kafka))
        self._creator = TopicCreator(kafka)

    def get(self, topic: str, *, fresh: bool = False) -> str | None:
        self._creator.ensure(topic)
        return super().get(topic, fresh=fresh)
