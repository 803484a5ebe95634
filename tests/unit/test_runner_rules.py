"""The sink runner's rules (tests/support/runner_rules.py) on the in-memory source: the fast half
of the suite that tests/integration/test_runner_rules_kafka.py runs on Kafka."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from consumers.memory_source import InMemorySource, MemoryBroker
from consumers.records import TopicPartition
from tests.support.runner_rules import Backend, FakeDeadLetters, Journal, RunnerRules


class MemoryBackend(Backend):
    join_timeout_s = 5.0
    settle_s = 0.3

    def __init__(self) -> None:
        self.broker = MemoryBroker()
        self._topics = 0

    def topic(self, partitions: int) -> str:
        self._topics += 1
        name = f"test-{self._topics}"
        self.broker.create_topic(name, partitions)
        return name

    def produce(self, topic: str, partition: int, payloads: list[bytes]) -> None:
        for payload in payloads:
            self.broker.produce(topic, partition, payload)

    def source(self, group: str, topic: str, on_revoke: Callable[[list[TopicPartition]], None]) -> InMemorySource:
        source = InMemorySource(self.broker, group, on_revoke=on_revoke)
        source.subscribe([topic])
        return source

    def committed(self, group: str, topic: str, partitions: int) -> dict[int, int | None]:
        return {p: self.broker.committed(group, TopicPartition(topic, p)) for p in range(partitions)}

    def dead_letters(self, journal: Journal, *, fail: bool = False) -> Any:
        return FakeDeadLetters(journal, fail=fail)


class TestRunnerRulesInMemory(RunnerRules):
    @pytest.fixture
    def backend(self) -> MemoryBackend:
        return MemoryBackend()
