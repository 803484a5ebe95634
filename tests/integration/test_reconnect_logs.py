"""A sink whose MySQL connection is killed says `reconnected to MySQL host:port` once it is back, and
applies on (common/retry.py)."""

from __future__ import annotations

import pytest

from tests.conftest import config_for_test, connect, create_database
from tests.support.connections import kill_sessions_of
from tests.support.kafka import read_all
from tests.support.producer import ProducerProcess, SinkProcess, wait_until, write_config

pytestmark = pytest.mark.integration


def _rows(config, db: str) -> set[int]:
    with connect(config, "us", db) as conn, conn.cursor() as cur:
        cur.execute("SELECT id FROM t")
        return {row[0] for row in cur.fetchall()}


def test_db_sink_logs_reconnected_after_a_killed_connection(sandbox_config, unique, tmp_path) -> None:
    db = f"rc_{unique}"
    config = config_for_test(sandbox_config, prefix=f"t{unique}", include=[f"{db}.*"], tmp=tmp_path,
                             regions=["eu", "us"], sink={"batch_max_ms": 50}, snapshot="never")
    create_database(config, ["eu", "us"], db, "CREATE TABLE {db}.t (id INT PRIMARY KEY)")
    path = write_config(config, tmp_path / "cdcsync.toml")
    ProducerProcess(path, "eu", tmp_path / "producer.log").start()
    wait_until((tmp_path / "checkpoints" / "eu" / "eu.json").exists, what="eu checkpoint")
    sink = SinkProcess(path, "us", "db", tmp_path / "sink.log").start()
    with connect(config, "eu", db) as conn, conn.cursor() as cur:
        cur.execute("INSERT INTO t VALUES (1)")
    wait_until(lambda: _rows(config, db) == {1}, timeout=60, what="the first row applied")
    assert "reconnected to MySQL" not in sink.output()

    with connect(config, "us") as admin:
        assert kill_sessions_of(sink.proc.pid, admin) >= 1
    with connect(config, "eu", db) as conn, conn.cursor() as cur:
        cur.execute("INSERT INTO t VALUES (2)")
    wait_until(lambda: _rows(config, db) == {1, 2}, timeout=60, what="the row after the kill applied")
    mysql = config.regions["us"].mysql
    wait_until(lambda: f"reconnected to MySQL {mysql.host}:{mysql.port}" in sink.output(), timeout=10,
               what="the reconnected line")
    assert sink.terminate() == 0, sink.output()


def test_producer_logs_reconnected_and_keeps_its_lock(sandbox_config, unique, tmp_path) -> None:
    db, prefix = f"rp_{unique}", f"t{unique}"
    config = config_for_test(sandbox_config, prefix=prefix, include=[f"{db}.*"], tmp=tmp_path, snapshot="never",
                             checkpoint_interval_ms=100)
    create_database(config, ["eu"], db, "CREATE TABLE {db}.t (id INT PRIMARY KEY)")
    path = write_config(config, tmp_path / "cdcsync.toml")
    producer = ProducerProcess(path, "eu", tmp_path / "producer.log").start()
    wait_until((tmp_path / "checkpoints" / "eu" / "eu.json").exists, what="eu checkpoint")
    with connect(config, "eu", db) as conn, conn.cursor() as cur:
        cur.execute("INSERT INTO t VALUES (1)")
    topic = f"{prefix}.eu.{db}.t"
    wait_until(lambda: _published(config, topic) == {1}, timeout=30, what="the first row published")
    assert "reconnected to MySQL" not in producer.output()

    with connect(config, "eu") as admin:
        assert kill_sessions_of(producer.proc.pid, admin) >= 2   # the binlog stream and the lock
    with connect(config, "eu", db) as conn, conn.cursor() as cur:
        cur.execute("INSERT INTO t VALUES (2)")
    wait_until(lambda: _published(config, topic) == {1, 2}, timeout=30, what="the row after the kill published")
    mysql = config.regions["eu"].mysql
    wait_until(lambda: "took the producer lock again" in producer.output(), timeout=20, what="the lock retaken")
    assert f"reconnected to MySQL {mysql.host}:{mysql.port}; binlog streaming again" in producer.output()
    assert producer.terminate() == 0, producer.output()


def _published(config, topic: str) -> set[int]:
    return {r.message.pk["id"] for r in read_all(config.kafka.bootstrap, [topic], idle_s=1.0, timeout_s=30)}
