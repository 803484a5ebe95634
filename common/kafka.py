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


# Defaults for latency (docs/performance.md, "Defaults for latency"); `kafka.extra` overrides each.
# Every client: a small request is sent at once, not held back by Nagle's algorithm until the
# previous one is acknowledged.
CLIENT_DEFAULTS: dict[str, object] = {"socket.nagle.disable": True}
# The sinks' consumers. A fetch that finds nothing waits at the broker up to `fetch.wait.max.ms`
# (librdkafka's default 500), and the sandbox broker (Tansu 0.6) answers only when that wait runs
# out, so it bounds the delay of every hop: with 100 ms a change waits up to ~70 ms per hop (500:
# ~280), for ~10 empty fetches a second per consumer at rest (the broker's idle CPU ~50 ms/s
# against ~18). 50 ms halves the waits again but doubles the broker's CPU per write and adds a
# quarter to the pipeline's (docs/performance.md, "Defaults for latency").
CONSUMER_DEFAULTS: dict[str, object] = {"fetch.wait.max.ms": 100, "fetch.min.bytes": 1}


def client_settings(kafka: KafkaConfig) -> dict[str, object]:
    """librdkafka settings common to every client: bootstrap plus the pass-through extras."""
    return {**CLIENT_DEFAULTS, **kafka.client_settings()}


# How long a streaming component waits for an absent broker to create a topic: as long as a publish
# waits for its acknowledgement (librdkafka's default `message.timeout.ms`), after which it stops.
STREAMING_OUTAGE_S = 300.0


class TopicCreator:
    """Creates topics once per process; remembers what exists so the hot path asks nothing.

    `outage_s`: how long `ensure` keeps trying while the broker does not answer (a stall, a network
    partition), one warning per attempt and `reconnected` at the end; 0 raises at once, as a
    command starting against a broker that is not there should. A streaming producer or sink sets
    it: a new table's first change during a broker outage must wait for the broker like any publish
    does, not stop the component (a region cut of the nemesis did, docs/reliability.md)."""

    def __init__(self, kafka: KafkaConfig, *, outage_s: float = 0.0) -> None:
        self._admin = AdminClient(client_settings(kafka))
        self._kafka = kafka
        self._known: set[str] = set()
        self.outage_s = outage_s

    def ensure(self, *topics: str, timeout: float = 30.0) -> None:
        missing = [t for t in topics if t not in self._known]
        if not missing:
            return
        deadline = time.monotonic() + self.outage_s
        retries = 0
        while True:
            try:
                self._create(missing, timeout)
                break
            except KafkaException as err:
                if not (unreachable(err) and time.monotonic() < deadline):
                    raise
                retries += 1
                log.warning("cannot reach Kafka to create topic %s (%s); retry %d, for %.0f s more at most",
                            ", ".join(missing), kafka_message(err), retries, deadline - time.monotonic())
                time.sleep(min(5.0, max(0.0, deadline - time.monotonic())))
        if retries:
            log.info("reconnected to Kafka after %d retr%s", retries, "y" if retries == 1 else "ies")
        self._known.update(missing)

    def partitions(self, topic: str, timeout: float = 30.0) -> int:
        """How many partitions `topic` has (it must exist: `ensure` it first)."""
        found = self._admin.list_topics(topic, timeout=timeout).topics.get(topic)
        if found is None or found.error is not None or not found.partitions:
            raise KafkaException(found.error if found is not None and found.error is not None else
                                 KafkaError(KafkaError.UNKNOWN_TOPIC_OR_PART, f"topic {topic} has no partitions"))
        return len(found.partitions)

    def _create(self, missing: list[str], timeout: float) -> None:
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


# The broker did not answer (as opposed to refusing): worth waiting for.
_UNREACHABLE = {KafkaError._TRANSPORT, KafkaError._ALL_BROKERS_DOWN, KafkaError._TIMED_OUT, KafkaError._MSG_TIMED_OUT,
                KafkaError.REQUEST_TIMED_OUT}


def unreachable(err: KafkaException) -> bool:
    return bool(err.args) and isinstance(err.args[0], KafkaError) and err.args[0].code() in _UNREACHABLE


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
