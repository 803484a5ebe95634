"""Publishing to Kafka with an acknowledgement watermark.

Contract: `acked_position()` only ever returns the end of a transaction whose events, and the
events of every transaction before it, the broker has acknowledged. The checkpoint is taken from
it, so a crash at any point loses nothing: the restart re-publishes from the last such boundary.

Threading: everything, including librdkafka's delivery callbacks (run inside `poll`/`flush`),
happens on the caller's thread.
"""

from __future__ import annotations

import time
from collections import deque
from typing import Callable

from confluent_kafka import KafkaError, KafkaException, Message, Producer

from common.kafka import client_settings
from common.kafka_link import KafkaLinkWatch
from schemas.config import KafkaConfig
from schemas.position import BinlogPosition


class PublishError(RuntimeError):
    """The broker refused or lost a message after librdkafka's own retries: the producer must stop."""


class Txn:
    __slots__ = ("pending", "position", "tracker", "abandoned")

    def __init__(self, tracker: "AckTracker") -> None:
        self.pending = 0
        self.position: BinlogPosition | None = None  # set when sealed
        self.abandoned = False   # the stream reopened inside it: it is published again from its start
        self.tracker = tracker

    def on_delivery(self, err: KafkaError | None, msg: Message) -> None:
        self.pending -= 1
        self.tracker.in_flight -= 1
        if err is not None and self.tracker.error is None:
            self.tracker.error = PublishError(f"delivery to {msg.topic()} failed: {err}")


class AckTracker:
    """Transactions in binlog order with their unacknowledged event counts."""

    def __init__(self) -> None:
        self._txns: deque[Txn] = deque()
        self.in_flight = 0
        self.error: PublishError | None = None
        self._acked: BinlogPosition | None = None

    def open(self) -> Txn:
        txn = Txn(self)
        self._txns.append(txn)
        return txn

    def seal(self, txn: Txn, position: BinlogPosition) -> None:
        txn.position = position

    def abandon(self, txn: Txn) -> None:
        """A transaction cut off by a reopened stream (its messages are published again from its
        start, under a new entry): it no longer holds the watermark back once its sent messages are
        acknowledged, and never moves it, since it has no end."""
        txn.abandoned = True

    def acked_position(self) -> BinlogPosition | None:
        txns = self._txns
        while txns and (txns[0].position is not None or txns[0].abandoned) and txns[0].pending == 0:
            position = txns.popleft().position
            if position is not None:
                self._acked = position
        return self._acked


class Publisher:
    """An idempotent Kafka producer (`enable.idempotence`, `acks=all`) feeding an AckTracker."""

    def __init__(self, kafka: KafkaConfig, *, linger_ms: int = 5, max_in_flight: int = 100_000,
                 on_error: Callable[[str], None] | None = None) -> None:
        settings = {
            **client_settings(kafka),
            "enable.idempotence": True,
            "acks": "all",
            "linger.ms": linger_ms,
            "queue.buffering.max.messages": max(max_in_flight * 2, 100_000),
            "batch.num.messages": 10_000,
        }
        # Every error still goes to on_error; a lost broker and its return get one line each.
        settings.update(KafkaLinkWatch("producer", on_error=on_error).settings())
        self._producer = Producer(settings)
        self._max_in_flight = max_in_flight
        self._max_bytes = int(settings.get("message.max.bytes", 1_000_000))   # librdkafka's default
        self.tracker = AckTracker()

    def produce(self, txn: Txn, topic: str, key: bytes, value: bytes, headers: list[tuple[str, bytes]],
                partition: int | None = None) -> None:
        """Queue one message (to `partition`, else the key's). Blocks (serving callbacks) while too many
        are unacknowledged."""
        tracker = self.tracker
        if tracker.in_flight >= self._max_in_flight:
            self._wait_below(self._max_in_flight // 2)
        while True:
            try:
                if partition is None:
                    self._producer.produce(topic, value, key, headers=headers, on_delivery=txn.on_delivery)
                else:
                    self._producer.produce(topic, value, key, partition=partition, headers=headers,
                                           on_delivery=txn.on_delivery)
                break
            except BufferError:
                self._producer.poll(0.05)
            except KafkaException as err:
                if err.args[0].code() != KafkaError.MSG_SIZE_TOO_LARGE:
                    raise
                # Refused before anything of it left: the checkpoint stays before its transaction.
                raise PublishError(
                    f"the change on {topic} with key {key[:200]!r} is {len(value):,} bytes encoded, over the Kafka "
                    f"producer's message.max.bytes ({self._max_bytes:,}); nothing after it is published and the "
                    f"checkpoint stays before its transaction. To replicate it, raise kafka.extra.\"message.max.bytes\" "
                    f"(and the broker's message.max.bytes / the topic's max.message.bytes) above that size, then "
                    f"restart the producer") from None
        txn.pending += 1
        tracker.in_flight += 1

    def _wait_below(self, limit: int) -> None:
        while self.tracker.in_flight > limit:
            self._producer.poll(0.05)
            self.raise_if_failed()

    def poll(self, timeout: float = 0.0) -> None:
        self._producer.poll(timeout)
        self.raise_if_failed()

    def raise_if_failed(self) -> None:
        if self.tracker.error is not None:
            raise self.tracker.error

    def flush(self, timeout: float = 60.0) -> None:
        """Wait until every queued message is acknowledged, or raise."""
        deadline = time.monotonic() + timeout
        while self.tracker.in_flight > 0:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise PublishError(f"{self.tracker.in_flight} messages still unacknowledged after {timeout:.0f}s")
            self._producer.flush(min(remaining, 1.0))
            self.raise_if_failed()
        self.raise_if_failed()
