"""Lost servers that come back, on real servers: the broker stalled (SIGSTOP) under a running
producer and database sink, and Redis restarted under a running cache sink. Each component logs
one line when it loses the server and one when it is back (`kafka producer: lost broker ...`,
`kafka producer: reconnected after N s`; the cache sink's `lost connection to Redis host:port` and
`reconnected to Redis host:port after N s`), and applies on. The MySQL side is in test_reconnect_logs.py.
"""

from __future__ import annotations

import os
import re
import signal
import threading
import time

import pytest

from schemas.cache_layout import cache_key

from common.redis_connect import redis_client
from deploy.local import Sandbox, processes
from tests.conftest import config_for_test, connect, create_database
from tests.support.producer import ProducerProcess, SinkProcess, wait_until, write_config

pytestmark = pytest.mark.integration

STALL_S = 9.0     # over kafka_link.STALL_S (5 s) plus a stats interval


def _rows(config, region: str, db: str) -> set[int]:
    with connect(config, region, db) as conn, conn.cursor() as cur:
        cur.execute("SELECT id FROM t")
        return {row[0] for row in cur.fetchall()}


def test_a_stalled_broker_is_logged_lost_then_reconnected(sandbox: Sandbox, sandbox_config, unique,
                                                          tmp_path) -> None:
    db = f"rk_{unique}"
    config = config_for_test(sandbox_config, prefix=f"t{unique}", include=[f"{db}.*"], tmp=tmp_path,
                             regions=["eu", "us"], sink={"batch_max_ms": 50}, snapshot="never")
    create_database(config, ["eu", "us"], db, "CREATE TABLE {db}.t (id INT PRIMARY KEY)")
    path = write_config(config, tmp_path / "cdcsync.toml")
    producer = ProducerProcess(path, "eu", tmp_path / "producer.log").start()
    wait_until((tmp_path / "checkpoints" / "eu" / "eu.json").exists, timeout=60, what="eu checkpoint")
    sink = SinkProcess(path, "us", "db", tmp_path / "sink.log").start()
    with connect(config, "eu", db) as conn, conn.cursor() as cur:
        cur.execute("INSERT INTO t VALUES (1)")
    wait_until(lambda: _rows(config, "us", db) == {1}, timeout=60, what="the first row applied")
    assert "lost broker" not in producer.output() + sink.output()

    pid = sandbox.pid("broker")
    assert pid is not None
    os.kill(pid, signal.SIGSTOP)
    try:
        with connect(config, "eu", db) as conn, conn.cursor() as cur:
            cur.execute("INSERT INTO t VALUES (2)")        # the producer has a request waiting in the stall
        time.sleep(STALL_S)
    finally:
        os.kill(pid, signal.SIGCONT)
    wait_until(lambda: _rows(config, "us", db) == {1, 2}, timeout=90, what="the row written in the stall applied")
    for name, proc in (("producer", producer), ("consumer", sink)):
        wait_until(lambda p=proc, n=name: f"kafka {n}: reconnected after" in p.output(), timeout=20,
                   what=f"the {name}'s reconnected line")
        text = proc.output()
        assert len(re.findall(f"kafka {name}: lost broker", text)) == 1, text[-3000:]
        assert len(re.findall(f"kafka {name}: reconnected after", text)) == 1, text[-3000:]
        assert text.index(f"kafka {name}: lost broker") < text.index(f"kafka {name}: reconnected after")
    assert producer.terminate() == 0, producer.output()
    assert sink.terminate() == 0, sink.output()


def test_a_restarted_redis_is_logged_and_the_cache_sink_applies_on(sandbox: Sandbox, sandbox_config, unique,
                                                                   tmp_path) -> None:
    db = f"rr_{unique}"
    config = config_for_test(sandbox_config, prefix=f"t{unique}", include=[f"{db}.*"], tmp=tmp_path,
                             regions=["eu"], sink={"batch_max_ms": 50}, snapshot="never")
    create_database(config, ["eu"], db, "CREATE TABLE {db}.t (id INT PRIMARY KEY)")
    path = write_config(config, tmp_path / "cdcsync.toml")
    ProducerProcess(path, "eu", tmp_path / "producer.log").start()
    wait_until((tmp_path / "checkpoints" / "eu" / "eu.json").exists, timeout=60, what="eu checkpoint")
    sink = SinkProcess(path, "eu", "cache", tmp_path / "cache.log").start()     # a cache sink caches its own region
    redis = config.regions["eu"].redis

    def cached(key: int) -> bool:
        client = redis_client(redis)
        try:
            return bool(client.exists(cache_key(config.prefix, db, "t", [key])))
        finally:
            client.close()

    with connect(config, "eu", db) as conn, conn.cursor() as cur:
        cur.execute("INSERT INTO t VALUES (1)")
    wait_until(lambda: cached(1), timeout=60, what="the first row cached")
    assert "reconnected to Redis" not in sink.output()

    # kill -9, down for 2 s, started again without persistence (empty); the row written meanwhile
    # meets a Redis that refuses connections, which redis-py retries by itself.
    crash = threading.Thread(target=sandbox.crash, args=("eu/redis-server",), kwargs={"pause_s": 2.0})
    crash.start()
    wait_until(lambda: not processes.port_open(redis.port), timeout=10, what="Redis down")
    with connect(config, "eu", db) as conn, conn.cursor() as cur:
        cur.execute("INSERT INTO t VALUES (2)")
    crash.join(60)
    assert not cached(1)
    wait_until(lambda: cached(2), timeout=60, what="the row written after the restart cached")
    server = f"Redis {redis.host}:{redis.port}"
    wait_until(lambda: f"reconnected to {server} after" in sink.output(), timeout=10, what="the reconnected line")
    text = sink.output()
    assert text.count(f"lost connection to {server}") == 1, text[-3000:]
    assert text.index(f"lost connection to {server}") < text.index(f"reconnected to {server} after")
    assert sink.alive() and sink.terminate() == 0, sink.output()
