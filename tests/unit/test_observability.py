"""Health endpoints, log lines with region/component/position, and the supervisor's ports."""

from __future__ import annotations

import io
import logging
import sys
import urllib.error
import urllib.request
from pathlib import Path

import orjson
import pytest
from prometheus_client import CollectorRegistry, Counter

from cdcsync import logging_setup
from cdcsync.supervisor import components
from common import log_context
from common.health_server import HealthState, serve


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def get(port: int, path: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as err:
        return err.code, err.read().decode()


def test_health_endpoints_follow_the_component_state() -> None:
    clock = FakeClock()
    state = HealthState(stall_after_s=30, clock=clock)
    registry = CollectorRegistry()
    Counter("cdcsync_test_things_total", "things", registry=registry).inc(3)
    server = serve(0, state, registry, host="127.0.0.1")
    port = server.server_address[1]
    try:
        assert get(port, "/healthz")[0] == 200 and get(port, "/readyz")[0] == 503   # starting up
        clock.now += 1000                                    # a long snapshot is not a stall
        assert get(port, "/healthz")[0] == 200
        state.ready()
        assert get(port, "/readyz") == (200, "ready\n")
        clock.now += 29
        assert get(port, "/healthz")[0] == 200
        clock.now += 2                                       # no beat for 31 s: wedged
        assert get(port, "/healthz") == (503, "stalled\n") and get(port, "/readyz")[0] == 503
        state.beat()
        assert get(port, "/healthz")[0] == 200 and get(port, "/readyz")[0] == 200
        state.not_ready()
        assert get(port, "/readyz")[0] == 503
        code, body = get(port, "/metrics")
        assert code == 200 and "cdcsync_test_things_total 3.0" in body
        assert get(port, "/nope")[0] == 404
    finally:
        server.shutdown()


@pytest.mark.parametrize("fmt", ["json", "text"])
def test_log_lines_carry_region_component_and_position(fmt, monkeypatch) -> None:
    stream = io.StringIO()
    monkeypatch.setattr(sys, "stderr", stream)
    try:
        logging_setup.setup("info", fmt, region="eu", component="producer")
        log_context.set_position("gtid=1-1-5 binlog.000001:400")
        logging.getLogger("x").info("hello %s", "world")
    finally:
        log_context.set_component("-", "-")
        log_context.set_position("-")
        logging.getLogger().handlers.clear()
    line = stream.getvalue().strip()
    if fmt == "json":
        entry = orjson.loads(line)
        assert entry["region"] == "eu" and entry["component"] == "producer"
        assert entry["position"] == "gtid=1-1-5 binlog.000001:400" and entry["message"] == "hello world"
    else:
        assert "[eu/producer @ gtid=1-1-5 binlog.000001:400] x: hello world" in line


def test_bad_log_format_is_refused() -> None:
    with pytest.raises(ValueError, match="--log-format must be text or json"):
        logging_setup.setup("info", "yaml")


def test_supervised_components_get_consecutive_ports_and_the_log_options() -> None:
    parts = components(Path("c.toml"), ["eu", "us"], Path("logs"), log_args=["--log-format", "json"],
                       first_metrics_port=9101)
    ports = {p.name: p.argv[p.argv.index("--metrics-port") + 1] for p in parts}
    assert ports == {"eu/producer": "9101", "eu/db": "9102", "eu/cache": "9103",
                     "us/producer": "9104", "us/db": "9105", "us/cache": "9106"}
    assert all(p.argv[p.argv.index("--log-format") + 1] == "json" for p in parts)
    assert all("--metrics-port" not in p.argv for p in components(Path("c.toml"), ["eu"], Path("logs")))


def test_librdkafka_logs_go_through_python_logging(caplog) -> None:
    from confluent_kafka import Producer

    from schemas.config import KafkaConfig

    kafka = KafkaConfig(bootstrap="127.0.0.1:1", extra={"sasl.mechanism": "PLAIN"})  # a CONFWARN
    with caplog.at_level(logging.WARNING, logger="librdkafka"):
        producer = Producer(kafka.client_settings())
        producer.poll(0.5)
    assert any(r.name == "librdkafka" and "sasl.mechanism" in r.getMessage() for r in caplog.records)
