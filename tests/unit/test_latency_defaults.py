"""The fast settings are the defaults (issue 13: a user should not need to tune). Each assertion
names the figure in docs/performance.md ("Defaults for latency") that reverting it would lose."""

from __future__ import annotations

from typing import Any

import pytest

from common import kafka
from consumers import source as source_module
from consumers.source import KafkaSource
from producers import publisher as publisher_module
from producers.publisher import Publisher
from schemas.config import KafkaConfig, ProducerConfig, SinkConfig


class CapturingClient:
    """Stands in for a librdkafka client: keeps the settings it was built with."""

    last: dict[str, Any] = {}

    def __init__(self, settings: dict[str, Any]) -> None:
        CapturingClient.last = settings


def test_the_sinks_consumer_fetches_with_a_short_wait(monkeypatch: pytest.MonkeyPatch) -> None:
    # librdkafka's default 500 ms: on the sandbox broker every hop then waited ~150-250 ms.
    monkeypatch.setattr(source_module, "Consumer", CapturingClient)
    KafkaSource(kafka.client_settings(KafkaConfig()), "g", session_timeout_ms=6000, on_revoke=lambda tps: None)
    settings = CapturingClient.last
    assert settings["fetch.wait.max.ms"] == 100
    assert settings["fetch.min.bytes"] == 1
    assert settings["socket.nagle.disable"] is True


def test_kafka_extra_overrides_the_consumer_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(source_module, "Consumer", CapturingClient)
    config = KafkaConfig(extra={"fetch.wait.max.ms": 500, "socket.nagle.disable": False})
    KafkaSource(kafka.client_settings(config), "g", session_timeout_ms=6000, on_revoke=lambda tps: None)
    assert CapturingClient.last["fetch.wait.max.ms"] == 500
    assert CapturingClient.last["socket.nagle.disable"] is False


def test_every_client_disables_nagle() -> None:
    assert kafka.client_settings(KafkaConfig())["socket.nagle.disable"] is True


def test_the_producer_lingers_briefly(monkeypatch: pytest.MonkeyPatch) -> None:
    # 20 ms (the former default) added 20 ms to every hop of a lone change.
    assert ProducerConfig().linger_ms == 5
    monkeypatch.setattr(publisher_module, "Producer", CapturingClient)
    Publisher(KafkaConfig(), linger_ms=ProducerConfig().linger_ms)
    assert CapturingClient.last["linger.ms"] == 5
    assert CapturingClient.last["socket.nagle.disable"] is True


def test_sinks_apply_at_once_and_commit_offsets_at_most_every_second() -> None:
    settings = SinkConfig()
    assert settings.batch_linger_ms == 0         # a lone change is applied without waiting for a window
    assert settings.commit_interval_ms == 1000   # a commit round trip per batch cost CPU at the broker and sink
    assert settings.busy_batch_events == 50      # under load, one batch per two fetches: sinks' CPU per write
