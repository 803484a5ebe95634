"""Publishes committed conflict resolutions to `<prefix>.conflicts`, for alerting.

Called after the database commit: the conflict-log table is the record of truth, and the topic is a
feed of it (a crash between the commit and the publish loses a topic message, never a log row).
"""

from __future__ import annotations

import orjson

from common.acked_producer import AckedProducer, Outgoing
from schemas.conflict_record import ConflictRecord


class ConflictPublisher:
    def __init__(self, producer_settings: dict[str, object], topic: str) -> None:
        self._producer = AckedProducer(producer_settings, f"conflicts topic {topic}")
        self.topic = topic

    def publish(self, records: list[ConflictRecord], timeout: float = 30.0) -> None:
        """Publish and wait for the broker's acknowledgement; raise if any is not acknowledged."""
        self._producer.send((Outgoing(self.topic, record.model_dump_json().encode(),
                                      f"{record.db}.{record.table}:".encode() + orjson.dumps(list(record.pk.values())))
                             for record in records), timeout)
