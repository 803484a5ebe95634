"""What travels from the Kafka source to the sinks: one typed record per message."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from schemas.config import PipelineConfig
from schemas.codec import DecodeError, UnsupportedSchemaVersion, decode
from schemas.events import ChangeEvent, DdlEvent
from schemas.values import value_type_problem


@dataclass(frozen=True, slots=True)
class TopicPartition:
    topic: str
    partition: int


@dataclass(frozen=True, slots=True)
class SourceRecord:
    """A consumed message, decoded. Exactly one of `event`, `error` and `skipped` is set;
    `error_kind` names the class of a poison message (`undecodable`, `unsupported_version`,
    `wrong_type`: a value whose JSON type cannot be its column's, see
    `schemas.values.value_type_problem`). `skipped` is the reason a message was left undecoded
    because its headers prove the sink discards it (`echo`: consumers/source.py); it is committed
    with its batch, never applied nor dead-lettered."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    payload: bytes
    event: ChangeEvent | DdlEvent | None
    error: str | None
    error_kind: str | None = None
    skipped: str | None = None

    @property
    def tp(self) -> TopicPartition:
        return TopicPartition(self.topic, self.partition)

    @classmethod
    def discarded(cls, topic: str, partition: int, offset: int, key: bytes | None, payload: bytes,
                  reason: str) -> "SourceRecord":
        return cls(topic, partition, offset, key, payload, None, None, None, reason)

    @classmethod
    def from_message(cls, topic: str, partition: int, offset: int, key: bytes | None,
                     payload: bytes | None) -> "SourceRecord":
        if payload is None:
            return cls(topic, partition, offset, key, b"", None, "empty payload (tombstone)", "undecodable")
        try:
            event = decode(payload)
        except UnsupportedSchemaVersion as err:
            return cls(topic, partition, offset, key, payload, None, str(err), "unsupported_version")
        except DecodeError as err:
            return cls(topic, partition, offset, key, payload, None, str(err), "undecodable")
        if isinstance(event, ChangeEvent):
            problem = value_type_problem(event.types, {"pk": event.pk, "before": event.before, "after": event.after})
            if problem is not None:
                return cls(topic, partition, offset, key, payload, None,
                           f"{event.db}.{event.table}: {problem}", "wrong_type")
        return cls(topic, partition, offset, key, payload, event, None)


def source_region(topic: str, prefix: str) -> str:
    """The region a change topic belongs to: `<prefix>.<region>.<...>`."""
    rest = topic[len(prefix) + 1:] if topic.startswith(prefix + ".") else topic
    return rest.split(".", 1)[0]


def echo_filter(config: PipelineConfig, region: str) -> Callable[[str, str], str | None]:
    """For the database sink's Kafka source (`KafkaSource(discard=...)`): "echo" for a change of
    an origin `region`'s database sink does not accept from that topic (`config.accepts`, the rule
    the sink applies to decoded events), so it is skipped from its headers, undecoded."""
    prefix = config.prefix

    def discard(topic: str, origin: str) -> str | None:
        return None if config.accepts(region, source_region(topic, prefix), origin) else "echo"
    return discard
