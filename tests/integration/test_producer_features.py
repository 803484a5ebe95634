"""Snapshot-then-stream, DDL mid-stream, and loop prevention, against real servers."""

from __future__ import annotations

import threading
import time

import pytest

from common import metadata_tables
from schemas.events import ChangeEvent, DdlEvent
from tests.conftest import config_for_test, connect
from tests.support.kafka import read_all
from tests.support.producer import ProducerProcess, wait_until, write_config

pytestmark = pytest.mark.integration


def _prepare(sandbox_config, unique, tmp_path, region="eu", **producer):
    db, prefix = f"pf_{unique}", f"t{unique}"
    config = config_for_test(sandbox_config, prefix=prefix, include=[f"{db}.*"], tmp=tmp_path, **producer)
    with connect(config, region) as conn, conn.cursor() as cur:
        cur.execute(f"CREATE DATABASE {db}")
    return config, db, prefix, write_config(config, tmp_path / "cdcsync.toml")


def test_snapshot_then_stream_has_no_gap_and_no_double(sandbox_config, unique, tmp_path) -> None:
    config, db, prefix, path = _prepare(sandbox_config, unique, tmp_path, snapshot="initial",
                                        snapshot_chunk_rows=300)
    rows = 2000
    history: dict[int, list[int]] = {i: [0] for i in range(rows)}
    with connect(config, "eu", db) as conn, conn.cursor() as cur:
        cur.execute("CREATE TABLE snap (id INT PRIMARY KEY, v INT NOT NULL)")
        cur.executemany("INSERT INTO snap VALUES (%s, 0)", [(i,) for i in range(rows)])
    stop = threading.Event()

    def write() -> None:      # updates existing rows and inserts new ones while the snapshot runs
        with connect(config, "eu", db) as conn, conn.cursor() as cur:
            value, new_id = 0, rows
            while not stop.is_set():
                value += 1
                key = (value * 7919) % rows
                cur.execute("UPDATE snap SET v = %s WHERE id = %s", (value, key))
                history[key].append(value)
                if value % 5 == 0:
                    cur.execute("INSERT INTO snap VALUES (%s, %s)", (new_id, value))
                    history[new_id] = [value]
                    new_id += 1

    writer = threading.Thread(target=write, daemon=True)
    writer.start()
    time.sleep(0.3)
    with ProducerProcess(path, "eu", tmp_path / "producer.log") as producer:
        wait_until((tmp_path / "checkpoints" / "eu" / "eu.json").exists, timeout=60, what="snapshot checkpoint")
        time.sleep(1.0)
        stop.set()
        writer.join(10)
        records = read_all(config.kafka.bootstrap, [f"{prefix}.eu.{db}.snap"], idle_s=3.0)
        assert producer.terminate() == 0, producer.output()
    assert "snapshot of" in producer.output()

    seen: dict[int, list[int]] = {}
    snapshot_keys, inserted_keys = set(), set()
    for r in sorted(records, key=lambda r: (r.partition, r.offset)):
        m = r.message
        key = m.pk["id"]
        if m.op == "snapshot":
            snapshot_keys.add(key)
        if m.op == "insert":
            inserted_keys.add(key)
        seen.setdefault(key, []).append(m.after["v"])
    assert not snapshot_keys & inserted_keys, "a row came both from the snapshot and from the stream"
    assert set(seen) == set(history), "rows missing from the topic"
    for key, values in seen.items():
        written = history[key]
        start = written.index(values[0])   # the snapshot saw this value; the stream must bring the rest
        assert values == written[start:], f"key {key}: gap or double between snapshot and stream"
    with connect(config, "eu", db) as conn, conn.cursor() as cur:
        cur.execute("SELECT id, v FROM snap")
        assert {k: v[-1] for k, v in seen.items()} == dict(cur.fetchall())
    assert snapshot_keys and inserted_keys   # both paths were exercised


def test_ddl_mid_stream(sandbox_config, unique, tmp_path) -> None:
    config, db, prefix, path = _prepare(sandbox_config, unique, tmp_path, snapshot="never")
    with connect(config, "eu", db) as conn, conn.cursor() as cur:
        cur.execute("CREATE TABLE evolve (id INT PRIMARY KEY, a INT)")
    with ProducerProcess(path, "eu", tmp_path / "producer.log") as producer:
        wait_until((tmp_path / "checkpoints" / "eu" / "eu.json").exists, what="first checkpoint")
        with connect(config, "eu", db) as conn, conn.cursor() as cur:
            cur.execute("INSERT INTO evolve VALUES (1, 1)")
            cur.execute("ALTER TABLE evolve ADD COLUMN note VARCHAR(10) NOT NULL DEFAULT 'x', DROP COLUMN a")
            cur.execute("INSERT INTO evolve (id, note) VALUES (2, 'new')")
            cur.execute("UPDATE evolve SET note = 'upd' WHERE id = 1")
            cur.execute("TRUNCATE TABLE evolve")
            cur.execute("INSERT INTO evolve (id, note) VALUES (3, 'after')")
        rows = read_all(config.kafka.bootstrap, [f"{prefix}.eu.{db}.evolve"], expect=4)
        schema = read_all(config.kafka.bootstrap, [f"{prefix}.eu._schema"], expect=2)
        assert producer.terminate() == 0, producer.output()

    def seq(r):
        return int(r.message.gtid.rsplit("-", 1)[1])

    events = sorted(rows + schema, key=seq)
    kinds = [(type(r.message).__name__, getattr(r.message, "op", None)) for r in events]
    assert kinds == [("ChangeEvent", "insert"), ("DdlEvent", None), ("ChangeEvent", "insert"),
                     ("ChangeEvent", "update"), ("ChangeEvent", "truncate"), ("ChangeEvent", "insert")]
    before_ddl, ddl, after_ddl, update, truncate, last = (r.message for r in events)
    assert before_ddl.after == {"id": 1, "a": 1}
    assert isinstance(ddl, DdlEvent) and ddl.table == "evolve" and "ADD COLUMN note" in ddl.statement
    assert after_ddl.after == {"id": 2, "note": "new"} and after_ddl.types == {"id": "int", "note": "varchar(10)"}
    assert update.before == {"id": 1, "note": "x"} and update.after == {"id": 1, "note": "upd"}
    assert isinstance(truncate, ChangeEvent) and (truncate.db, truncate.table) == (db, "evolve")
    assert last.after == {"id": 3, "note": "after"}


def test_loop_prevention_marks_applied_transactions(sandbox_config, unique, tmp_path) -> None:
    config, db, prefix, path = _prepare(sandbox_config, unique, tmp_path, snapshot="never")
    meta = config.meta_db
    with connect(config, "eu", db) as conn, conn.cursor() as cur:
        metadata_tables.ensure(conn, meta)
        cur.execute("CREATE TABLE t (id INT PRIMARY KEY, v VARCHAR(10))")
    topic = f"{prefix}.eu.{db}.t"
    with ProducerProcess(path, "eu", tmp_path / "producer.log") as producer:
        wait_until((tmp_path / "checkpoints" / "eu" / "eu.json").exists, what="first checkpoint")
        with connect(config, "eu", db) as conn, conn.cursor() as cur:
            for i, origin in enumerate(["us", "ap", "us"]):      # what the database sink does
                conn.begin()
                metadata_tables.write_marker(cur, meta, topic=f"{prefix}.{origin}.{db}.t", partition=0,
                                             origin=origin, offset=i)
                cur.execute("INSERT INTO t VALUES (%s, %s)", (i, f"from-{origin}"))
                cur.execute("UPDATE t SET v = CONCAT(v, '!') WHERE id = %s", (i,))
                conn.commit()
            cur.execute("INSERT INTO t VALUES (10, 'local')")         # an application write
        records = read_all(config.kafka.bootstrap, [topic], expect=7)
        origins = sorted((r.message.pk["id"], r.message.op.value, r.message.origin, r.headers["cdcsync-origin"])
                         for r in records)
        assert origins == [(0, "insert", "us", b"us"), (0, "update", "us", b"us"),
                           (1, "insert", "ap", b"ap"), (1, "update", "ap", b"ap"),
                           (2, "insert", "us", b"us"), (2, "update", "us", b"us"),
                           (10, "insert", "eu", b"eu")]
        assert all(r.message.region == "eu" for r in records)
        # The marker must come first; a transaction that writes it late is refused, never half-tagged.
        with connect(config, "eu", db) as conn, conn.cursor() as cur:
            conn.begin()
            cur.execute("INSERT INTO t VALUES (20, 'x')")
            metadata_tables.write_marker(cur, meta, topic="x", partition=0, origin="us", offset=9)
            conn.commit()
        assert producer.wait(30) == 1
    assert "was written after row changes" in producer.output()
    names = read_all(config.kafka.bootstrap, [topic], idle_s=1.0)
    assert not any(r.message.pk == {"id": 20} for r in names), "the half-tagged transaction was published"
