"""`cdcsync region add` on real servers: a two-region pipeline (eu, us) runs with data; ap is seeded
from eu while eu keeps writing; then the three-region pipeline runs, every region writes, and
`cdcsync verify` passes with ap's clocks equal to eu's. Each precondition is refused on real servers."""

from __future__ import annotations

import json
import random
import subprocess
import sys
import threading
import time
from pathlib import Path

import pymysql
import pytest
from confluent_kafka import Consumer, Producer, TopicPartition as KafkaTP

from cdcsync.tools.cache_rebuild import rebuild_cache
from cdcsync.tools.clock_init import init_region
from cdcsync.tools.regions.add import RegionAddError, add_region, check_preconditions
from cdcsync.tools.regions.offsets import committed, record_start_offsets
from common.checkpoint_store import FileCheckpointStore
from common.kafka import TopicCreator, client_settings, watermarks
from common.metadata_tables import APPLY_MARKER, ROW_CLOCKS
from schemas.topics import TopicNames
from tests.conftest import REGIONS, config_for_test, connect
from tests.support.kafka import read_all
from tests.support.producer import pipeline, write_config
from tests.support.quiescence import wait_quiescent
from tests.support.verify import assert_verified

pytestmark = pytest.mark.integration

TABLES = ("CREATE TABLE {db}.kv (id INT PRIMARY KEY, v VARCHAR(40))",
          "CREATE TABLE {db}.typed (k VARCHAR(20) PRIMARY KEY, d DATETIME(6), z DATE, b BLOB, n DECIMAL(12,3), "
          "j JSON, e ENUM('x','y'))")
HOT = range(0, 200)          # keys eu's concurrent writer updates and deletes during the copy
HOOK = range(200, 300)       # keys eu updates between the offsets recording and the snapshot
COLD = range(300, 3000)      # eu keys nobody touches from the offsets recording to the three-region run
DELETED = range(2900, 3000)  # deleted in eu before the add: tombstones to copy


def configs(sandbox_config, unique: str, tmp_path: Path):
    db = f"ra_{unique}"
    common = dict(prefix=f"t{unique}", include=[f"{db}.*"], tmp=tmp_path, sink={"batch_max_ms": 50},
                  snapshot_chunk_rows=250)
    two = config_for_test(sandbox_config, regions=["eu", "us"], **common)
    three = config_for_test(sandbox_config, **common)
    return db, two, three


def create(config, db: str, regions=tuple(REGIONS), tables=TABLES) -> None:
    for region in regions:
        with connect(config, region) as conn, conn.cursor() as cur:
            cur.execute(f"CREATE DATABASE {db}")
            for statement in tables:
                cur.execute(statement.format(db=db))


def drop(config, db: str) -> None:
    for region in REGIONS:
        with connect(config, region) as conn, conn.cursor() as cur:
            cur.execute(f"DROP DATABASE IF EXISTS {db}")
            cur.execute(f"DELETE FROM {config.meta_db}.{ROW_CLOCKS} WHERE db = %s", (db,))


def run(config, region: str, db: str, statement: str, rows: list[tuple] | None = None) -> None:
    with connect(config, region, db) as conn, conn.cursor() as cur:
        if rows is None:
            cur.execute(statement)
        else:
            cur.executemany(statement, rows)


def clocks(config, region: str, db: str, table: str = "kv") -> dict[int, tuple]:
    with connect(config, region) as conn, conn.cursor() as cur:
        cur.execute(f"SELECT pk, counters, hlc_us, deleted, origin, heads FROM {config.meta_db}.{ROW_CLOCKS} "
                    f"WHERE db = %s AND tbl = %s", (db, table))
        return {int(pk.split(":", 1)[1]): (json.loads(c), h, d, o, heads) for pk, c, h, d, o, heads in cur.fetchall()}


class EuWriter(threading.Thread):
    """Writes in eu until stopped: updates and deletes of HOT keys, inserts of new keys."""

    def __init__(self, config, db: str) -> None:
        super().__init__(daemon=True)
        self.config, self.db = config, db
        self.stop = threading.Event()
        self.commits = 0
        self.errors: list[BaseException] = []

    def run(self) -> None:
        rng = random.Random(7)
        try:
            with connect(self.config, "eu", self.db) as conn, conn.cursor() as cur:
                fresh = 100_000
                while not self.stop.is_set():
                    key = rng.choice(HOT)
                    try:
                        if rng.random() < 0.2:
                            cur.execute("DELETE FROM kv WHERE id = %s", (key,))
                        else:
                            cur.execute("INSERT INTO kv (id, v) VALUES (%s, %s) ON DUPLICATE KEY UPDATE v = VALUES(v)",
                                        (key, f"w{self.commits}"))
                        cur.execute("INSERT INTO kv (id, v) VALUES (%s, %s)", (fresh, f"n{fresh}"))
                    except pymysql.err.OperationalError as err:
                        if err.args[0] not in (1205, 1213):
                            raise
                        continue
                    fresh += 1
                    self.commits += 1
                    time.sleep(0.003)
        except BaseException as err:  # noqa: BLE001 - reported by the test
            self.errors.append(err)


def test_region_add_seeds_ap_from_eu_while_eu_writes_and_the_three_regions_converge(
        sandbox_config, unique: str, tmp_path: Path) -> None:
    db, two, three = configs(sandbox_config, unique, tmp_path)
    two_path, three_path = write_config(two, tmp_path / "two.toml"), write_config(three, tmp_path / "three.toml")
    create(three, db)
    for region in two.regions:
        init_region(two, region)
    try:
        with pipeline(two, two_path, tmp_path):
            run(two, "eu", db, "INSERT INTO kv (id, v) VALUES (%s, %s)", [(i, f"eu{i}") for i in range(3000)])
            run(two, "us", db, "INSERT INTO kv (id, v) VALUES (%s, %s)", [(i, f"us{i}") for i in range(50_000, 50_500)])
            run(two, "eu", db, "INSERT INTO typed VALUES (%s, %s, %s, %s, %s, %s, %s)",
                [(f"k{i}", f"2024-02-29 12:00:0{i % 10}.123456", "0000-00-00" if i == 3 else "2020-01-31",
                  bytes([i, 0, 255]), f"{i}.125", json.dumps({"i": i, "s": "é"}), "y") for i in range(40)])
            run(two, "eu", db, f"DELETE FROM kv WHERE id >= {DELETED.start} AND id < {DELETED.stop}")
            run(two, "us", db, "UPDATE kv SET v = 'us-upd' WHERE id >= 50000 AND id < 50050")
            wait_quiescent(two)

            writer = EuWriter(two, db)
            writer.start()

            def between() -> None:   # after the offsets are recorded, before the snapshot opens
                run(two, "eu", db, f"UPDATE kv SET v = 'hook' WHERE id >= {HOOK.start} AND id < {HOOK.stop}")
                run(two, "us", db, "INSERT INTO kv (id, v) VALUES (%s, %s)",
                    [(i, f"us{i}") for i in range(60_000, 60_100)])
                time.sleep(1.0)      # let eu's producer publish them past the recorded end offsets
            before = writer.commits
            report = add_region(three, "ap", "eu", after_offsets=between)
            during = writer.commits - before
            time.sleep(1.0)
            writer.stop.set()
            writer.join(30)
            assert not writer.errors, writer.errors
            assert during > 0, "eu wrote nothing while ap was seeded: the test proves nothing"

            assert report.copy.rows[f"{db}.kv"] >= 2900 and report.copy.rows[f"{db}.typed"] == 40
            eu, ap = clocks(three, "eu", db), clocks(three, "ap", db)
            cold = [k for k in (*COLD, *range(50_000, 50_500)) if k in eu]
            assert len(cold) == len(COLD) + 500
            assert {k: ap.get(k) for k in cold} == {k: eu[k] for k in cold}
            assert sum(1 for k in DELETED if ap[k][2] == 1) == len(DELETED)   # tombstones copied
            with connect(three, "ap", db) as conn, conn.cursor() as cur:
                cur.execute("SELECT COUNT(*) FROM kv WHERE id >= %s AND id < %s", (DELETED.start, DELETED.stop))
                assert cur.fetchone()[0] == 0
            store = FileCheckpointStore(three.region("ap").producer.checkpoint_dir, "ap", three.region("ap").server_id)
            assert store.load() is not None
            offsets = {(o.topic, o.partition): o for c in report.offsets for o in c.offsets}
            assert {o.source for o in offsets.values()} == {"eu", "us"}
            assert {o.why for o in offsets.values() if o.source == "us"} <= {"seed sink committed", "empty partition"}
            assert report.committed == len(offsets)
            group = f"{three.prefix}.ap.db"
            names = TopicNames.of(three)
            now = {**committed(three.kafka, group, names.change_subscription("eu")),
                   **committed(three.kafka, group, names.change_subscription("us"))}
            assert now == {tp: o.offset for tp, o in offsets.items()}
            # eu's writes after the recording are past the start offsets: ap replays them (clocks skip the copied ones)
            eu_topic = names.changes("eu", db, "kv")
            ends = watermarks(client_settings(three.kafka), [KafkaTP(eu_topic, p) for p in range(3)], 10)
            assert sum(ends[(eu_topic, p)][1] - offsets[(eu_topic, p)].offset for p in range(3)) >= len(HOOK) + during

        with pipeline(three, three_path, tmp_path):
            run(three, "ap", db, "UPDATE kv SET v = 'ap-upd' WHERE id >= 300 AND id < 400")
            run(three, "ap", db, "INSERT INTO kv (id, v) VALUES (%s, %s)",
                [(i, f"ap{i}") for i in range(70_000, 70_100)])
            run(three, "us", db, "UPDATE kv SET v = 'us-late' WHERE id >= 400 AND id < 450")
            run(three, "eu", db, "UPDATE kv SET v = 'eu-late' WHERE id >= 450 AND id < 500")
            run(three, "eu", db, "UPDATE typed SET n = 1.5 WHERE k = 'k1'")
            wait_quiescent(three)
            rebuild_cache(three, "ap")
            assert_verified(three, timeout=30)
            eu, ap, us = clocks(three, "eu", db), clocks(three, "ap", db), clocks(three, "us", db)
            assert len(ap) > len(COLD)
            assert {k: v[:4] for k, v in ap.items()} == {k: v[:4] for k, v in eu.items()}
            assert {k: v[:4] for k, v in us.items()} == {k: v[:4] for k, v in eu.items()}
            with connect(three, "ap", db) as conn, conn.cursor() as cur:
                cur.execute("SELECT v FROM kv WHERE id IN (350, 420, 470, 60050, 70050)")
                assert sorted(v for (v,) in cur.fetchall()) == ["ap-upd", "ap70050", "eu-late", "us-late", "us60050"]
        # ap's producer started after the copy: it published ap's own writes, never the copied rows as ap's.
        ap_topic = TopicNames.of(three).changes("ap", db, "kv")
        own = [r.message.pk["id"] for r in read_all(three.kafka.bootstrap, [ap_topic]) if r.message.origin == "ap"]
        assert sorted(own) == [*range(300, 400), *range(70_000, 70_100)]
    finally:
        drop(three, db)


# -- refusals ------------------------------------------------------------------------------------------
def cli(path: Path, *args: str) -> tuple[int, str]:
    """Exit code and stderr with rich's line wrapping undone."""
    result = subprocess.run([sys.executable, "-m", "cdcsync", "region", "add", *args, "--config", str(path)],
                            capture_output=True, text=True, timeout=120)
    return result.returncode, " ".join(result.stderr.split())


@pytest.fixture
def seeded(sandbox_config, unique: str, tmp_path: Path):
    """eu and us with a table (no pipeline), ap with it too, empty; the three-region config."""
    db, _, three = configs(sandbox_config, unique, tmp_path)
    create(three, db, tables=TABLES[:1])
    for region in REGIONS:
        init_region(three, region)
    try:
        yield db, three, write_config(three, tmp_path / "three.toml")
    finally:
        drop(three, db)


def test_refuses_a_region_missing_from_the_config_or_seeded_from_itself(seeded) -> None:
    _, _, path = seeded
    code, said = cli(path, "sa", "--seed-from", "eu")
    assert code == 1
    assert "region 'sa' is not in the config" in said and "add [regions.sa] with its connection settings" in said
    code, said = cli(path, "ap", "--seed-from", "ap")
    assert code == 1 and "cannot be seeded from itself" in said


def test_refuses_missing_and_non_empty_tables_and_existing_clocks(seeded) -> None:
    db, config, path = seeded
    run(config, "ap", db, "DROP TABLE kv")
    code, said = cli(path, "ap", "--seed-from", "eu")
    assert code == 1 and f"{db}.kv does not exist" in said, said
    run(config, "ap", db, TABLES[0].format(db=db))
    init_region(config, "ap")                 # its clock triggers again
    run(config, "ap", db, "INSERT INTO kv VALUES (1, 'mine')")
    code, said = cli(path, "ap", "--seed-from", "eu")
    assert code == 1 and f"{db}.kv is not empty" in said and "never overwrites data" in said, said
    run(config, "ap", db, "DELETE FROM kv")   # leaves a tombstone clock (the trigger)
    with pytest.raises(RegionAddError, match=f"row_clocks already holds clocks of {db}.kv"):
        check_preconditions(config, "ap", "eu")
    topic = TopicNames.of(config).changes("eu", db, "kv")
    with connect(config, "ap") as conn, conn.cursor() as cur:
        cur.execute(f"DELETE FROM {config.meta_db}.{ROW_CLOCKS} WHERE db = %s", (db,))
        cur.execute(f"INSERT INTO {config.meta_db}.{APPLY_MARKER} (source_topic, source_partition, origin, "
                    f"applied_offset) VALUES (%s, 2, 'eu', 41)", (topic,))
    try:
        with pytest.raises(RegionAddError, match=rf"apply_marker already records applied source offsets "
                                                 rf"\({topic.replace('.', '[.]')}\[2\]@41\)"):
            check_preconditions(config, "ap", "eu")
    finally:
        with connect(config, "ap") as conn, conn.cursor() as cur:
            cur.execute(f"DELETE FROM {config.meta_db}.{APPLY_MARKER} WHERE source_topic = %s", (topic,))
    assert check_preconditions(config, "ap", "eu") == [(db, "kv")]
    with connect(config, "ap", db) as conn, conn.cursor() as cur:   # nothing was copied by the refusals
        cur.execute("SELECT COUNT(*) FROM kv")
        assert cur.fetchone()[0] == 0


def test_refuses_when_the_new_regions_db_group_has_committed_offsets(seeded) -> None:
    db, config, path = seeded
    names = TopicNames.of(config)
    topic = names.changes("eu", db, "kv")
    kafka = config.kafka_for("eu")
    TopicCreator(kafka).ensure(topic)
    consumer = Consumer({**client_settings(kafka), "group.id": f"{config.prefix}.ap.db", "enable.auto.commit": False})
    try:
        consumer.commit(offsets=[KafkaTP(topic, 0, 0)], asynchronous=False)
    finally:
        consumer.close()
    code, said = cli(path, "ap", "--seed-from", "eu")
    assert code == 1
    assert f"consumer group {config.prefix}.ap.db already has committed offsets ({topic}[0]@0)" in said, said


def test_refuses_when_the_seeds_sink_has_not_committed_on_another_sources_partition(seeded) -> None:
    db, config, _ = seeded
    topic = TopicNames.of(config).changes("us", db, "kv")
    kafka = config.kafka_for("us")
    TopicCreator(kafka).ensure(topic)
    producer = Producer(client_settings(kafka))
    producer.produce(topic, b"x", key=b"1", partition=1)
    producer.flush(10)
    with pytest.raises(RegionAddError, match=rf"{config.prefix}\.eu\.db has no committed offset on "
                                             rf"{topic.replace('.', '[.]')}\[1\]"):
        record_start_offsets(config, "ap", "eu")
    # The refusal came before anything was written: ap is still seedable.
    assert check_preconditions(config, "ap", "eu") == [(db, "kv")]


def test_the_command_copies_prints_what_it_did_and_the_next_steps(seeded) -> None:
    db, config, path = seeded
    run(config, "eu", db, "INSERT INTO kv (id, v) VALUES (%s, %s)", [(i, f"eu{i}") for i in range(30)])
    result = subprocess.run([sys.executable, "-m", "cdcsync", "region", "add", "ap", "--seed-from", "eu",
                             "--config", str(path)], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert f"copied {db}.kv: 30 rows, 30 clocks" in out
    assert f"producer checkpoint {config.region('ap').producer.checkpoint_dir}/ap.json" in out
    assert "init ap: triggers" in out and "init eu: triggers" in out and "init us: triggers" in out
    assert f"committed 0 start offsets for {config.prefix}.ap.db" in out   # no source topic exists yet
    assert "cdcsync cache rebuild --config CONFIG --region ap" in out
    with connect(config, "ap", db) as conn, conn.cursor() as cur:
        cur.execute("SELECT COUNT(*) FROM kv")
        assert cur.fetchone()[0] == 30
    code, said = cli(path, "ap", "--seed-from", "eu")   # a second run finds ap filled
    assert code == 1 and f"{db}.kv is not empty" in said
