"""The cache sink never moves a key backwards, whatever order or how often events are replayed."""

from __future__ import annotations

import pytest

from consumers.cache_sink import CacheSink, decode_row, redis_client
from consumers.metrics import SinkMetrics
from consumers.records import SourceRecord
from prometheus_client import CollectorRegistry
from schemas.codec import encode
from tests.conftest import config_for_test, connect
from tests.support.kafka import read_all
from tests.support.producer import ProducerProcess, wait_until, write_config

pytestmark = pytest.mark.integration


def test_replayed_and_reordered_events_never_overwrite_newer_values(sandbox_config, unique, tmp_path) -> None:
    db, prefix = f"cs_{unique}", f"t{unique}"
    config = config_for_test(sandbox_config, prefix=prefix, include=[f"{db}.*"], tmp=tmp_path, snapshot="never")
    with connect(config, "eu") as conn, conn.cursor() as cur:
        cur.execute(f"CREATE DATABASE {db}")
        cur.execute(f"CREATE TABLE {db}.t (id INT PRIMARY KEY, v INT)")
    with ProducerProcess(write_config(config, tmp_path / "c.toml"), "eu", tmp_path / "p.log") as producer:
        wait_until((tmp_path / "checkpoints" / "eu" / "eu.json").exists, what="checkpoint")
        with connect(config, "eu", db) as conn, conn.cursor() as cur:
            for v in range(1, 6):
                cur.execute("INSERT INTO t VALUES (1, %s) ON DUPLICATE KEY UPDATE v = %s", (v, v))
            cur.execute("INSERT INTO t VALUES (2, 1)")
            cur.execute("DELETE FROM t WHERE id = 2")
        topic = f"{prefix}.eu.{db}.t"
        kafka = read_all(config.kafka.bootstrap, [topic], expect=7)
        assert producer.terminate() == 0
    records = [SourceRecord.from_message(r.topic, r.partition, r.offset, r.key, encode(r.message))
               for r in sorted(kafka, key=lambda r: (r.partition, r.offset))]
    sink = CacheSink(config, "eu", SinkMetrics("eu", CollectorRegistry()))
    client = redis_client(config.region("eu").redis)
    key1, key2 = f"{prefix}:{db}.t:[1]", f"{prefix}:{db}.t:[2]"

    sink.write_batch(records)
    assert decode_row(client.hgetall(key1)) == {"id": 1, "v": 5}
    assert decode_row(client.hgetall(key2)) is None and client.hget(key2, "_deleted") == b"1"
    newest = {k: client.hgetall(k) for k in (key1, key2)}

    for replay in (records[:3], records[:1], list(reversed(records)), records):   # old offsets, any order
        for record in replay:
            sink.write_batch([record])
        assert {k: client.hgetall(k) for k in (key1, key2)} == newest
    assert sink.last_written == 0
    assert client.ttl(key2) > 0          # tombstones expire
    sink.close()


def test_cache_rebuild_after_flush_keeps_newer_values(sandbox_config, unique, tmp_path) -> None:
    import subprocess
    import sys

    db, prefix = f"cr_{unique}", f"t{unique}"
    config = config_for_test(sandbox_config, prefix=prefix, include=[f"{db}.*"], tmp=tmp_path, snapshot="never")
    path = write_config(config, tmp_path / "c.toml")
    with connect(config, "us") as conn, conn.cursor() as cur:
        cur.execute(f"CREATE DATABASE {db}")
        cur.execute(f"CREATE TABLE {db}.items (id INT PRIMARY KEY, name VARCHAR(20))")
        cur.execute(f"CREATE TABLE {db}.other (id INT PRIMARY KEY)")
        cur.executemany(f"INSERT INTO {db}.items VALUES (%s, %s)", [(i, f"n{i}") for i in range(250)])
        cur.execute(f"INSERT INTO {db}.other VALUES (1)")
    client = redis_client(config.region("us").redis)
    newer = f"{prefix}:{db}.items:[7]"
    client.hset(newer, mapping={"_v": "9999999999.000000000000.00000000", "id": "7", "name": '"from-the-sink"'})

    result = subprocess.run([sys.executable, "-m", "cdcsync", "cache", "rebuild", "--config", str(path),
                             "--region", "us", "--table", f"{db}.items"], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert "rebuilt 250 rows in 1 tables" in result.stdout
    assert decode_row(client.hgetall(f"{prefix}:{db}.items:[3]")) == {"id": 3, "name": "n3"}
    assert decode_row(client.hgetall(newer)) == {"id": 7, "name": "from-the-sink"}   # newer version kept
    assert not client.exists(f"{prefix}:{db}.other:[1]")                              # --table respected

    result = subprocess.run([sys.executable, "-m", "cdcsync", "cache", "rebuild", "--config", str(path),
                             "--region", "us", "--table", f"{db}.nope"], capture_output=True, text=True)
    assert result.returncode == 1 and f"{db}.nope" in result.stderr


def test_json_format_and_ttl(sandbox_config, unique, tmp_path) -> None:
    from schemas.config import parse_config

    prefix = f"t{unique}"
    data = sandbox_config.model_dump(mode="python")
    for name, region in data["regions"].items():
        region["mysql"]["password"] = sandbox_config.regions[name].mysql.password.get_secret_value()
    data.update(prefix=prefix, tables={"app.docs": {"cache_format": "json", "cache_ttl_s": 300}})
    config = parse_config(data)
    event = {"schema_version": 1, "kind": "change", "region": "eu", "origin": "us", "server_id": 1, "gtid": "1-1-5",
             "binlog_file": "binlog.000003", "binlog_pos": 10, "txn_id": "1-1-5", "ts_us": 0, "db": "app",
             "table": "docs", "txn_index": 0, "txn_last": True, "op": "insert", "pk": {"id": 1}, "before": None,
             "after": {"id": 1, "body": {"a": [1, 2]}, "price": "9.50"}, "types": {}, "vclock": None}
    sink = CacheSink(config, "eu", SinkMetrics("eu", CollectorRegistry()))
    sink.write_batch([SourceRecord.from_message("t", 0, 0, b"[1]", encode(event))])
    client = redis_client(config.region("eu").redis)
    key = f"{prefix}:app.docs:[1]"
    stored = client.hgetall(key)
    assert set(stored) == {b"_v", b"_json"} and stored[b"_v"] == b"0000000003.000000000010.00000000"
    assert decode_row(stored) == {"id": 1, "body": {"a": [1, 2]}, "price": "9.50"}
    assert 0 < client.ttl(key) <= 300
    sink.close()
