"""Publishes committed conflict resolutions to `<prefix>.conflicts`, for alerting.

Called after the database commit: the conflict-log table is the record of truth, and the topic is a
feed of it (a crash between the commit and the publish loses a topic message, never a log row).
"""

from __future__ import annotations

import orjson
from confluent_kafka import Producer

from schemas.conflict_record import ConflictRecord


class ConflictPublisher:
    def __init__(self, producer_settings: dict[str, object], topic: str) -> None:
        self._producer = Producer({**producer_settings, "enable.idempotence": True, "acks": "all"})
        self.topic = topic

    def publish(self, records: list[ConflictRecord], timeout: float = 30.0) -> None:
        """Publish and wait for the broker's acknowledgement; raise if any is not acknowledged."""
        failures: list[str] = []

        def on_delivery(err: object, msg: object) -> None:
            if err is not None:
                failures.append(str(err))

        for record in records:
            key = f"{record.db}.{record.table}:".encode() + orjson.dumps(list(record.pk.values()))
            self._producer.produce(self.topic, record.model_dump_json().encode(), key, on_delivery=on_delivery)
        remaining = self._producer.flush(timeout)
        if remaining or failures:
            raise RuntimeError(f"conflicts topic {self.topic}: {remaining} unacknowledged, errors {failures[:3]}")
