"""Reading a region's dead-letter topic `<prefix>.<region>.dlq`, and replaying its entries.

The topic holds two kinds of JSON record:

- a dead letter (`consumers.dlq.to_json`): `region`, `sink`, `kind`, `error`, `source_topic`,
  `source_partition`, `source_offset`, `key` and `payload` (base64 of the source message), `dead_at_us`;
- a replay mark, `{"replayed": <offset>, "replayed_partition": <partition>, ...}`, published by
  `replay` once the entry's change has committed in the database. It names the entry it marks by
  the entry's own partition and offset in the dead-letter topic;
- a discard mark, `{"discarded": <offset>, "discarded_partition": <partition>, "reason": ..., ...}`,
  published by `discard`: an operator handled the entry without replaying it.

The marks live in the dead-letter topic itself, next to the entries they mark: the state is as
durable as the entries (same replication, same retention: an entry never outlives its mark or the
reverse), every reader of the topic sees it without another store, and a mark is acknowledged by
the broker before the command reports success. An entry is *pending* until it has either mark;
`cdcsync status` counts the pending entries of each region.

An entry is therefore addressed by `<partition>:<offset>` in the dead-letter topic (the topic has
as many partitions as `kafka.partitions`, so an offset alone can be ambiguous).

Reading assigns every partition from its low watermark up to the high watermark taken when it
starts: it joins no consumer group and commits nothing, so it never disturbs the sinks.

Replay applies through `DatabaseSink.replay` (marker row first, so loop prevention holds), then
publishes the marks and waits for the broker. A crash between the two leaves the entry unmarked;
replaying it again writes the same row image again. Replay writes the row image the entry carries:
a newer change of the same row that was applied since is overwritten, so replay entries (`--all`
does) in source order before newer changes of their rows arrive, or check the rows first.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Literal

import orjson
from confluent_kafka import Consumer, KafkaError, KafkaException, Producer
from confluent_kafka import TopicPartition as KafkaTP
from prometheus_client import CollectorRegistry

from common import metadata_tables
from common.kafka import client_settings
from consumers.dlq import DeadLetterPublisher
from consumers.dlq_limit import short as one_line
from consumers.metrics import SinkMetrics
from consumers.records import SourceRecord
from schemas.config import PipelineConfig
from schemas.topics import TopicNames


class DlqError(RuntimeError):
    """The dead-letter topic could not be read or marked. The message says what to do."""


@dataclass(frozen=True, slots=True, order=True)
class EntryId:
    """Where an entry sits in the dead-letter topic."""

    partition: int
    offset: int

    def __str__(self) -> str:
        return f"{self.partition}:{self.offset}"


@dataclass(frozen=True, slots=True)
class ReplayMark:
    entry: EntryId
    replayed_at_us: int | None


@dataclass(frozen=True, slots=True)
class DiscardMark:
    entry: EntryId
    discarded_at_us: int | None
    reason: str


@dataclass(frozen=True, slots=True)
class DlqEntry:
    """One dead letter, with its replay state. `kind` is `unreadable` for a record of the topic
    that is neither a dead letter nor a replay mark."""

    id: EntryId
    kind: str
    error: str
    region: str | None = None
    sink: str | None = None
    source_topic: str | None = None
    source_partition: int | None = None
    source_offset: int | None = None
    key: bytes | None = None
    payload: bytes = b""
    dead_at_us: int | None = None
    replayed_at_us: int | None = None
    discarded_at_us: int | None = None
    discard_reason: str | None = None

    @property
    def replayed(self) -> bool:
        return self.replayed_at_us is not None

    @property
    def discarded(self) -> bool:
        return self.discarded_at_us is not None

    @property
    def pending(self) -> bool:
        """Neither replayed nor discarded: an operator has still to handle it."""
        return not (self.replayed or self.discarded)

    @property
    def source(self) -> tuple[str, int, int] | None:
        if self.source_topic is None or self.source_partition is None or self.source_offset is None:
            return None
        return self.source_topic, self.source_partition, self.source_offset

    def record(self) -> SourceRecord | None:
        """The source message, decoded again by this reader (None if the entry names no source)."""
        if self.source is None:
            return None
        topic, partition, offset = self.source
        return SourceRecord.from_message(topic, partition, offset, self.key, self.payload)

    def summary(self) -> dict[str, Any]:
        """The fields `dlq list` shows (no key or payload)."""
        return {"entry": str(self.id), "partition": self.id.partition, "offset": self.id.offset,
                "kind": self.kind, "error": self.error, "region": self.region, "sink": self.sink,
                "source_topic": self.source_topic, "source_partition": self.source_partition,
                "source_offset": self.source_offset, "dead_at_us": self.dead_at_us,
                "replayed": self.replayed, "replayed_at_us": self.replayed_at_us,
                "discarded": self.discarded, "discarded_at_us": self.discarded_at_us,
                "discard_reason": self.discard_reason}

    def detail(self) -> dict[str, Any]:
        """Everything, with the key as text and the payload as JSON when they decode, else base64."""
        payload, encoding = decoded_payload(self.payload)
        key: str | None = None
        key_encoding = None
        if self.key is not None:
            try:
                key, key_encoding = self.key.decode(), "utf-8"
            except UnicodeDecodeError:
                key, key_encoding = base64.b64encode(self.key).decode(), "base64"
        return {**self.summary(), "key": key, "key_encoding": key_encoding, "payload": payload,
                "payload_encoding": encoding}


def decoded_payload(payload: bytes) -> tuple[Any, str]:
    """(the payload as a JSON value, "json"), or (its base64 text, "base64") if it is not JSON."""
    try:
        return orjson.loads(payload), "json"
    except orjson.JSONDecodeError:
        return base64.b64encode(payload).decode(), "base64"


def _b64(value: Any) -> bytes | None:
    if value is None:
        return None
    return base64.b64decode(value, validate=True)


def _int_or_none(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def parse_message(partition: int, offset: int, value: bytes | None) -> DlqEntry | ReplayMark | DiscardMark:
    """One record of the dead-letter topic. Never raises: what it cannot read is an `unreadable` entry."""
    where = EntryId(partition, offset)
    try:
        data = orjson.loads(value or b"")
    except orjson.JSONDecodeError as err:
        return DlqEntry(where, "unreadable", f"not JSON: {err}", payload=value or b"")
    if not isinstance(data, dict):
        return DlqEntry(where, "unreadable", f"a JSON {type(data).__name__}, not an object", payload=value or b"")
    if "replayed" in data:
        replayed, replayed_partition = data.get("replayed"), data.get("replayed_partition")
        if isinstance(replayed, int) and isinstance(replayed_partition, int):
            return ReplayMark(EntryId(replayed_partition, replayed), _int_or_none(data.get("replayed_at_us")))
        return DlqEntry(where, "unreadable", "replay mark without replayed/replayed_partition", payload=value or b"")
    if "discarded" in data:
        discarded, discarded_partition = data.get("discarded"), data.get("discarded_partition")
        if isinstance(discarded, int) and isinstance(discarded_partition, int):
            return DiscardMark(EntryId(discarded_partition, discarded), _int_or_none(data.get("discarded_at_us")),
                               str(data.get("reason") or ""))
        return DlqEntry(where, "unreadable", "discard mark without discarded/discarded_partition", payload=value or b"")
    try:
        key, payload = _b64(data.get("key")), _b64(data.get("payload")) or b""
    except (binascii.Error, ValueError, TypeError) as err:
        return DlqEntry(where, "unreadable", f"key or payload is not base64: {err}", payload=value or b"")
    return DlqEntry(where, str(data.get("kind") or "unknown"), str(data.get("error") or ""),
                    region=data.get("region"), sink=data.get("sink"), source_topic=data.get("source_topic"),
                    source_partition=_int_or_none(data.get("source_partition")),
                    source_offset=_int_or_none(data.get("source_offset")), key=key, payload=payload,
                    dead_at_us=_int_or_none(data.get("dead_at_us")))


def assemble(items: Iterable[DlqEntry | ReplayMark | DiscardMark]) -> list[DlqEntry]:
    """Entries in (partition, offset) order, each marked with its earliest replay and discard."""
    entries: dict[EntryId, DlqEntry] = {}
    replays: dict[EntryId, int] = {}
    discards: dict[EntryId, DiscardMark] = {}
    for item in items:
        if isinstance(item, ReplayMark):
            at = item.replayed_at_us if item.replayed_at_us is not None else 0
            replays[item.entry] = min(replays.get(item.entry, at), at)
        elif isinstance(item, DiscardMark):
            if item.entry not in discards:
                discards[item.entry] = item if item.discarded_at_us is not None else dataclasses.replace(
                    item, discarded_at_us=0)
        else:
            entries[item.id] = item
    result = []
    for entry_id in sorted(entries):
        entry = entries[entry_id]
        if entry_id in replays:
            entry = dataclasses.replace(entry, replayed_at_us=replays[entry_id])
        if entry_id in discards:
            mark = discards[entry_id]
            entry = dataclasses.replace(entry, discarded_at_us=mark.discarded_at_us, discard_reason=mark.reason)
        result.append(entry)
    return result


def latest(entries: list[DlqEntry], limit: int | None) -> list[DlqEntry]:
    """The `limit` most recently dead-lettered entries, oldest first (all of them without a limit)."""
    ordered = sorted(entries, key=lambda e: (e.dead_at_us or 0, e.id))
    return ordered if limit is None else ordered[-limit:] if limit > 0 else []


def parse_entry_id(text: str) -> tuple[int | None, int]:
    """`<partition>:<offset>` or a bare `<offset>` -> (partition or None, offset)."""
    partition, sep, offset = text.strip().rpartition(":")
    try:
        if sep:
            p, o = int(partition), int(offset)
            if p < 0 or o < 0:
                raise ValueError
            return p, o
        o = int(offset)
        if o < 0:
            raise ValueError
        return None, o
    except ValueError:
        raise ValueError(f"{text!r} is not an entry: write <partition>:<offset> (as `dlq list` shows) "
                         f"or a bare offset") from None


def select(entries: list[DlqEntry], texts: list[str]) -> list[DlqEntry]:
    """The entries named by `texts`, in the order named. A bare offset must match exactly one entry."""
    chosen: list[DlqEntry] = []
    for text in texts:
        partition, offset = parse_entry_id(text)
        found = [e for e in entries if e.id.offset == offset and (partition is None or e.id.partition == partition)]
        if not found:
            raise ValueError(f"no dead-letter entry {text}")
        if len(found) > 1:
            raise ValueError(f"offset {offset} is ambiguous: entries {', '.join(str(e.id) for e in found)}; "
                             f"write <partition>:<offset>")
        if found[0] not in chosen:
            chosen.append(found[0])
    return chosen


def short(text: str, width: int = 60) -> str:
    """One line of at most `width` characters."""
    return one_line(text, width)


def replay_mark(entry: DlqEntry, *, region: str, now_us: int) -> dict[str, Any]:
    """The record that marks `entry` as replayed."""
    return {"replayed": entry.id.offset, "replayed_partition": entry.id.partition, "region": region,
            "source_topic": entry.source_topic, "source_partition": entry.source_partition,
            "source_offset": entry.source_offset, "replayed_at_us": now_us}


def discard_mark(entry: DlqEntry, *, region: str, reason: str, now_us: int) -> dict[str, Any]:
    """The record that marks `entry` as handled without a replay, and why."""
    return {"discarded": entry.id.offset, "discarded_partition": entry.id.partition, "region": region,
            "reason": reason, "source_topic": entry.source_topic, "source_partition": entry.source_partition,
            "source_offset": entry.source_offset, "discarded_at_us": now_us}


# -- Kafka ------------------------------------------------------------------------------------------
def read_dead_letters(config: PipelineConfig, region: str, *, timeout_s: float = 30.0) -> list[DlqEntry]:
    """Every entry of the region's dead-letter topic, in (partition, offset) order, with its replay
    state. An absent topic (no sink ever ran) reads as empty. Raises DlqError if the topic cannot be
    read to its end within `timeout_s`."""
    kafka = config.kafka_for(region)
    topic = TopicNames.of(config).dlq(region)
    # group.id is required by the client; no group is joined (assign) and nothing is committed.
    # The end of a partition is where the broker reports EOF to a fetch, not the ListOffsets answer:
    # the sandbox broker (Tansu) answers that with its last batch's base offset + 1, short of the
    # end whenever that batch holds several records.
    consumer = Consumer({**client_settings(kafka), "group.id": f"cdcsync-dlq-reader-{uuid.uuid4().hex}",
                         "enable.auto.commit": False, "enable.auto.offset.store": False,
                         "enable.partition.eof": True})
    try:
        try:
            metadata = consumer.list_topics(timeout=timeout_s)  # every topic: naming one could auto-create it
        except KafkaException as err:
            raise DlqError(f"cannot reach Kafka at {kafka.bootstrap}: {err}") from None
        if topic not in metadata.topics:
            return []
        starts: dict[int, int] = {}
        for partition in sorted(metadata.topics[topic].partitions):
            low, high = consumer.get_watermark_offsets(KafkaTP(topic, partition), timeout=timeout_s, cached=False)
            if high > low:                      # empty partitions are reported as empty by every broker
                starts[partition] = low
        consumer.assign([KafkaTP(topic, p, offset) for p, offset in starts.items()])
        items: list[DlqEntry | ReplayMark | DiscardMark] = []
        deadline = time.monotonic() + timeout_s
        pending = set(starts)
        while pending:
            if time.monotonic() > deadline:
                raise DlqError(f"{topic}: could not read partitions {sorted(pending)} to their end in {timeout_s}s")
            for msg in consumer.consume(1000, 0.5):
                err = msg.error()
                if err is not None:
                    if err.code() == KafkaError._PARTITION_EOF:
                        pending.discard(msg.partition())
                    elif err.fatal():
                        raise DlqError(f"{topic}: {err}")
                    continue
                items.append(parse_message(msg.partition(), msg.offset(), msg.value()))
        return assemble(items)
    finally:
        consumer.close()


@dataclass(frozen=True, slots=True)
class ReplayOutcome:
    entry: DlqEntry
    status: Literal["applied", "failed", "skipped"]
    detail: str


def replay(config: PipelineConfig, region: str, entries: list[DlqEntry], *,
           timeout_s: float = 30.0) -> list[ReplayOutcome]:
    """Apply `entries` to the region's database through the database sink, then mark the applied
    ones replayed (acknowledged by the broker before this returns). An entry that fails again is
    left as it is: still in the topic, unmarked. Entries of the cache sink are skipped: its state
    comes from the database (`cdcsync cache rebuild`). Several entries of one source message are
    applied once. Raises DlqError if the marks cannot be published (the changes are applied)."""
    from consumers.db.sink import DatabaseSink
    from common.mysql import connect

    outcomes: dict[EntryId, ReplayOutcome] = {}
    by_source: dict[tuple[str, int, int], list[DlqEntry]] = {}
    records: list[SourceRecord] = []
    for entry in entries:
        if entry.sink != "db":
            outcomes[entry.id] = ReplayOutcome(entry, "skipped", f"dead-lettered by the {entry.sink or 'unknown'} "
                                               f"sink; replay applies database-sink entries only "
                                               f"(for a cache: cdcsync cache rebuild)")
            continue
        record = entry.record()
        if record is None or entry.source is None:
            outcomes[entry.id] = ReplayOutcome(entry, "failed", "the entry names no source message")
            continue
        if entry.source not in by_source:
            by_source[entry.source] = []
            records.append(record)
        by_source[entry.source].append(entry)

    if records:
        kafka = config.kafka_for(region)
        topic = TopicNames.of(config).dlq(region)
        with connect(config.region(region).mysql) as conn:
            metadata_tables.ensure(conn, config.meta_db)
        # The sink wants a dead-letter publisher; `DatabaseSink.replay` never publishes through it.
        sink = DatabaseSink(config, region, DeadLetterPublisher(client_settings(kafka), topic, region=region,
                                                                sink="db"),
                            SinkMetrics(region, CollectorRegistry()))
        try:
            refused = sink.replay(records)
        finally:
            sink.close()
        failed = {(r.record.topic, r.record.partition, r.record.offset): r for r in refused}
        applied: list[DlqEntry] = []
        for source, group in by_source.items():
            letter = failed.get(source)
            for entry in group:
                if letter is None:
                    applied.append(entry)
                    outcomes[entry.id] = ReplayOutcome(entry, "applied", "applied")
                else:
                    outcomes[entry.id] = ReplayOutcome(entry, "failed", f"{letter.kind}: {letter.error}")
        now_us = time.time_ns() // 1000
        _publish_marks(config, region, [(e, replay_mark(e, region=region, now_us=now_us)) for e in applied],
                       timeout_s=timeout_s, what="replay marks",
                       unmarked="the entries were applied but still show as pending, and replaying them again "
                                "writes the same rows again")
    return [outcomes[e.id] for e in entries]


def discard(config: PipelineConfig, region: str, entries: list[DlqEntry], reason: str, *,
            timeout_s: float = 30.0) -> None:
    """Mark `entries` as handled without a replay, with the operator's `reason` (acknowledged by the
    broker before this returns; raises DlqError otherwise). Nothing is applied."""
    if not reason.strip():
        raise ValueError("a discard needs a reason (--reason TEXT): it is kept with the entry")
    now_us = time.time_ns() // 1000
    _publish_marks(config, region, [(e, discard_mark(e, region=region, reason=reason.strip(), now_us=now_us))
                                    for e in entries], timeout_s=timeout_s, what="discard marks",
                   unmarked="they still show as pending; run the discard again")


def _publish_marks(config: PipelineConfig, region: str, marks: list[tuple[DlqEntry, dict[str, Any]]], *,
                   timeout_s: float, what: str, unmarked: str) -> None:
    if not marks:
        return
    topic = TopicNames.of(config).dlq(region)
    producer = Producer({**client_settings(config.kafka_for(region)), "enable.idempotence": True, "acks": "all"})
    failures: list[str] = []

    def on_delivery(err: object, msg: object) -> None:
        if err is not None:
            failures.append(str(err))

    for entry, mark in marks:
        producer.produce(topic, orjson.dumps(mark), entry.key, on_delivery=on_delivery)
    remaining = producer.flush(timeout_s)
    if remaining or failures:
        raise DlqError(f"{topic}: {remaining + len(failures)} {what} were not acknowledged ({failures[:3]}); "
                       f"{unmarked}")
