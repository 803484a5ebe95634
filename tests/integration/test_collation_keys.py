"""Text primary keys in the server's default collation (`utf8mb4_unicode_ci`: case-insensitive,
accent-insensitive, PAD SPACE), with real producers and sinks in three regions.

eu and us insert the same keys at once, spelled differently (`bob`/`BOB`, `amy`/`amy `,
`jose`/`JOSÉ`, `strasse`/`straße`). The server says each pair is one row, so each pair is a
conflict: it must be resolved and logged, and every region must end with byte-identical rows (the
winner's spelling), one cache entry per key, a Bloom filter that finds every spelling, and a
passing verify. Then a spelling change of a key (`UPDATE ... SET id = 'Bob '`) is published as an
update under the same Kafka key, and converges too."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
from confluent_kafka import Consumer, TopicPartition
from prometheus_client import CollectorRegistry

from cdcsync.tools.clock_init import init_region
from common.metadata_tables import CONFLICT_LOG, ROW_CLOCKS
from consumers.cache.lookup_metrics import LookupMetrics
from consumers.cache.reader import CacheReader
from consumers.cache.sink import redis_client
from schemas.codec import decode
from schemas.topics import TopicNames
from tests.conftest import REGIONS, config_for_test, connect
from tests.support.producer import CdcsyncProcess, ProducerProcess, SinkProcess, wait_until, write_config
from tests.support.quiescence import wait_quiescent
from tests.support.verify import assert_verified

pytestmark = pytest.mark.integration

PAIRS = {"bob": "BOB", "amy": "amy ", "jose": "JOSÉ", "strasse": "straße"}


def rows(config, region: str, db: str) -> list[tuple]:
    with connect(config, region, db) as conn, conn.cursor() as cur:
        cur.execute("SELECT HEX(id), HEX(v) FROM t ORDER BY HEX(id)")
        return list(cur.fetchall())


def topic_messages(config, region: str, db: str, idle_s: float = 3.0) -> list[tuple[bytes, int, object]]:
    """(Kafka key, partition, event) of every message on a region's topic of `db.t`."""
    topic = TopicNames.of(config).changes(region, db, "t")
    consumer = Consumer({"bootstrap.servers": config.kafka.bootstrap, "group.id": f"test-{uuid.uuid4().hex}",
                         "enable.auto.commit": False, "auto.offset.reset": "earliest"})
    try:
        partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
        consumer.assign([TopicPartition(topic, p, 0) for p in partitions])
        found, idle = [], 0.0
        while idle < idle_s:
            batch = consumer.consume(500, 0.2)
            idle = idle + 0.2 if not batch else 0.0
            for msg in batch:
                assert not msg.error(), msg.error()
                found.append((msg.key(), msg.partition(), decode(msg.value())))
        return found
    finally:
        consumer.close()


def test_spellings_of_one_text_key_conflict_and_converge_byte_identical(sandbox_config, unique: str,
                                                                       tmp_path: Path) -> None:
    db = f"coll_{unique}"
    config = config_for_test(sandbox_config, prefix=f"t{unique}", include=[f"{db}.*"], tmp=tmp_path,
                             sink={"batch_max_ms": 50}, top={"lookup": {"freshness_wait_ms": 5000}})
    path = write_config(config, tmp_path / "cdcsync.toml")
    for region in REGIONS:
        with connect(config, region) as conn, conn.cursor() as cur:
            cur.execute(f"CREATE DATABASE {db}")
            cur.execute(f"CREATE TABLE {db}.t (id VARCHAR(20) PRIMARY KEY, v VARCHAR(20))")
            cur.execute("SELECT COLLATION_NAME FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = %s "
                        "AND TABLE_NAME = 't' AND COLUMN_NAME = 'id'", (db,))
            assert cur.fetchone() == ("utf8mb4_unicode_ci",)    # the sandbox's default, untouched
        init_region(config, region)
    procs = []
    try:
        for region in REGIONS:
            procs.append(ProducerProcess(path, region, tmp_path / f"producer-{region}.log").start())
        for region in REGIONS:
            wait_until((tmp_path / "checkpoints" / region / f"{region}.json").exists, timeout=90,
                       what=f"{region} checkpoint")
        # No sink runs yet: the two regions' versions of each key are concurrent.
        for region, spellings in (("eu", list(PAIRS)), ("us", list(PAIRS.values()))):
            with connect(config, region, db, charset="utf8mb4") as conn, conn.cursor() as cur:
                for key in spellings:
                    cur.execute("INSERT INTO t VALUES (%s, %s)", (key, f"{region}-{key.strip()}"))
        for region in REGIONS:
            for sink in ("db", "cache"):
                procs.append(SinkProcess(path, region, sink, tmp_path / f"{sink}-{region}.log").start())
        wait_quiescent(config)
        assert_verified(config, timeout=30)

        final = rows(config, "eu", db)
        assert len(final) == len(PAIRS), final                       # one row per key, not per spelling
        for region in REGIONS:
            assert rows(config, region, db) == final, region        # byte-identical, key spelling included
            with connect(config, region) as conn, conn.cursor() as cur:
                cur.execute(f"SELECT pk_hash, COUNT(*) FROM {config.meta_db}.{CONFLICT_LOG} "
                            f"WHERE db = %s AND tbl = 't' AND kind = 'resolution' GROUP BY pk_hash", (db,))
                logged = dict(cur.fetchall())
                assert len(logged) == len(PAIRS) and set(logged.values()) == {1}, (region, logged)
                cur.execute(f"SELECT COUNT(*) FROM {config.meta_db}.{ROW_CLOCKS} WHERE db = %s", (db,))
                assert cur.fetchone() == (len(PAIRS),), region      # one clock per key
            cache = redis_client(config.region(region).redis)
            cached = list(cache.scan_iter(match=f"{config.prefix}:{db}.t:*"))
            assert len(cached) == len(PAIRS), (region, cached)      # one cache entry per key
            cache.close()

        # Each pair's two spellings were published, by eu and by us, under one Kafka key.
        published = {region: topic_messages(config, region, db) for region in ("eu", "us")}
        eu_keys = {m.pk["id"]: (k, p) for k, p, m in published["eu"] if m.op.value == "insert"}
        us_keys = {m.pk["id"]: (k, p) for k, p, m in published["us"] if m.op.value == "insert"}
        for a, b in PAIRS.items():
            assert eu_keys[a] == us_keys[b], (a, b, eu_keys[a], us_keys[b])

        # A new spelling of a present key is an update of that key: same Kafka key and partition.
        with connect(config, "eu", db, charset="utf8mb4") as conn, conn.cursor() as cur:
            assert cur.execute("UPDATE t SET id = 'Bob ', v = 'renamed' WHERE id = 'bob'") == 1
        wait_quiescent(config)
        assert_verified(config, timeout=30)
        final = rows(config, "eu", db)
        assert ("426F6220", "72656E616D6564") in final                # 'Bob ', 'renamed' everywhere
        for region in REGIONS:
            assert rows(config, region, db) == final, region
        bob = [(k, p, m.op.value) for k, p, m in topic_messages(config, "eu", db)
               if m.pk["id"].strip().lower() == "bob"]
        assert [op for _, _, op in bob][-1] == "update", bob
        assert len({(k, p) for k, p, _ in bob}) == 1, bob

        # The Bloom filter finds every spelling: with the cache entry gone, the lookup must reach
        # the database (a filter that rejects a spelling would answer "absent": a false negative).
        bloom = CdcsyncProcess(["bloom"], path, "eu", tmp_path / "bloom.log").start()
        procs.append(bloom)
        reader = CacheReader(config, "eu", metrics=LookupMetrics("eu", CollectorRegistry()))
        try:
            wait_until(lambda: reader.store.current(f"{db}.t") is not None and reader.store.fresh_us() > 0
                       or not bloom.alive(), timeout=60, what="the filter and a proof")
            assert bloom.alive(), bloom.output()
            for spelling in ("bob", "BOB", "bob  ", "BÓB", "JOSE", "José ", "STRASSE", "Straße", "AMY"):
                for key in list(reader.redis.scan_iter(match=f"{config.prefix}:{db}.t:*")):
                    reader.redis.delete(key)
                answer = reader.lookup_many(f"{db}.t", [spelling])[0]
                assert answer.row is not None, (spelling, answer)
                assert reader.get(f"{db}.t", spelling) == answer.row   # the read-through fill serves it
            assert reader.lookup_many(f"{db}.t", ["nobody"])[0].row is None
        finally:
            reader.close()
        for proc in procs:
            assert proc.terminate() == 0, proc.output()
    finally:
        for proc in procs:
            if proc.alive():
                proc.kill9()
        for region in REGIONS:
            with connect(config, region) as conn, conn.cursor() as cur:
                cur.execute(f"DROP DATABASE {db}")
                cur.execute(f"DELETE FROM {config.meta_db}.{ROW_CLOCKS} WHERE db = %s", (db,))
                cur.execute(f"DELETE FROM {config.meta_db}.{CONFLICT_LOG} WHERE db = %s", (db,))
