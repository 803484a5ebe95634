"""Kafka topic ids: which incarnation of a topic a partition's offsets belong to.

A deleted and recreated topic (or one on a restarted in-memory broker) restarts its offsets at 0
under a new id, so the database sink stores the id with each partition's applied offset and
trusts the offset only within that id (consumers/db/replays.py).
"""

from __future__ import annotations

import logging
import time
from typing import Any

from confluent_kafka import TopicCollection
from confluent_kafka.admin import AdminClient

log = logging.getLogger(__name__)


class TopicIds:
    """Topic name -> id (text), from the cluster's metadata; cached for `ttl_s` (unknown too)."""

    def __init__(self, settings: dict[str, Any], ttl_s: float = 30.0, timeout_s: float = 5.0) -> None:
        self._settings = settings
        self._admin: AdminClient | None = None
        self._ttl_s, self._timeout_s = ttl_s, timeout_s
        self._known: dict[str, tuple[str | None, float]] = {}

    def get(self, topic: str, *, fresh: bool = False) -> str | None:
        """The topic's id, None when the cluster does not say (unknown topic, no topic ids, no answer).
        `fresh`: ask the cluster now (to prove a replay), not the cache."""
        known = self._known.get(topic)
        now = time.monotonic()
        if not fresh and known is not None and now - known[1] < self._ttl_s:
            return known[0]
        found = self._describe(topic)
        self._known[topic] = (found, now)
        return found

    def _describe(self, topic: str) -> str | None:
        if self._admin is None:
            self._admin = AdminClient(self._settings)
        try:
            future = self._admin.describe_topics(TopicCollection([topic]),
                                                 request_timeout=self._timeout_s)[topic]
            topic_id = future.result(timeout=self._timeout_s).topic_id
        except Exception as err:  # noqa: BLE001 - unknown topic, old broker, timeout: the id is unknown
            log.debug("topic id of %s unknown: %s", topic, err)
            return None
        text = str(topic_id) if topic_id is not None else ""
        return text if text and text != "AAAAAAAAAAAAAAAAAAAAAA" else None   # the zero id: not supported
