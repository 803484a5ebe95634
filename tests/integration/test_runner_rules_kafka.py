"""The sink runner's rules (tests/support/runner_rules.py) on KafkaSource and the real Tansu broker
of the sandbox: the twin of tests/unit/test_runner_rules.py. Nothing of Kafka is faked: topics are
created and deleted through AdminClient, dead letters go through the real `DeadLetterPublisher`
(a failing one points at a closed port), committed offsets are read back from the broker.
`session.timeout.ms` 6000, so a join takes about 3 s."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from confluent_kafka import Consumer, Producer
from confluent_kafka import TopicPartition as KafkaTP
from confluent_kafka.admin import AdminClient, NewTopic

from common.kafka import client_settings
from consumers.dlq import DeadLetter, DeadLetterPublisher
from consumers.records import TopicPartition
from consumers.source import KafkaSource
from deploy.local.processes import free_port
from schemas.config import PipelineConfig
from tests.support.runner_rules import Backend, Journal, RunnerRules

pytestmark = pytest.mark.integration


class JournaledPublisher(DeadLetterPublisher):
    """The real publisher; what the broker acknowledged is journaled after `publish` returns."""

    def __init__(self, journal: Journal, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.journal = journal

    def publish(self, letters: list[DeadLetter], timeout: float = 30.0) -> None:
        super().publish(letters, timeout)
        if letters:
            self.journal.add("dead_letter", "dlq", [(lt.record.partition, lt.record.offset) for lt in letters])


class KafkaBackend(Backend):
    join_timeout_s = 30.0
    settle_s = 2.0

    def __init__(self, settings: dict[str, object]) -> None:
        self.settings = settings
        self.admin = AdminClient(settings)
        self.topics: list[str] = []
        self.sources: list[KafkaSource] = []

    def topic(self, partitions: int) -> str:
        name = f"test-{uuid.uuid4().hex}"
        for future in self.admin.create_topics([NewTopic(name, partitions, 1)]).values():
            future.result(timeout=30)
        self.topics.append(name)
        return name

    def produce(self, topic: str, partition: int, payloads: list[bytes]) -> None:
        producer = Producer({**self.settings, "enable.idempotence": True, "acks": "all"})
        for payload in payloads:
            producer.produce(topic, payload, partition=partition)
        assert producer.flush(30) == 0, f"{topic}: produce not acknowledged"

    def source(self, group: str, topic: str, on_revoke: Callable[[list[TopicPartition]], None]) -> KafkaSource:
        source = KafkaSource(self.settings, group, session_timeout_ms=6000, on_revoke=on_revoke)
        source.subscribe([topic])
        self.sources.append(source)
        return source

    def committed(self, group: str, topic: str, partitions: int) -> dict[int, int | None]:
        consumer = Consumer({**self.settings, "group.id": group})   # asks the broker; joins nothing
        try:
            offsets = consumer.committed([KafkaTP(topic, p) for p in range(partitions)], timeout=10)
        finally:
            consumer.close()
        return {tp.partition: tp.offset if tp.offset >= 0 else None for tp in offsets}

    def dead_letters(self, journal: Journal, *, fail: bool = False) -> Any:
        if fail:    # nothing listens there: every publish times out unacknowledged after 1.5 s
            settings: dict[str, object] = {"bootstrap.servers": f"127.0.0.1:{free_port()}",
                                           "message.timeout.ms": 1500}
            return JournaledPublisher(journal, settings, "never-acknowledged", region="eu", sink="test")
        dlq = self.topic(1)
        return JournaledPublisher(journal, self.settings, dlq, region="eu", sink="test")

    def delete_topics(self) -> None:
        if self.topics:
            for future in self.admin.delete_topics(self.topics).values():
                future.result(timeout=30)


class TestRunnerRulesKafka(RunnerRules):
    @pytest.fixture
    def backend(self, sandbox_config: PipelineConfig) -> Iterator[KafkaBackend]:
        backend = KafkaBackend(client_settings(sandbox_config.kafka_for("eu")))
        try:
            yield backend
        finally:
            backend.delete_topics()
