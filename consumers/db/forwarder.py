"""A star hub's relay of versions: every clocked change the hub's database sink consumes is
forwarded, unchanged, to the hub's own change topics, so every spoke sees every version.

Why not relay the hub's database state (what its producer publishes for applied transactions)? A
resolution that leaves the hub's row as it was (a delete winning over a delete, the local version
winning) writes only a clock row: the binlog has no row event, so the version that decided it would
never reach the spokes, and a spoke could decide differently. Forwarding the versions themselves
lets each spoke resolve the same set of versions, as in a mesh. Spokes therefore ignore the hub's
published applied changes that carry a clock (they take the forwarded versions instead).

Forwarding happens, and is acknowledged by the broker, before the hub's transaction commits (as
dead letters are): a crash can forward a version twice, never lose one; a duplicate is a version
with an equal clock, which every sink skips. A record goes to the same partition number it was
read from, so a source partition's order (and its GTID order) holds on the hub's partition.
"""

from __future__ import annotations

from common.acked_producer import AckedProducer, Outgoing
from common.kafka import TopicCreator
from consumers.records import SourceRecord
from schemas import messages
from schemas.config import KafkaConfig, PipelineConfig
from schemas.events import ChangeEvent
from schemas.topics import TopicNames


class Forwarder:
    def __init__(self, config: PipelineConfig, hub: str, kafka: KafkaConfig, producer_settings: dict[str, object]) -> None:
        self._producer = AckedProducer(producer_settings, f"forwarding to {hub}'s topics")
        self._names = TopicNames.of(config)
        self._topics = TopicCreator(kafka)
        self._partitions = kafka.partitions
        self.hub = hub

    def forward(self, records: list[SourceRecord], timeout: float = 30.0) -> None:
        """Publish and wait for the broker's acknowledgement; raise if any is not acknowledged."""
        outgoing = []
        for record in records:
            event: ChangeEvent = record.event  # type: ignore[assignment]
            topic = self._names.changes(self.hub, event.db, event.table)
            self._topics.ensure(topic)
            outgoing.append(Outgoing(topic, record.payload, record.key, messages.headers("change", event.origin),
                                     record.partition if record.partition < self._partitions else None))
        self._producer.send(outgoing, timeout)
