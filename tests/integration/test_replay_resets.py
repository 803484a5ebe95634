"""Replay detection after the source's history or the topic changes (docs/apply.md, "When a replay is
provably a replay"): RESET MASTER, a failover that reuses GTID sequence numbers, a recreated topic.
Each time, writes made afterwards must reach the other region, never be skipped as replays."""

from __future__ import annotations

import pytest
from confluent_kafka.admin import AdminClient, NewTopic

from cdcsync.tools.clock_init import init_region
from tests.conftest import config_for_test, connect
from tests.support.producer import ProducerProcess, SinkProcess, wait_until, write_config

pytestmark = pytest.mark.integration


@pytest.fixture
def setup(sandbox_config, unique, tmp_path):
    db, prefix = f"rr_{unique}", f"rr{unique}"
    config = config_for_test(sandbox_config, prefix=prefix, include=[f"{db}.*"], tmp=tmp_path, regions=["eu", "us"],
                             snapshot="never", checkpoint_interval_ms=100)
    for region in ("eu", "us"):
        with connect(config, region) as conn, conn.cursor() as cur:
            cur.execute(f"CREATE DATABASE {db}")
            cur.execute(f"CREATE TABLE {db}.t (id INT PRIMARY KEY, v VARCHAR(20))")
        init_region(config, region)
    path = write_config(config, tmp_path / "cdcsync.toml")
    yield config, db, path, tmp_path
    for region in ("eu", "us"):
        with connect(config, region) as conn, conn.cursor() as cur:
            cur.execute(f"DROP DATABASE {db}")


def producer(path, tmp_path, *extra: str, run: int = 1) -> ProducerProcess:
    return ProducerProcess(path, "eu", tmp_path / f"producer-eu-{run}.log", *extra).start()


def sink(path, tmp_path, run: int = 1) -> SinkProcess:
    return SinkProcess(path, "us", "db", tmp_path / f"db-us-{run}.log").start()


def write(config, db: str, *statements: str, session: tuple[str, ...] = ()) -> None:
    """Each statement in its own transaction (its own GTID), in eu."""
    with connect(config, "eu", db) as conn, conn.cursor() as cur:
        for statement in session:
            cur.execute(statement)
        for statement in statements:
            cur.execute(statement)


def rows(config, db: str, region: str) -> dict[int, str]:
    with connect(config, region, db) as conn, conn.cursor() as cur:
        cur.execute("SELECT id, v FROM t")
        return dict(cur.fetchall())


def wait_rows(config, db: str, expected: dict[int, str], what: str, sink_proc: SinkProcess) -> None:
    try:
        wait_until(lambda: rows(config, db, "us") == expected, timeout=60, what=what)
    except AssertionError:
        raise AssertionError(f"{what}: us holds {rows(config, db, 'us')}, eu {rows(config, db, 'eu')}\n"
                             f"{sink_proc.output()[-3000:]}") from None


def gtid_seq(config) -> int:
    with connect(config, "eu") as conn, conn.cursor() as cur:
        cur.execute("SELECT @@gtid_domain_id, @@gtid_binlog_pos")
        domain, pos = cur.fetchone()
    mine = [g for g in pos.split(",") if g.startswith(f"{domain}-")]
    return int(mine[0].rsplit("-", 1)[1]) if mine else 0


def test_writes_after_reset_master_reach_the_other_region(setup) -> None:
    config, db, path, tmp_path = setup
    prod, db_sink = producer(path, tmp_path), sink(path, tmp_path)
    wait_until((tmp_path / "checkpoints" / "eu" / "eu.json").exists, timeout=60, what="eu checkpoint")
    write(config, db, *[f"INSERT INTO t VALUES ({i}, 'before-{i}')" for i in range(1, 9)])
    before = {i: f"before-{i}" for i in range(1, 9)}
    wait_rows(config, db, before, "writes before the reset", db_sink)
    assert gtid_seq(config) > 4

    # The source is reset: its GTID sequence numbers restart. The producer cannot resume from its
    # checkpoint; the docs say to restart it with a fresh one.
    assert prod.terminate() == 0, prod.output()
    with connect(config, "eu") as conn, conn.cursor() as cur:
        cur.execute("RESET MASTER")
    prod = producer(path, tmp_path, "--resnapshot", run=2)
    wait_until(lambda: "streaming from now" in prod.output(), timeout=60, what="producer restarted fresh")
    write(config, db, *[f"INSERT INTO t VALUES ({i}, 'after-{i}')" for i in range(11, 14)],
          "UPDATE t SET v = 'after-1' WHERE id = 1")
    assert gtid_seq(config) <= 4   # the new writes reuse sequence numbers us already applied
    wait_rows(config, db, {**before, 1: "after-1", **{i: f"after-{i}" for i in range(11, 14)}},
              "writes after RESET MASTER", db_sink)
    assert "epoch_changed" in db_sink.output()
    assert prod.terminate() == 0 and db_sink.terminate() == 0


def test_a_failover_that_reuses_sequence_numbers_is_applied(setup) -> None:
    config, db, path, tmp_path = setup
    prod, db_sink = producer(path, tmp_path), sink(path, tmp_path)
    wait_until((tmp_path / "checkpoints" / "eu" / "eu.json").exists, timeout=60, what="eu checkpoint")
    write(config, db, *[f"INSERT INTO t VALUES ({i}, 'old-primary')" for i in range(1, 6)])
    expected = {i: "old-primary" for i in range(1, 6)}
    wait_rows(config, db, expected, "writes of the old primary", db_sink)
    assert gtid_seq(config) > 6    # row 1's partition has a marker at a sequence above 1

    # A promoted replica (another server id) whose sequence numbers restart below the applied ones, as
    # a replica that missed the old primary's last transactions does: the same domain, the same
    # producer history (the stream continues), GTIDs `d-<new server>-<lower seq>`.
    with connect(config, "eu") as conn, conn.cursor() as cur:
        cur.execute("SELECT @@server_id")
        server_id = cur.fetchone()[0]
    write(config, db, "UPDATE t SET v = 'new-primary' WHERE id = 1", "INSERT INTO t VALUES (6, 'new-primary')",
          session=(f"SET SESSION server_id = {server_id + 100}", "SET SESSION gtid_seq_no = 1"))
    wait_rows(config, db, {**expected, 1: "new-primary", 6: "new-primary"}, "writes of the new primary", db_sink)
    assert "gtid_server_changed" in db_sink.output()
    assert prod.terminate() == 0 and db_sink.terminate() == 0


def test_a_recreated_topic_restarting_its_offsets_is_applied(setup) -> None:
    config, db, path, tmp_path = setup
    prod, db_sink = producer(path, tmp_path), sink(path, tmp_path)
    wait_until((tmp_path / "checkpoints" / "eu" / "eu.json").exists, timeout=60, what="eu checkpoint")
    write(config, db, "INSERT INTO t VALUES (1, 'v0')", *[f"UPDATE t SET v = 'v{i}' WHERE id = 1" for i in range(1, 8)])
    wait_rows(config, db, {1: "v7"}, "writes before the topic is recreated", db_sink)

    # The topic is deleted and created again (an operator's mistake, a mirror re-created, the
    # in-memory broker restarted): its offsets restart at 0, below us's marker.
    topic = f"{config.prefix}.eu.{db}.t"
    assert prod.terminate() == 0 and db_sink.terminate() == 0
    admin = AdminClient({"bootstrap.servers": config.kafka.bootstrap})
    partitions = len(admin.list_topics(topic, timeout=10).topics[topic].partitions)
    for future in admin.delete_topics([topic]).values():
        future.result(10)
    wait_until(lambda: topic not in admin.list_topics(timeout=10).topics, what="topic deleted")
    for future in admin.create_topics([NewTopic(topic, partitions, 1)]).values():
        future.result(10)
    prod, db_sink = producer(path, tmp_path, run=2), sink(path, tmp_path, run=2)   # the producer resumes its history
    wait_until(lambda: "resuming from checkpoint" in prod.output(), timeout=60, what="producer resumed")
    write(config, db, "UPDATE t SET v = 'after-1' WHERE id = 1", "UPDATE t SET v = 'after-2' WHERE id = 1",
          "INSERT INTO t VALUES (2, 'after')")
    wait_rows(config, db, {1: "after-2", 2: "after"}, "writes into the recreated topic", db_sink)
    assert "offsets_restarted" in db_sink.output() or "topic_recreated" in db_sink.output()
    assert prod.terminate() == 0 and db_sink.terminate() == 0
