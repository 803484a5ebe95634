"""A database sink's echoes are skipped from their Kafka headers, undecoded, and still committed."""

from __future__ import annotations

from typing import Any

from prometheus_client import CollectorRegistry

from consumers.metrics import SinkMetrics
from consumers.records import SourceRecord, TopicPartition, echo_filter
from consumers.runner import SinkRunner
from consumers.source import KafkaSource
from schemas import messages
from schemas.config import parse_config

CONFIG = parse_config({"prefix": "cdc", "regions": {"eu": {"server_id": 1}, "us": {"server_id": 2},
                                                   "ap": {"server_id": 3}}})


class FakeMessage:
    def __init__(self, topic: str, offset: int, value: bytes, headers: list[tuple[str, bytes]] | None) -> None:
        self._topic, self._offset, self._value, self._headers = topic, offset, value, headers

    def error(self) -> None:
        return None

    def topic(self) -> str:
        return self._topic

    def partition(self) -> int:
        return 0

    def offset(self) -> int:
        return self._offset

    def key(self) -> bytes:
        return b"[1]"

    def value(self) -> bytes:
        return self._value

    def headers(self) -> list[tuple[str, bytes]] | None:
        return self._headers


class FakeConsumer:
    def __init__(self, batch: list[FakeMessage]) -> None:
        self.batch = batch

    def consume(self, num: int, timeout: float) -> list[FakeMessage]:
        batch, self.batch = self.batch[:num], self.batch[num:]
        return batch

    def poll(self, timeout: float) -> FakeMessage | None:
        return None


def source_over(batch: list[FakeMessage], region: str = "ap") -> KafkaSource:
    source = KafkaSource.__new__(KafkaSource)       # no client: the fake stands for librdkafka
    source._consumer = FakeConsumer(batch)          # type: ignore[assignment]
    source._discard = echo_filter(CONFIG, region)
    return source


def test_headers_name_the_origin_of_a_supported_change_only() -> None:
    assert messages.change_origin(messages.headers("change", "eu")) == "eu"
    assert messages.change_origin(messages.headers("ddl", "eu")) is None
    assert messages.change_origin(None) is None
    assert messages.change_origin([("cdcsync-kind", b"change"), ("cdcsync-schema-version", b"99"),
                                   ("cdcsync-origin", b"eu")]) is None
    assert messages.change_origin([("cdcsync-kind", b"change"), ("cdcsync-schema-version", b"1")]) is None


def test_an_echo_is_skipped_from_its_headers_without_decoding() -> None:
    # Not JSON at all: decoding any of them would make it a poison record.
    source = source_over([
        FakeMessage("cdc.us.app.t", 0, b"not json", messages.headers("change", "eu")),   # eu's change, echoed by us
        FakeMessage("cdc.us.app.t", 1, b"not json", messages.headers("change", "us")),   # us's own change: decoded
        FakeMessage("cdc.us.app.t", 2, b"not json", None),                               # no headers: decoded
        FakeMessage("cdc.us.app.t", 3, b"not json", messages.headers("change", "ap")),   # ap's own, echoed back
    ])
    records = source.consume(10, 0)
    assert [(r.offset, r.skipped) for r in records] == [(0, "echo"), (1, None), (2, None), (3, "echo")]
    assert records[0].event is None and records[0].error is None
    assert records[1].error is not None and records[2].error is not None    # decoded, found poison


def test_a_star_spoke_takes_other_origins_from_the_hub() -> None:
    star = parse_config({"prefix": "cdc", "topology": {"mode": "star", "hub": "eu"},
                         "regions": {"eu": {"server_id": 1}, "us": {"server_id": 2}, "ap": {"server_id": 3}}})
    discard = echo_filter(star, "us")
    assert discard("cdc.eu.app.t", "ap") is None
    assert discard("cdc.eu.app.t", "us") == "echo"


class RecordingSink:
    name = "db"

    def __init__(self) -> None:
        self.batches: list[list[SourceRecord]] = []

    def write_batch(self, records: list[SourceRecord]) -> None:
        self.batches.append(records)

    def close(self) -> None:
        pass


class RecordingSource:
    def __init__(self) -> None:
        self.commits: list[list[int]] = []
        self.assigned = {TopicPartition("cdc.us.app.t", 0)}

    def commit(self, records: list[SourceRecord]) -> None:
        self.commits.append([r.offset for r in records])


class NoDeadLetters:
    limit = None

    def publish(self, letters: Any, timeout: float = 30.0) -> None:
        raise AssertionError(f"dead-lettered {letters}")


def test_the_runner_commits_skipped_records_and_counts_them() -> None:
    sink, source = RecordingSink(), RecordingSource()
    metrics = SinkMetrics("ap", CollectorRegistry())
    runner = SinkRunner(source=source, sink=sink, dead_letters=NoDeadLetters(), metrics=metrics,  # type: ignore[arg-type]
                        batch_max_events=10, batch_max_ms=10)
    runner._pending = [SourceRecord.discarded("cdc.us.app.t", 0, i, b"[1]", b"x", "echo") for i in range(3)]
    assert runner.flush() == 3
    assert sink.batches == [[]] and source.commits == [[2]]     # the last of the partition: offset 3 next
    assert metrics.skipped_events.labels("ap", "db", "echo")._value.get() == 3

