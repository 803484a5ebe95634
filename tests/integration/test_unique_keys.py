"""Secondary UNIQUE keys (docs/conflicts.md, "Unique keys"): two regions insert different primary
keys with one unique value at once. Every region must end with the same row, the loser logged as a
`unique` conflict, nothing dead-lettered: real producers and database sinks, 3 regions, both orders."""

from __future__ import annotations

import time

import pytest

from cdcsync.tools.clock_init import init_region
from tests.conftest import config_for_test, connect
from tests.support.kafka import read_all
from tests.support.producer import ProducerProcess, SinkProcess, wait_until, write_config
from tests.support.quiescence import wait_quiescent

pytestmark = pytest.mark.integration

REGIONS = ("eu", "us", "ap")


def table(config, db: str, region: str) -> list[tuple]:
    with connect(config, region, db) as conn, conn.cursor() as cur:
        cur.execute("SELECT id, email, v FROM u ORDER BY id")
        return list(cur.fetchall())


def unique_conflicts(config, db: str, region: str) -> list[tuple]:
    with connect(config, region) as conn, conn.cursor() as cur:
        cur.execute(f"SELECT region, winner, pk, losers FROM {config.meta_db}.conflict_log "
                    f"WHERE db = %s AND kind = 'unique'", (db,))
        return list(cur.fetchall())


@pytest.mark.parametrize("first, second", [("eu", "us"), ("us", "eu")])
def test_one_unique_value_claimed_by_two_regions_converges(sandbox_config, unique, tmp_path, first, second) -> None:
    db, prefix = f"uq_{unique}", f"uq{unique}"
    config = config_for_test(sandbox_config, prefix=prefix, include=[f"{db}.*"], tmp=tmp_path, snapshot="never",
                             checkpoint_interval_ms=100)
    for region in REGIONS:
        with connect(config, region) as conn, conn.cursor() as cur:
            cur.execute(f"CREATE DATABASE {db}")
            cur.execute(f"CREATE TABLE {db}.u (id INT PRIMARY KEY, email VARCHAR(50) NOT NULL, v VARCHAR(20), "
                        f"UNIQUE KEY by_email (email))")
        init_region(config, region)
    path = write_config(config, tmp_path / "cdcsync.toml")
    procs = [ProducerProcess(path, r, tmp_path / f"producer-{r}.log").start() for r in REGIONS]
    try:
        for region in REGIONS:
            wait_until((tmp_path / "checkpoints" / region / f"{region}.json").exists, timeout=90,
                       what=f"{region} checkpoint")
        # Concurrent: no sink runs, so neither region sees the other's insert before its own.
        ids = {first: 1, second: 2}
        for region in (first, second):
            with connect(config, region, db) as conn, conn.cursor() as cur:
                cur.execute("INSERT INTO u VALUES (%s, 'same@example.com', %s)", (ids[region], f"from-{region}"))
                cur.execute("INSERT INTO u VALUES (%s, %s, 'free')", (ids[region] + 10, f"{region}@example.com"))
            time.sleep(0.05)      # the second insert has the later hlc: it keeps the value
        # The second writer's region sees the collision first (the other's insert is its first news of
        # it); then ap, which gets both, and the first writer's region.
        procs.append(SinkProcess(path, second, "db", tmp_path / f"db-{second}.log").start())
        wait_until(lambda: unique_conflicts(config, db, second) or not procs[-1].alive(), timeout=90,
                   what=f"{second} decides")
        for region in ("ap", first):
            procs.append(SinkProcess(path, region, "db", tmp_path / f"db-{region}.log").start())
        for region in REGIONS:
            procs.append(SinkProcess(path, region, "cache", tmp_path / f"cache-{region}.log").start())
        wait_quiescent(config, timeout=120)
        time.sleep(1.0)
        wait_quiescent(config, timeout=60)

        winner = (ids[second], "same@example.com", f"from-{second}")
        tables = {r: table(config, db, r) for r in REGIONS}
        logs = "\n".join(p.output()[-2000:] for p in procs[3:])
        assert all(t == tables["eu"] for t in tables.values()), f"regions differ: {tables}\n{logs}"
        assert winner in tables["eu"] and ids[first] not in [row[0] for row in tables["eu"]], tables
        assert {row[0] for row in tables["eu"]} == {ids[second], 11, 12}
        logged = {r: unique_conflicts(config, db, r) for r in REGIONS}
        # The second writer's region decided first, and published the loser's delete; the first
        # writer's region met the collision too, or got that delete before the winner (no collision).
        assert [(e[1], e[2]) for e in logged[second]] == [("local", f'{{"id":{ids[first]}}}')], logged
        assert [(e[1], e[2]) for e in logged[first]] in ([], [("remote", f'{{"id":{ids[first]}}}')]), logged
        assert all(f'"same@example.com"' in entry[3] for entries in logged.values() for entry in entries)
        dead = read_all(config.kafka.bootstrap, [f"{prefix}.{r}.dlq" for r in REGIONS], idle_s=2.0, timeout_s=30)
        assert dead == [], [(r.topic, r.headers) for r in dead]
        for proc in procs:
            assert proc.terminate() == 0, proc.output()[-3000:]
    finally:
        for proc in procs:
            if proc.alive():
                proc.kill9()
        for region in REGIONS:
            with connect(config, region) as conn, conn.cursor() as cur:
                cur.execute(f"DROP DATABASE {db}")


def test_a_batch_applies_a_unique_value_after_the_row_that_gave_it_up(sandbox_config, unique, tmp_path) -> None:
    """One region moves a unique value from row 4 to a new row 1, then touches row 4 again. A sink
    batch keeps only the last change of every key, so it holds row 1 (the value) before row 4 (which
    gives it up): row 1 must wait for row 4 in the same batch, not be dead-lettered. (Keys [1] and
    [4] share a partition of three, so the batch order is the commit order.)"""
    db, prefix = f"uqm_{unique}", f"uqm{unique}"
    regions = ["eu", "us"]
    config = config_for_test(sandbox_config, prefix=prefix, include=[f"{db}.*"], tmp=tmp_path, snapshot="never",
                             checkpoint_interval_ms=100, regions=regions)
    for region in regions:
        with connect(config, region) as conn, conn.cursor() as cur:
            cur.execute(f"CREATE DATABASE {db}")
            cur.execute(f"CREATE TABLE {db}.u (id INT PRIMARY KEY, email VARCHAR(50) NOT NULL, v VARCHAR(20), "
                        f"UNIQUE KEY by_email (email))")
        init_region(config, region)
    path = write_config(config, tmp_path / "cdcsync.toml")
    procs = [ProducerProcess(path, "eu", tmp_path / "producer-eu.log").start()]
    try:
        wait_until((tmp_path / "checkpoints" / "eu" / "eu.json").exists, timeout=90, what="eu checkpoint")
        with connect(config, "eu", db) as conn, conn.cursor() as cur:
            cur.execute("INSERT INTO u VALUES (4, 'moved@example.com', 'old')")
        sink = SinkProcess(path, "us", "db", tmp_path / "db-us-1.log").start()
        wait_until(lambda: table(config, db, "us") == [(4, "moved@example.com", "old")], timeout=90,
                   what="row 4 in us")
        assert sink.terminate() == 0, sink.output()[-3000:]
        with connect(config, "eu", db) as conn, conn.cursor() as cur:
            cur.execute("UPDATE u SET email = 'other@example.com' WHERE id = 4")
            cur.execute("INSERT INTO u VALUES (1, 'moved@example.com', 'new')")
            cur.execute("UPDATE u SET v = 'touched' WHERE id = 4")
        procs.append(SinkProcess(path, "us", "db", tmp_path / "db-us-2.log").start())
        expected = [(1, "moved@example.com", "new"), (4, "other@example.com", "touched")]
        assert table(config, db, "eu") == expected
        wait_until(lambda: table(config, db, "us") == expected or "cannot apply" in procs[-1].output(), timeout=90,
                   what="us applies the batch")
        assert table(config, db, "us") == expected, procs[-1].output()[-3000:]
        dead = read_all(config.kafka.bootstrap, [f"{prefix}.us.dlq"], idle_s=2.0, timeout_s=30)
        assert dead == [], [(r.topic, r.headers) for r in dead]
        assert unique_conflicts(config, db, "us") == []      # an ordering, not a conflict
        for proc in procs:
            assert proc.terminate() == 0, proc.output()[-3000:]
    finally:
        for proc in procs:
            if proc.alive():
                proc.kill9()
        for region in regions:
            with connect(config, region) as conn, conn.cursor() as cur:
                cur.execute(f"DROP DATABASE {db}")


def test_a_remote_version_that_lost_its_value_is_deleted_in_every_region(sandbox_config, unique, tmp_path) -> None:
    """Only us meets the collision: ap's row 4 arrives while us's row 9 holds the value with a later
    hlc, then row 9 gives the value up. Elsewhere row 9's two changes reach the sink in one batch,
    which keeps only the last: no collision there. us's decision must reach them as a delete of
    row 4 (the checker's seed 10 ended with row 4 in eu and ap, and not in us)."""
    db, prefix = f"uqr_{unique}", f"uqr{unique}"
    config = config_for_test(sandbox_config, prefix=prefix, include=[f"{db}.*"], tmp=tmp_path, snapshot="never",
                             checkpoint_interval_ms=100)
    for region in REGIONS:
        with connect(config, region) as conn, conn.cursor() as cur:
            cur.execute(f"CREATE DATABASE {db}")
            cur.execute(f"CREATE TABLE {db}.u (id INT PRIMARY KEY, email VARCHAR(50) NOT NULL, v VARCHAR(20), "
                        f"UNIQUE KEY by_email (email))")
        init_region(config, region)
    path = write_config(config, tmp_path / "cdcsync.toml")
    procs = [ProducerProcess(path, r, tmp_path / f"producer-{r}.log").start() for r in REGIONS]
    try:
        for region in REGIONS:
            wait_until((tmp_path / "checkpoints" / region / f"{region}.json").exists, timeout=90,
                       what=f"{region} checkpoint")
        with connect(config, "ap", db) as conn, conn.cursor() as cur:
            cur.execute("INSERT INTO u VALUES (4, 'a@example.com', 'ap')")
        time.sleep(0.05)
        with connect(config, "us", db) as conn, conn.cursor() as cur:
            cur.execute("INSERT INTO u VALUES (9, 'a@example.com', 'us')")     # later: it keeps the value
        sink = SinkProcess(path, "us", "db", tmp_path / "db-us-1.log").start()
        wait_until(lambda: unique_conflicts(config, db, "us") or not sink.alive(), timeout=90, what="us decides")
        assert sink.terminate() == 0, sink.output()[-3000:]
        assert [(e[1], e[2]) for e in unique_conflicts(config, db, "us")] == [("local", '{"id":4}')]
        with connect(config, "us", db) as conn, conn.cursor() as cur:
            cur.execute("UPDATE u SET email = 'z@example.com' WHERE id = 9")    # gives the value up
        for region in REGIONS:
            procs.append(SinkProcess(path, region, "db", tmp_path / f"db-{region}.log").start())
            procs.append(SinkProcess(path, region, "cache", tmp_path / f"cache-{region}.log").start())
        wait_quiescent(config, timeout=300)
        time.sleep(1.0)
        wait_quiescent(config, timeout=120)

        tables = {r: table(config, db, r) for r in REGIONS}
        logs = "\n".join(p.output()[-2000:] for p in procs[3:])
        assert tables == {r: [(9, "z@example.com", "us")] for r in REGIONS}, f"{tables}\n{logs}"
        dead = read_all(config.kafka.bootstrap, [f"{prefix}.{r}.dlq" for r in REGIONS], idle_s=2.0, timeout_s=30)
        assert dead == [], [(r.topic, r.headers) for r in dead]
        for proc in procs:
            assert proc.terminate() == 0, proc.output()[-3000:]
    finally:
        for proc in procs:
            if proc.alive():
                proc.kill9()
        for region in REGIONS:
            with connect(config, region) as conn, conn.cursor() as cur:
                cur.execute(f"DROP DATABASE {db}")
