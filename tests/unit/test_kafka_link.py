"""producers/kafka_link.py: one `lost broker` line when a broker stops answering or the connection
drops, one `reconnected after N s` when it answers again; nothing while it answers."""

from __future__ import annotations

import json
import logging

import pytest
from confluent_kafka import KafkaError

from common.kafka_link import KafkaLinkWatch


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def stats(*brokers: dict) -> str:
    return json.dumps({"brokers": {b["name"]: b for b in [{"name": "b:1/internal", "source": "internal",
                                                           "state": "INIT", "stateage": 0, "rxidle": -1,
                                                           "waitresp_cnt": 0}, *brokers]}})


def broker(state: str = "UP", *, rxidle_s: float = 0.2, waiting: int = 1, stateage_s: float = 60.0) -> dict:
    return {"name": "127.0.0.1:9092/1", "source": "learned", "state": state, "stateage": int(stateage_s * 1e6),
            "rxidle": int(rxidle_s * 1e6), "waitresp_cnt": waiting}


def lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "common.kafka_link"]


def test_a_stalled_broker_is_lost_once_and_reconnected_once(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, "common.kafka_link")
    clock = Clock()
    watch = KafkaLinkWatch("consumer", clock=clock)
    for idle in (0.3, 2.0, 4.9):                     # answering, or not long enough
        watch.on_stats(stats(broker(rxidle_s=idle)))
    assert lines(caplog) == []
    clock.now = 110.0
    watch.on_stats(stats(broker(rxidle_s=6.0, waiting=4)))
    watch.on_stats(stats(broker(rxidle_s=7.0, waiting=4)))
    watch.on_stats(stats(broker("APIVERSION_QUERY", rxidle_s=-1, stateage_s=9)))
    assert lines(caplog) == ["kafka consumer: lost broker (127.0.0.1:9092/1: no response for 6 s, 4 request(s) "
                             "waiting); librdkafka reconnects by itself"]
    clock.now = 130.0
    watch.on_stats(stats(broker(rxidle_s=0.5)))
    watch.on_stats(stats(broker(rxidle_s=0.1)))
    assert lines(caplog)[1:] == ["kafka consumer: reconnected after 26.0 s (127.0.0.1:9092/1)"]


def test_a_receive_before_the_loss_was_noticed_is_not_a_reconnection(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, "common.kafka_link")
    clock = Clock()
    watch = KafkaLinkWatch("consumer", clock=clock)
    coordinator = {**broker(rxidle_s=4.0), "name": "GroupCoordinator", "source": "logical"}
    watch.on_stats(stats(broker(rxidle_s=5.5), coordinator))
    clock.now += 1.0
    watch.on_stats(stats(broker(rxidle_s=6.5), {**coordinator, "rxidle": int(5.0e6)}))
    assert len(lines(caplog)) == 1 and "lost broker" in lines(caplog)[0]


def test_a_transport_error_is_lost_at_once_and_a_new_connection_reconnects(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, "common.kafka_link")
    clock = Clock()
    errors: list[str] = []
    watch = KafkaLinkWatch("producer", clock=clock, on_error=errors.append)
    watch.on_error(KafkaError(KafkaError._TRANSPORT, "127.0.0.1:9092/1: Connect to ipv4#127.0.0.1:9092 failed"))
    watch.on_error(KafkaError(KafkaError._ALL_BROKERS_DOWN, "1/1 brokers are down"))
    assert len(errors) == 2
    watch.on_stats(stats(broker("CONNECT", rxidle_s=-1, stateage_s=0.5)))
    watch.on_stats(stats(broker("UP", rxidle_s=-1, waiting=0, stateage_s=120)))   # an old connection: no
    clock.now = 103.0
    watch.on_stats(stats(broker("UP", rxidle_s=-1, waiting=0, stateage_s=1.0)))
    assert lines(caplog) == [
        "kafka producer: lost broker (127.0.0.1:9092/1: Connect to ipv4#127.0.0.1:9092 failed); librdkafka "
        "reconnects by itself",
        "kafka producer: reconnected after 3.0 s (127.0.0.1:9092/1)"]


def test_an_idle_client_is_not_lost(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, "common.kafka_link")
    watch = KafkaLinkWatch("producer", clock=Clock())
    watch.on_stats(stats(broker(rxidle_s=300.0, waiting=0)))
    watch.on_stats(stats(broker("TRY_CONNECT", rxidle_s=-1, waiting=0, stateage_s=300)))
    watch.on_stats("not json")
    assert lines(caplog) == []


def test_a_join_waiting_at_the_group_coordinator_is_not_a_stall(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, "common.kafka_link")
    watch = KafkaLinkWatch("consumer", clock=Clock())
    coordinator = {**broker(rxidle_s=8.0), "name": "GroupCoordinator", "source": "logical"}
    watch.on_stats(stats(broker(rxidle_s=0.3), coordinator))
    assert lines(caplog) == []
    watch.on_stats(stats(broker(rxidle_s=0.3), {**coordinator, "state": "APIVERSION_QUERY", "stateage": int(6e6)}))
    assert len(lines(caplog)) == 1 and "GroupCoordinator" in lines(caplog)[0]
