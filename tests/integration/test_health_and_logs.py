"""Every long-running command serves /metrics, /healthz and /readyz, and logs JSON lines that
carry region, component and position."""

from __future__ import annotations

import signal
import subprocess
import sys
import urllib.error
import urllib.request

import orjson
import pytest

from deploy.local import processes
from tests.conftest import config_for_test, connect, create_database
from tests.support.producer import ProducerProcess, SinkProcess, wait_until, write_config

pytestmark = pytest.mark.integration


def get(port: int, path: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as err:
        return err.code, err.read().decode()
    except OSError:
        return 0, ""


def json_lines(text: str) -> list[dict]:
    """Every line is one JSON object (librdkafka's lines and errors included)."""
    lines = []
    for line in text.splitlines():
        if line.strip():
            try:
                lines.append(orjson.loads(line))
            except orjson.JSONDecodeError:
                raise AssertionError(f"not a JSON log line: {line!r}\n{text}") from None
    return lines


def test_producer_and_sink_endpoints_and_json_logs(sandbox_config, unique, tmp_path) -> None:
    db = f"obs_{unique}"
    config = config_for_test(sandbox_config, prefix=f"t{unique}", include=[f"{db}.*"], tmp=tmp_path,
                             regions=["eu", "us"], sink={"batch_max_ms": 50}, snapshot="never")
    create_database(config, ["eu", "us"], db, "CREATE TABLE {db}.t (id INT PRIMARY KEY)")
    path = write_config(config, tmp_path / "c.toml")
    ports = {"producer": processes.free_port(), "db": processes.free_port()}
    json_args = ("--log-format", "json")
    producer = ProducerProcess(path, "eu", tmp_path / "producer.log", "--metrics-port", str(ports["producer"]),
                               *json_args).start()
    sink = SinkProcess(path, "us", "db", tmp_path / "db.log", "--metrics-port", str(ports["db"]), *json_args).start()
    for port in ports.values():
        wait_until(lambda p=port: get(p, "/readyz")[0] == 200, timeout=60, what=f"/readyz on {port}")
        assert get(port, "/healthz") == (200, "ok\n")
    with connect(config, "eu", db) as conn, conn.cursor() as cur:
        cur.execute("INSERT INTO t VALUES (1), (2)")

    def applied() -> bool:
        return 'cdcsync_sink_events_applied_total{region="us",sink="db"} 2.0' in get(ports["db"], "/metrics")[1]

    wait_until(applied, timeout=60, what="sink metrics")
    behind = [float(line.rsplit(" ", 1)[1]) for line in get(ports["db"], "/metrics")[1].splitlines()
              if line.startswith('cdcsync_sink_seconds_behind_source{region="us",sink="db",source="eu"}')]
    assert len(behind) == 1 and 0.0 <= behind[0] < 60.0, behind     # seconds since the INSERT's commit
    metrics = get(ports["producer"], "/metrics")[1]
    assert f'cdcsync_producer_events_total{{db="{db}",region="eu",table="t"}} 2.0' in metrics
    assert "cdcsync_producer_checkpoint_timestamp_seconds" in metrics
    assert sink.terminate() == 0 and producer.terminate() == 0
    producer_lines, sink_lines = json_lines(producer.output()), json_lines(sink.output())
    assert producer_lines and sink_lines
    assert all(e["region"] == "eu" and e["component"] == "producer" for e in producer_lines)
    assert all(e["region"] == "us" and e["component"] == "db-sink" for e in sink_lines)
    assert producer_lines[-1]["position"].startswith("gtid=")        # "stopped at ..." carries the position
    assert producer_lines[-1]["message"].startswith("region eu: stopped at")


def test_run_serves_supervisor_and_components(sandbox_config, unique, tmp_path) -> None:
    config = config_for_test(sandbox_config, prefix=f"t{unique}", include=[f"run_{unique}.*"], tmp=tmp_path,
                             regions=["eu", "us"], snapshot="never")
    path = write_config(config, tmp_path / "c.toml")
    base = processes.free_port()
    while not all(not processes.port_open(base + i) for i in range(4)):
        base = processes.free_port()
    proc = subprocess.Popen([sys.executable, "-m", "cdcsync", "run", "--config", str(path), "--regions", "eu",
                             "--log-dir", str(tmp_path / "logs"), "--metrics-port", str(base), "--log-format", "json"],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        wait_until(lambda: get(base, "/readyz")[0] == 200, timeout=60, what="supervisor ready")
        for offset in (1, 2, 3):   # eu/producer, eu/db, eu/cache
            wait_until(lambda o=offset: get(base + o, "/readyz")[0] == 200, timeout=60, what=f"component {offset}")
        metrics = get(base, "/metrics")[1]
        assert 'cdcsync_supervisor_component_up{component="eu/cache"} 1.0' in metrics
        assert 'cdcsync_supervisor_restarts_total{component="eu/db"} 0.0' in metrics
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(60) == 0
    lines = json_lines((tmp_path / "logs" / "eu-cache.log").read_text())
    assert lines and all(e["component"] == "cache-sink" for e in lines)


def test_db_sink_of_a_single_region_idles_ready(sandbox_config, unique, tmp_path) -> None:
    config = config_for_test(sandbox_config, prefix=f"t{unique}", include=[f"one_{unique}.*"], tmp=tmp_path,
                             regions=["eu"])
    path = write_config(config, tmp_path / "c.toml")
    port = processes.free_port()
    sink = SinkProcess(path, "eu", "db", tmp_path / "db.log", "--metrics-port", str(port)).start()
    wait_until(lambda: get(port, "/readyz")[0] == 200, timeout=60, what="ready")
    assert sink.alive()
    assert sink.terminate() == 0, sink.output()
    assert "no source regions" in sink.output()
