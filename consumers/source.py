"""The Kafka side of a sink: one member of a consumer group, explicit commits only. Keeps the
`Source` contract (consumers/source_protocol.py).

Threading: everything, including the rebalance callbacks, runs on the thread that calls `consume`.

Closing never sends LeaveGroup: the client is destroyed without librdkafka's consumer close, and the
member's partitions move to the others when its session times out (`sink.session_timeout_ms`), as
after a crash (Kafka Streams closes its consumers the same way). A LeaveGroup sent while a rebalance
was in flight wedged the group on the sandbox broker (Tansu 0.6): the member that left stayed the
group's leader, every later member's SyncGroup failed with REBALANCE_IN_PROGRESS, and no sink of the
group got a partition again (docs/reliability.md, "Found by the nemesis"). A static member
(`group.instance.id`) sends no LeaveGroup either, but Tansu never expires one that does not come
back, so a stopped sink's partitions would stay with it.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from confluent_kafka import Consumer, KafkaException
from confluent_kafka import TopicPartition as KafkaTP

from common.kafka import CONSUMER_DEFAULTS
from common.kafka_link import KafkaLinkWatch
from consumers.records import SourceRecord, TopicPartition
from schemas import messages

log = logging.getLogger(__name__)


class KafkaSource:
    def __init__(self, settings: dict[str, object], group_id: str, *, session_timeout_ms: int,
                 on_revoke: Callable[[list[TopicPartition]], None],
                 discard: Callable[[str, str], str | None] | None = None) -> None:
        """`discard(topic, origin)`: the reason the sink would skip a change of that origin read
        from that topic (None: it applies it). A change whose headers name its origin is then
        handed over undecoded, as `SourceRecord.discarded`: a mesh sink's echoes cost no decoding."""
        self._consumer: Consumer | None = Consumer({
            **CONSUMER_DEFAULTS,        # the fast fetch (common/kafka.py); `kafka.extra` in `settings` wins
            **settings,
            "group.id": group_id,
            "enable.auto.commit": False,
            "enable.auto.offset.store": False,
            "auto.offset.reset": "earliest",
            "session.timeout.ms": session_timeout_ms,
            "heartbeat.interval.ms": max(500, session_timeout_ms // 6),
            # New tables mean new topics; a regex subscription sees them after a metadata refresh.
            "topic.metadata.refresh.interval.ms": 5000,
            "partition.assignment.strategy": "cooperative-sticky",
            **KafkaLinkWatch("consumer").settings(),     # `kafka consumer: lost broker` / `reconnected`
        })
        self._on_revoke = on_revoke
        self._discard = discard
        self._settings, self.group_id = settings, group_id
        self._patterns: list[str] = []
        self.assigned: set[TopicPartition] = set()

    @property
    def _client(self) -> Consumer:
        if self._consumer is None:
            raise RuntimeError("the Kafka source is closed")
        return self._consumer

    def subscribe(self, patterns: list[str]) -> None:
        self._patterns = list(patterns)
        self._client.subscribe(patterns, on_assign=self._assigned, on_revoke=self._revoked, on_lost=self._lost)

    def _assigned(self, consumer: Consumer, partitions: list[KafkaTP]) -> None:
        self.assigned |= {TopicPartition(p.topic, p.partition) for p in partitions}
        log.info("assigned %s", sorted((p.topic, p.partition) for p in partitions))

    def _revoked(self, consumer: Consumer, partitions: list[KafkaTP]) -> None:
        revoked = [TopicPartition(p.topic, p.partition) for p in partitions]
        log.info("revoked %s", sorted((p.topic, p.partition) for p in revoked))
        self._on_revoke(revoked)          # the runner finishes and commits its in-flight batch here
        self.assigned -= set(revoked)

    def _lost(self, consumer: Consumer, partitions: list[KafkaTP]) -> None:
        # Lost, not revoked: another member may already own them; committing now could fail, and the
        # database markers make whatever it replays harmless.
        lost = {TopicPartition(p.topic, p.partition) for p in partitions}
        log.warning("partitions lost: %s", sorted((p.topic, p.partition) for p in lost))
        self.assigned -= lost

    def consume(self, max_messages: int, timeout_s: float) -> list[SourceRecord]:
        """What the client already holds, up to `max_messages`; when it holds nothing, waits up to
        `timeout_s` for the first message and returns as soon as one arrives (librdkafka's batch
        consume would wait the whole timeout for `max_messages`)."""
        client = self._client
        batch = client.consume(max_messages, 0)
        if not batch and timeout_s > 0:
            first = client.poll(timeout_s)
            if first is not None:
                batch = [first, *client.consume(max_messages - 1, 0)] if max_messages > 1 else [first]
        records = []
        discard = self._discard
        for msg in batch:
            err = msg.error()
            if err is not None:
                if err.fatal():
                    raise KafkaException(err)
                log.warning("consumer: %s", err)
                continue
            if discard is not None:
                origin = messages.change_origin(msg.headers())
                reason = None if origin is None else discard(msg.topic(), origin)
                if reason is not None:
                    records.append(SourceRecord.discarded(msg.topic(), msg.partition(), msg.offset(), msg.key(),
                                                          msg.value() or b"", reason))
                    continue
            records.append(SourceRecord.from_message(msg.topic(), msg.partition(), msg.offset(), msg.key(),
                                                     msg.value()))
        return records

    def commit(self, records: list[SourceRecord]) -> None:
        """Commit, synchronously, the offset after the last record of each partition."""
        next_offsets: dict[tuple[str, int], int] = {}
        for r in records:
            next_offsets[(r.topic, r.partition)] = max(next_offsets.get((r.topic, r.partition), 0), r.offset + 1)
        if not next_offsets:
            return
        offsets = [KafkaTP(t, p, o) for (t, p), o in next_offsets.items()]
        try:
            self._client.commit(offsets=offsets, asynchronous=False)
        except KafkaException as err:
            # Typically a rebalance took the partition; its new owner replays and the markers skip.
            log.warning("offset commit failed (%s); the next owner will replay, harmlessly", err)

    def hold(self, offsets: dict[TopicPartition, int]) -> None:
        """Pause the partitions and seek each back to its offset: what the client had fetched past it
        is dropped and fetched again after `release`."""
        held = [KafkaTP(tp.topic, tp.partition, offset) for tp, offset in offsets.items() if tp in self.assigned]
        if not held:
            return
        self._client.pause(held)
        for tp in held:
            self._client.seek(tp)
        log.info("holding %s", sorted((tp.topic, tp.partition, tp.offset) for tp in held))

    def release(self, partitions: list[TopicPartition]) -> None:
        resumed = [KafkaTP(tp.topic, tp.partition) for tp in partitions if tp in self.assigned]
        if resumed:
            self._client.resume(resumed)
            log.info("released %s", sorted((tp.topic, tp.partition) for tp in resumed))

    def lag(self) -> dict[TopicPartition, int]:
        """High watermark minus committed offset, per assigned partition."""
        result: dict[TopicPartition, int] = {}
        if not self.assigned:
            return result
        committed = self._client.committed([KafkaTP(tp.topic, tp.partition) for tp in self.assigned], timeout=5)
        for tp in committed:
            # Cached: the high watermark from fetch responses. (The sandbox broker answers a
            # ListOffsets "latest" short of the real end when its last batch holds several records.)
            low, high = self._client.get_watermark_offsets(tp, timeout=5, cached=True)
            if high < 0:
                continue
            position = tp.offset if tp.offset >= 0 else low
            result[TopicPartition(tp.topic, tp.partition)] = max(0, high - position)
        return result

    def group_progress(self, timeout_s: float = 10.0) -> dict[tuple[str, int], tuple[int | None, int]]:
        """Per partition of the subscription: the group's committed offset (None: nothing committed)
        and its lag, as `cdcsync status` reports them. Raises when the broker does not answer."""
        from common.group_lag import group_partition_lags

        return {(p.topic, p.partition): (p.committed, p.lag)
                for p in group_partition_lags(self._settings, self.group_id, self._patterns, timeout_s)}

    def close(self, timeout_s: float = 10.0) -> None:
        """Stop consuming, without LeaveGroup (see the module doc): dropping the last reference destroys
        the client without librdkafka's consumer close. What was applied is committed already (the
        runner flushes first, and nothing is auto-committed); the partitions move once the session
        times out. The destroy runs on a thread of its own: caught between a SyncGroup answer and the
        assignment it hands to the application, librdkafka 2.16 waits for that assignment forever
        (the soak's cache sink never exited); after `timeout_s` the sink goes on stopping without it."""
        if self._consumer is None:
            return
        holder, self._consumer = [self._consumer], None
        destroyed = threading.Event()

        def destroy() -> None:
            holder.clear()            # the last reference: the client is destroyed here
            destroyed.set()

        threading.Thread(target=destroy, name="kafka-consumer-destroy", daemon=True).start()
        if not destroyed.wait(timeout_s):
            log.warning("the Kafka consumer of group %s did not shut down within %.0fs (caught in a rebalance); "
                        "stopping without it", self.group_id, timeout_s)
        if self.assigned:
            log.info("stopped without leaving the group: %d partition(s) move to the other members when the "
                     "session times out", len(self.assigned))
        self.assigned = set()
