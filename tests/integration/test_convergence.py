"""Proof of convergence on real servers: writers in all three regions work concurrently on a few keys
(inserts, updates, deletes, re-inserts), so conflicts are frequent. After the writes stop and the
pipeline is quiescent, `cdcsync verify` passes, and every acknowledged write is accounted for: it is
the final value, or a later write was made on top of it (its clock dominates), or it is a losing
version in some region's conflict log. Run for several seeds (each on a table with another conflict
strategy: lww, region-priority, custom), in mesh and star topologies."""

from __future__ import annotations

import json
import random
import subprocess
import sys
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pymysql
import pytest
from confluent_kafka import Consumer, TopicPartition

from schemas.conflict_record import ConflictRecord

from cdcsync.tools.clock_init import init_region
from common.metadata_tables import CONFLICT_LOG, ROW_CLOCKS
from schemas.vclock import Order, VectorClock
from tests.conftest import REGIONS, config_for_test, connect
from tests.support.producer import pipeline, write_config
from tests.support.quiescence import wait_quiescent
from tests.support.verify import assert_verified

pytestmark = pytest.mark.integration

KEYS = 5
OPS_PER_REGION = 60
# One table per seed, each with another conflict strategy.
STRATEGIES = {11: {"conflict_strategy": "lww"},
              22: {"conflict_strategy": "region-priority", "region_priority": ["us", "ap", "eu"]},
              33: {"conflict_strategy": "custom", "custom_resolver": "tests.support.resolvers:greatest_value"}}
SEEDS = tuple(STRATEGIES)
RETRYABLE = {1205, 1213}   # lock wait timeout, deadlock: the write was not acknowledged


@dataclass(frozen=True)
class Ack:
    """A write the database acknowledged (committed), with the clock it got."""

    region: str
    key: int
    op: str
    token: str | None            # the value written (unique per write); None for a delete
    clock: VectorClock


def clock_key(key: int) -> str:
    return f"{len(str(key))}:{key}"


def write_randomly(config, region: str, db: str, table: str, seed: int, acks: list[Ack], errors: list) -> None:
    rng = random.Random(f"{seed}-{region}")
    conn = connect(config, region, db)
    conn.autocommit(False)
    try:
        for i in range(OPS_PER_REGION):
            key, token = rng.randrange(KEYS), f"{region}-{seed}-{i}"
            op = rng.choice(["insert", "update", "update", "delete", "reinsert"])
            try:
                with conn.cursor() as cur:
                    if op == "insert":
                        cur.execute(f"INSERT INTO {table} (id, v) VALUES (%s, %s)", (key, token))
                    elif op == "update":
                        changed = cur.execute(f"UPDATE {table} SET v = %s WHERE id = %s", (token, key))
                    elif op == "delete":
                        changed = cur.execute(f"DELETE FROM {table} WHERE id = %s", (key,))
                    else:
                        cur.execute(f"INSERT INTO {table} (id, v) VALUES (%s, %s) "
                                    f"ON DUPLICATE KEY UPDATE v = VALUES(v)", (key, token))
                    if op in ("update", "delete") and not changed:
                        conn.rollback()
                        continue
                    cur.execute(f"SELECT counters, hlc_us FROM {config.meta_db}.{ROW_CLOCKS} "
                                f"WHERE db = %s AND tbl = %s AND pk = %s", (db, table, clock_key(key)))
                    counters, hlc = cur.fetchone()
                conn.commit()
            except pymysql.err.IntegrityError:      # insert of a present key: refused, not acknowledged
                conn.rollback()
                continue
            except pymysql.err.OperationalError as err:
                conn.rollback()
                if err.args[0] in RETRYABLE:
                    continue
                raise
            acks.append(Ack(region, key, op, None if op == "delete" else token,
                            VectorClock(counters=json.loads(counters), hlc_us=hlc)))
    except BaseException as err:  # noqa: BLE001 - reported by the test thread
        errors.append(err)
    finally:
        conn.close()


def final_state(config, db: str, table: str) -> dict[int, tuple[Any, VectorClock]]:
    with connect(config, "eu", db) as conn, conn.cursor() as cur:
        cur.execute(f"SELECT id, v FROM {table}")
        values = dict(cur.fetchall())
        cur.execute(f"SELECT pk, counters, hlc_us FROM {config.meta_db}.{ROW_CLOCKS} WHERE db = %s AND tbl = %s",
                    (db, table))
        clocks = {int(pk.split(":", 1)[1]): VectorClock(counters=json.loads(c), hlc_us=h) for pk, c, h in cur.fetchall()}
    return {key: (values.get(key), clock) for key, clock in clocks.items()}


def losers(config, db: str, table: str) -> list[tuple[int, Any, VectorClock]]:
    """(key, v or None, clock) of every losing version in every region's conflict log."""
    found = []
    for region in config.regions:
        with connect(config, region) as conn, conn.cursor() as cur:
            cur.execute(f"SELECT pk, losers FROM {config.meta_db}.{CONFLICT_LOG} WHERE db = %s AND tbl = %s",
                        (db, table))
            for pk, lost in cur.fetchall():
                key = json.loads(pk)["id"]
                for version in json.loads(lost):
                    value = None if version["values"] is None else version["values"]["v"]
                    found.append((key, value, VectorClock(counters=version["counters"], hlc_us=version["hlc_us"])))
    return found


def unaccounted(acks: list[Ack], final: dict[int, tuple[Any, VectorClock]],
                lost: list[tuple[int, Any, VectorClock]]) -> list[Ack]:
    missing = []
    for ack in acks:
        value, clock = final.get(ack.key, (None, VectorClock()))
        if value == ack.token and clock.dominates(ack.clock):
            continue                                              # the final value
        if any(o.key == ack.key and o.clock.compare(ack.clock) is Order.AFTER for o in acks):
            continue                                              # a later write was made on top of it
        if ack.token is not None and any(k == ack.key and v == ack.token for k, v, _ in lost):
            continue                                              # lost a conflict, logged
        if ack.token is None and any(k == ack.key and v is None and c.dominates(ack.clock) for k, v, c in lost):
            continue                                              # a delete that lost, logged
        missing.append(ack)
    return missing


def run_seeds(config, db: str) -> int:
    """Every seed's writers at once (one table each), then one wait for quiescence and one verify;
    then each seed's acknowledged writes are accounted for. Returns the number of logged losers."""
    acks: dict[int, list[Ack]] = {seed: [] for seed in SEEDS}
    errors: list[BaseException] = []
    threads = [threading.Thread(target=write_randomly, args=(config, region, db, f"kv{seed}", seed, acks[seed], errors))
               for seed in SEEDS for region in config.regions]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert not errors, errors
    wait_quiescent(config)
    assert_verified(config, timeout=30)
    conflicts = 0
    for seed in SEEDS:
        table = f"kv{seed}"
        final, lost = final_state(config, db, table), losers(config, db, table)
        assert not unaccounted(acks[seed], final, lost), seed
        print(f"seed {seed}: {len(acks[seed])} acknowledged writes, {len(lost)} logged losers")
        conflicts += len(lost)
    return conflicts


def conflicts_topic(config, idle_s: float = 3.0) -> list[ConflictRecord]:
    """Every record on `<prefix>.conflicts`."""
    topic = f"{config.prefix}.conflicts"
    consumer = Consumer({"bootstrap.servers": config.kafka.bootstrap, "group.id": f"test-{uuid.uuid4().hex}",
                         "enable.auto.commit": False, "auto.offset.reset": "earliest"})
    try:
        partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
        consumer.assign([TopicPartition(topic, p, 0) for p in partitions])
        records, last = [], time.monotonic()
        while time.monotonic() - last < idle_s:
            for msg in consumer.consume(500, 0.2):
                assert not msg.error(), msg.error()
                records.append(ConflictRecord.model_validate_json(msg.value()))
                last = time.monotonic()
        return records
    finally:
        consumer.close()


def logged(config, db: str) -> set[tuple]:
    """(region, source topic, partition, offset) of every resolution in every region's conflict log."""
    found = set()
    for region in config.regions:
        with connect(config, region) as conn, conn.cursor() as cur:
            cur.execute(f"SELECT region, source_topic, source_partition, source_offset FROM "
                        f"{config.meta_db}.{CONFLICT_LOG} WHERE db = %s AND kind = 'resolution'", (db,))
            found |= set(cur.fetchall())
    return found


def override_replicates(config, path: Path, db: str) -> None:
    """An operator's override in one region becomes the value everywhere."""
    with connect(config, "us") as conn, conn.cursor() as cur:
        cur.execute(f"SELECT id, pk FROM {config.meta_db}.{CONFLICT_LOG} WHERE db = %s AND tbl = 'kv11' "
                    f"ORDER BY id DESC LIMIT 1", (db,))
        record_id, pk = cur.fetchone()
    key = json.loads(pk)["id"]
    done = subprocess.run([sys.executable, "-m", "cdcsync", "conflicts", "resolve", str(record_id), "--config",
                           str(path), "--region", "us", "--take", "json", "--value", '{"v": "by-operator"}'],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr
    wait_quiescent(config)
    assert_verified(config, timeout=30)
    for region in config.regions:
        with connect(config, region, db) as conn, conn.cursor() as cur:
            cur.execute("SELECT v FROM kv11 WHERE id = %s", (key,))
            assert cur.fetchone() == ("by-operator",), region
    with connect(config, "us") as conn, conn.cursor() as cur:
        cur.execute(f"SELECT COUNT(*) FROM {config.meta_db}.{CONFLICT_LOG} WHERE overrides = %s", (record_id,))
        assert cur.fetchone() == (1,)


@pytest.mark.parametrize("topology", ["mesh", "star"])
def test_concurrent_writers_in_three_regions_converge_and_lose_nothing_silently(
        sandbox_config, unique: str, tmp_path: Path, topology: str) -> None:
    db = f"conv_{unique}"
    top = {"topology": {"mode": topology, "hub": "eu" if topology == "star" else None},
           "tables": {f"{db}.kv{seed}": strategy for seed, strategy in STRATEGIES.items()}}
    config = config_for_test(sandbox_config, prefix=f"t{unique}", include=[f"{db}.*"], tmp=tmp_path, top=top,
                             sink={"batch_max_ms": 50})
    path = write_config(config, tmp_path / "cdcsync.toml")
    for region in REGIONS:
        with connect(config, region) as conn, conn.cursor() as cur:
            cur.execute(f"CREATE DATABASE {db}")
            for seed in SEEDS:
                cur.execute(f"CREATE TABLE {db}.kv{seed} (id INT PRIMARY KEY, v VARCHAR(40))")
        init_region(config, region)
    try:
        with pipeline(config, path, tmp_path):
            assert run_seeds(config, db) > 0, "the workload made no conflict: it proves nothing"
            published = {(r.region, r.source_topic, r.source_partition, r.source_offset)
                         for r in conflicts_topic(config)}
            assert published == logged(config, db)       # every resolution also reached the topic
            override_replicates(config, path, db)
    finally:
        for region in REGIONS:
            with connect(config, region) as conn, conn.cursor() as cur:
                cur.execute(f"DROP DATABASE {db}")
                cur.execute(f"DELETE FROM {config.meta_db}.{ROW_CLOCKS} WHERE db = %s", (db,))
                cur.execute(f"DELETE FROM {config.meta_db}.{CONFLICT_LOG} WHERE db = %s", (db,))
