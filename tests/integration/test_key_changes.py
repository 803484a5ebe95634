"""A primary-key change (`UPDATE t SET id = 3 WHERE id = 5`) is a delete of the old key and an insert
of the new one, each on its own key's clock (docs/clocks.md). Carrying the old key's counters to the
new key made a concurrent delete of the new key in another region look already seen: it was dropped
with no conflict, though it was the last write (the checker's seed 47). Real producers and database
sinks, 3 regions."""

from __future__ import annotations

import time

import pytest

from cdcsync.tools.clock_init import init_region
from tests.conftest import config_for_test, connect
from tests.support.producer import ProducerProcess, SinkProcess, wait_until, write_config
from tests.support.quiescence import wait_quiescent

pytestmark = pytest.mark.integration

REGIONS = ("eu", "us", "ap")


def rows(config, db: str, region: str) -> list[tuple]:
    with connect(config, region, db) as conn, conn.cursor() as cur:
        cur.execute("SELECT id, v FROM kv ORDER BY id")
        return list(cur.fetchall())


def conflicts(config, db: str, region: str) -> list[tuple]:
    with connect(config, region) as conn, conn.cursor() as cur:
        cur.execute(f"SELECT pk, winner FROM {config.meta_db}.conflict_log WHERE db = %s", (db,))
        return list(cur.fetchall())


def write(config, region: str, db: str | None, *statements: str) -> None:
    with connect(config, region, db) as conn, conn.cursor() as cur:
        for statement in statements:
            cur.execute(statement)


def test_a_delete_concurrent_with_a_key_change_onto_its_key_is_a_conflict(sandbox_config, unique, tmp_path) -> None:
    db, prefix = f"kc_{unique}", f"kc{unique}"
    config = config_for_test(sandbox_config, prefix=prefix, include=[f"{db}.*"], tmp=tmp_path, snapshot="never",
                             checkpoint_interval_ms=100)
    for region in REGIONS:
        write(config, region, None, f"CREATE DATABASE {db}",
              f"CREATE TABLE {db}.kv (id INT PRIMARY KEY, v VARCHAR(20))")
        init_region(config, region)
    path = write_config(config, tmp_path / "cdcsync.toml")
    procs = [ProducerProcess(path, r, tmp_path / f"producer-{r}.log").start() for r in REGIONS]
    procs += [SinkProcess(path, r, "cache", tmp_path / f"cache-{r}.log").start() for r in REGIONS]

    def start_sinks(round_: int) -> list[SinkProcess]:
        return [SinkProcess(path, r, "db", tmp_path / f"db-{r}-{round_}.log").start() for r in REGIONS]

    sinks: list[SinkProcess] = []
    try:
        for region in REGIONS:
            wait_until((tmp_path / "checkpoints" / region / f"{region}.json").exists, timeout=90,
                       what=f"{region} checkpoint")
        sinks = start_sinks(1)
        # Row 5 has been written 4 times by eu, so its clock is {eu: 4} everywhere; row 3 is {eu: 1}.
        write(config, "eu", db, "INSERT INTO kv VALUES (5, 'five-1')", "UPDATE kv SET v = 'five-2' WHERE id = 5",
              "UPDATE kv SET v = 'five-3' WHERE id = 5", "UPDATE kv SET v = 'five-4' WHERE id = 5",
              "INSERT INTO kv VALUES (3, 'three')")
        wait_until(lambda: all(rows(config, db, r) == [(3, "three"), (5, "five-4")] for r in REGIONS),
                   timeout=120, what="rows 3 and 5 everywhere")
        for sink in sinks:
            assert sink.terminate() == 0, sink.output()

        # Concurrent, no sink running: us moves row 5 onto key 3; then eu deletes key 3, the last write.
        write(config, "us", db, "DELETE FROM kv WHERE id = 3", "UPDATE kv SET id = 3 WHERE id = 5")
        time.sleep(0.05)
        write(config, "eu", db, "DELETE FROM kv WHERE id = 3")

        sinks = start_sinks(2)
        wait_quiescent(config, timeout=300)
        time.sleep(1.0)
        wait_quiescent(config, timeout=120)

        tables = {r: rows(config, db, r) for r in REGIONS}
        logs = "\n".join(s.output()[-2000:] for s in sinks)
        # eu's delete is concurrent with us's move and later: it wins everywhere; us's move removed row 5.
        assert tables == {r: [] for r in REGIONS}, f"{tables}\n{logs}"
        logged = conflicts(config, db, "us")
        assert ('{"id":3}', "remote") in [(pk, winner) for pk, winner in logged], f"us logged no conflict: {logged}"
    finally:
        for proc in [*sinks, *procs]:
            proc.terminate()
