"""Topic names, and creating topics explicitly (auto-created topics are not to be trusted)."""

from __future__ import annotations

import logging

from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient, NewTopic

from schemas.config import KafkaConfig, PipelineConfig

log = logging.getLogger(__name__)


class TopicNames:
    """Every topic name cdcsync uses, in one place."""

    def __init__(self, prefix: str, topic_mode: str = "per_table") -> None:
        self.prefix = prefix
        self.mode = topic_mode

    @classmethod
    def of(cls, config: PipelineConfig) -> "TopicNames":
        return cls(config.prefix, config.topic_mode)

    def changes(self, region: str, db: str, table: str) -> str:
        if self.mode == "per_region":
            return f"{self.prefix}.{region}.changes"
        return f"{self.prefix}.{region}.{db}.{table}"

    def schema(self, region: str) -> str:
        return f"{self.prefix}.{region}._schema"

    def dlq(self, region: str) -> str:
        return f"{self.prefix}.{region}.dlq"

    def conflicts(self) -> str:
        return f"{self.prefix}.conflicts"

    def change_subscription(self, region: str) -> str:
        """What a consumer subscribes to for `region`'s change topics: a regex (librdkafka's has no
        look-ahead, so it relies on `<db>.<table>` holding exactly one dot), or the one topic."""
        if self.mode == "per_region":
            return self.changes(region, "", "")
        escaped = f"{self.prefix}.{region}".replace(".", r"\.")
        return f"^{escaped}\\.[^.]+\\.[^.]+$"


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
