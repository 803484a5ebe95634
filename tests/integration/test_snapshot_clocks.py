"""A (re)snapshot is decided like any change: its events carry each row's clock from `row_clocks`,
read in the snapshot, and the table's tombstones, so `--resnapshot` of one region never overwrites
another region's newer write, never brings back a row deleted elsewhere, logs a concurrent version
as a conflict, and passes on a delete that was never streamed."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cdcsync.tools.clock_init import init_region
from common.metadata_tables import CONFLICT_LOG, ROW_CLOCKS
from tests.conftest import config_for_test, connect
from tests.support.producer import ProducerProcess, SinkProcess, wait_until, write_config
from tests.support.quiescence import wait_quiescent
from tests.support.verify import assert_verified

pytestmark = pytest.mark.integration

REGIONS = ("eu", "us")


def _rows(config, region: str, db: str) -> dict[int, str]:
    with connect(config, region, db) as conn, conn.cursor() as cur:
        cur.execute("SELECT id, v FROM kv")
        return dict(cur.fetchall())


def _write(config, region: str, db: str, *statements: str) -> None:
    with connect(config, region, db) as conn, conn.cursor() as cur:
        for statement in statements:
            assert cur.execute(statement) == 1, statement


def test_resnapshot_keeps_newer_writes_and_deletes_and_logs_concurrent_versions(
        sandbox_config, unique: str, tmp_path: Path) -> None:
    db = f"snapclk_{unique}"
    config = config_for_test(sandbox_config, prefix=f"t{unique}", include=[f"{db}.*"], tmp=tmp_path,
                             regions=REGIONS, sink={"batch_max_ms": 50})
    path = write_config(config, tmp_path / "cdcsync.toml")
    for region in REGIONS:
        with connect(config, region) as conn, conn.cursor() as cur:
            cur.execute(f"CREATE DATABASE {db}")
            cur.execute(f"CREATE TABLE {db}.kv (id INT PRIMARY KEY, v VARCHAR(40))")
        init_region(config, region)
    procs = {}

    def start(name: str, proc) -> None:
        procs[name] = proc.start()

    try:
        for region in REGIONS:
            start(f"producer-{region}", ProducerProcess(path, region, tmp_path / f"producer-{region}.log"))
            for sink in ("db", "cache"):
                start(f"{sink}-{region}", SinkProcess(path, region, sink, tmp_path / f"{sink}-{region}.log"))
        _write(config, "eu", db, *(f"INSERT INTO kv VALUES ({i}, 'eu-{i}')" for i in range(1, 6)))
        wait_until(lambda: len(_rows(config, "us", db)) == 5, timeout=90, what="the rows in us")
        wait_quiescent(config)

        # eu stops publishing and applying; both regions write meanwhile.
        assert procs["producer-eu"].terminate() == 0
        assert procs["db-eu"].terminate() == 0
        _write(config, "us", db, "UPDATE kv SET v = 'us-newer' WHERE id = 1", "DELETE FROM kv WHERE id = 2",
               "UPDATE kv SET v = 'us-concurrent' WHERE id = 3")
        # Never streamed: --resnapshot discards the checkpoint these follow.
        _write(config, "eu", db, "UPDATE kv SET v = 'eu-concurrent' WHERE id = 3", "DELETE FROM kv WHERE id = 4",
               "UPDATE kv SET v = 'eu-unstreamed' WHERE id = 5")

        resnapshot = ProducerProcess(path, "eu", tmp_path / "producer-eu-2.log", "--resnapshot")
        start("producer-eu", resnapshot)
        wait_until(lambda: f"snapshot of {db}.kv" in resnapshot.output(), timeout=90, what="eu's snapshot")
        # Only now does eu apply us's writes: the snapshot holds eu's older versions of 1 and 2.
        start("db-eu", SinkProcess(path, "eu", "db", tmp_path / "db-eu-2.log"))
        wait_quiescent(config)

        for region in REGIONS:
            rows = _rows(config, region, db)
            assert rows.get(1) == "us-newer", (region, rows)          # the newer write survives
            assert 2 not in rows, (region, rows)                      # the deleted row stays deleted
            assert 4 not in rows, (region, rows)                      # the unstreamed delete reaches us
            assert rows.get(5) == "eu-unstreamed", (region, rows)
            assert rows.get(3) in ("eu-concurrent", "us-concurrent"), (region, rows)
        assert_verified(config, timeout=30)
        with connect(config, "us") as conn, conn.cursor() as cur:
            cur.execute(f"SELECT source_topic, remote_version FROM {config.meta_db}.{CONFLICT_LOG} "
                        f"WHERE db = %s AND tbl = 'kv' AND kind = 'resolution'", (db,))
            logged = [(topic, json.loads(remote)) for topic, remote in cur.fetchall()]
        # us met eu's concurrent version of 3 only in the snapshot: resolved and logged there.
        assert [(topic, remote["values"]["v"]) for topic, remote in logged] == \
            [(f"t{unique}.eu.{db}.kv", "eu-concurrent")], logged
        for name, proc in procs.items():
            assert proc.terminate() == 0, (name, proc.output())
    finally:
        for proc in procs.values():
            if proc.alive():
                proc.kill9()
        for region in REGIONS:
            with connect(config, region) as conn, conn.cursor() as cur:
                cur.execute(f"DROP DATABASE {db}")
                cur.execute(f"DELETE FROM {config.meta_db}.{ROW_CLOCKS} WHERE db = %s", (db,))
                cur.execute(f"DELETE FROM {config.meta_db}.{CONFLICT_LOG} WHERE db = %s", (db,))
