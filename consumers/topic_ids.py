"""Kafka topic ids: which incarnation of a topic a partition's offsets belong to.

A deleted and recreated topic (or one on a restarted in-memory broker) restarts its offsets at 0
under a new id, so the database sink stores the id with each partition's applied offset and
trusts the offset only within that id (consumers/db/replays.py).

Only an answer is an answer: a broker that does not reply in time (a stall, a lost connection) or
replies with an error raises `TopicIdUnavailable`, a transient error the sink retries with its
batch rolled back, and nothing is cached. A marker written with no id while the topic has one
would leave a later replay of that partition unprovable (docs/reliability.md).
"""

from __future__ import annotations

import logging
import time
from typing import Any

from confluent_kafka import KafkaError, KafkaException, TopicCollection
from confluent_kafka.admin import AdminClient

from common.acked_producer import BrokerUnreachable

log = logging.getLogger(__name__)

_ZERO_ID = "AAAAAAAAAAAAAAAAAAAAAA"   # the null Uuid: a broker without topic ids
# Errors that are the broker's answer "this request (topic ids) is not supported here".
_NO_TOPIC_IDS = {KafkaError.UNSUPPORTED_VERSION, KafkaError._UNSUPPORTED_FEATURE}


class TopicIdUnavailable(BrokerUnreachable):
    """The cluster did not answer the topic id lookup: a TimeoutError, so `common.retry` retries it,
    and when the retries run out the sink exits with one `cannot reach Kafka (...)` line."""


class TopicIds:
    """Topic name -> id (text), from the cluster's metadata; answers are cached for `ttl_s`."""

    def __init__(self, settings: dict[str, Any], ttl_s: float = 30.0, timeout_s: float = 5.0) -> None:
        self._settings = settings
        self._admin: Any = None   # an AdminClient, made on first use
        self._ttl_s, self._timeout_s = ttl_s, timeout_s
        self._known: dict[str, tuple[str | None, float]] = {}

    def get(self, topic: str, *, fresh: bool = False) -> str | None:
        """The topic's id; None only when the cluster answered that it has none (a broker without
        topic ids). `fresh`: ask the cluster now (to prove a replay), not the cache.
        Raises `TopicIdUnavailable` when the cluster did not answer; that is never cached."""
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
        except KafkaException as err:
            error = err.args[0] if err.args and isinstance(err.args[0], KafkaError) else None
            if error is not None and error.code() in _NO_TOPIC_IDS:
                log.debug("topic id of %s: the broker has none (%s)", topic, error)
                return None
            # A topic the sink reads records of exists: UNKNOWN_TOPIC here is stale metadata, retried too.
            raise TopicIdUnavailable(f"topic id of {topic}: no answer from the cluster ({err})") from err
        except Exception as err:  # noqa: BLE001 - a timeout, a closed client: not an answer
            raise TopicIdUnavailable(f"topic id of {topic}: no answer from the cluster within "
                                     f"{self._timeout_s:g} s ({type(err).__name__}: {err})") from err
        text = str(topic_id) if topic_id is not None else ""
        return text if text and text != _ZERO_ID else None
