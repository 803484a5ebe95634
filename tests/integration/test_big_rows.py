"""A row bigger than a Kafka message may be (a 15 MB LONGBLOB: the server's default
max_allowed_packet is 16 MB) is never dropped silently: the producer stops with one line naming the
change, its size, the limit and the setting to raise, and the checkpoint stays before it; with the
limit raised, the same producer publishes it and the stream goes on."""

from __future__ import annotations

import base64

import orjson
import pytest

from schemas.config import parse_config
from tests.conftest import config_for_test, connect
from tests.support.kafka import read_all
from tests.support.producer import ProducerProcess, wait_until, write_config

pytestmark = pytest.mark.integration

BIG = 15 * 1024 * 1024


def test_a_row_over_the_message_limit_stops_the_producer_until_the_limit_is_raised(sandbox_config, unique,
                                                                                  tmp_path) -> None:
    db, prefix = f"br_{unique}", f"t{unique}"
    config = config_for_test(sandbox_config, prefix=prefix, include=[f"{db}.*"], tmp=tmp_path, snapshot="never")
    with connect(config, "eu") as conn, conn.cursor() as cur:
        cur.execute(f"CREATE DATABASE {db}")
        cur.execute(f"CREATE TABLE {db}.blobs (id INT PRIMARY KEY, body LONGBLOB)")
    path = write_config(config, tmp_path / "cdcsync.toml")
    checkpoint = tmp_path / "checkpoints" / "eu" / "eu.json"
    with ProducerProcess(path, "eu", tmp_path / "producer.log") as producer:
        wait_until(lambda: checkpoint.exists(), what="first checkpoint")
        with connect(config, "eu", db) as conn, conn.cursor() as cur:
            cur.execute("INSERT INTO blobs VALUES (1, 'small')")
            cur.execute("SELECT @@gtid_binlog_pos")
            before_big = cur.fetchone()[0]
            cur.execute(f"INSERT INTO blobs VALUES (2, REPEAT('b', {BIG}))")
            cur.execute("INSERT INTO blobs VALUES (3, 'after')")
        assert producer.wait(60) != 0
    out = producer.output()
    assert f"on {prefix}.eu.{db}.blobs with key b'[2]' is " in out and "over the Kafka producer's message.max.bytes" \
        in out and 'kafka.extra."message.max.bytes"' in out, out
    assert "Traceback" not in out
    # Never past the refused row; it may lag behind the small row before it (checkpoints are periodic).
    saved = orjson.loads(checkpoint.read_bytes())["gtid_state"]
    assert saved.rsplit("-", 1)[0] == before_big.rsplit("-", 1)[0], (saved, before_big)
    assert int(saved.rsplit("-", 1)[1]) <= int(before_big.rsplit("-", 1)[1]), (saved, before_big)

    data = config.model_dump(mode="python")
    for name, region in data["regions"].items():
        region["mysql"]["password"] = config.regions[name].mysql.password.get_secret_value()
    data["kafka"]["extra"] = {"message.max.bytes": 64 * 1024 * 1024}
    raised = write_config(parse_config(data), tmp_path / "raised.toml")
    with ProducerProcess(raised, "eu", tmp_path / "raised.log") as producer:
        records = read_all(config.kafka.bootstrap, [f"{prefix}.eu.{db}.blobs"], expect=3, timeout_s=90)
        assert producer.terminate() == 0, producer.output()
    bodies = {r.message.pk["id"]: base64.b64decode(r.message.after["body"]) for r in records}
    assert bodies == {1: b"small", 2: b"b" * BIG, 3: b"after"}
