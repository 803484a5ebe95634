"""Secondary UNIQUE keys (docs/conflicts.md, "Unique keys"): two regions insert different primary
keys with one unique value at once. Every region must end with the same row, the loser logged as a
`unique` conflict, nothing dead-lettered: real producers and database sinks, 3 regions, both orders."""

from __future__ import annotations

import time

import pytest

from schemas.clock_init import init_region
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
        # Both writers' regions met the collision; ap may have received the loser already deleted.
        assert logged[first] and logged[second], f"no unique conflict logged: {logged}"
        assert [(e[1], e[2]) for e in logged[second]] == [("local", f'{{"id":{ids[first]}}}')], logged
        assert [(e[1], e[2]) for e in logged[first]] == [("remote", f'{{"id":{ids[first]}}}')], logged
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
