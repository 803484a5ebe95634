"""`cdcsync verify --repair` (cdcsync/tools/repair.py): regions made to diverge on purpose, outside the
pipeline (a write with the clock triggers and the binlog off in one region, a row deleted by hand in
another), are repaired through the normal path: afterwards `verify` passes (databases and caches) and
the repair is in every region's conflict log. Real MariaDB, Tansu and Redis, 3 regions."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import pytest

from cdcsync.tools.clock_init import init_region
from cdcsync.tools.verify import verify
from tests.conftest import config_for_test, connect
from tests.support.producer import pipeline, wait_until, write_config
from tests.support.quiescence import wait_quiescent

pytestmark = pytest.mark.integration

REGIONS = ("eu", "us", "ap")


def rows(config, db: str, region: str) -> list[tuple]:
    with connect(config, region, db) as conn, conn.cursor() as cur:
        cur.execute("SELECT id, v FROM t ORDER BY id")
        return list(cur.fetchall())


def repairs(config, db: str, region: str) -> list[tuple]:
    with connect(config, region) as conn, conn.cursor() as cur:
        cur.execute(f"SELECT region, winner, pk FROM {config.meta_db}.conflict_log WHERE db = %s AND kind = 'repair' "
                    f"ORDER BY pk", (db,))
        return list(cur.fetchall())


def cdcsync(path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "cdcsync", "verify", "--config", str(path), *args],
                          capture_output=True, text=True, timeout=120)


def test_verify_repair_makes_diverged_regions_converge_and_logs_it_everywhere(sandbox_config, unique, tmp_path) -> None:
    db, prefix = f"rp_{unique}", f"rp{unique}"
    config = config_for_test(sandbox_config, prefix=prefix, include=[f"{db}.*"], tmp=tmp_path, snapshot="never",
                             checkpoint_interval_ms=100)
    for region in REGIONS:
        with connect(config, region) as conn, conn.cursor() as cur:
            cur.execute(f"CREATE DATABASE {db}")
            cur.execute(f"CREATE TABLE {db}.t (id INT PRIMARY KEY, v VARCHAR(20))")
        init_region(config, region)
    path = write_config(config, tmp_path / "cdcsync.toml")
    try:
        with pipeline(config, path, tmp_path):
            with connect(config, "eu", db) as conn, conn.cursor() as cur:
                cur.execute("INSERT INTO t VALUES (1, 'one'), (2, 'two'), (3, 'three')")
            wait_until(lambda: all(len(rows(config, db, r)) == 3 for r in REGIONS), timeout=60, what="replicated")
            wait_quiescent(config, timeout=60)
            # Outside the pipeline: nothing of these reaches the binlog, no clock ticks.
            with connect(config, "us", db) as conn, conn.cursor() as cur:
                cur.execute("SET SESSION sql_log_bin = 0")
                cur.execute("SET @cdcsync_applying = 1")
                cur.execute("UPDATE t SET v = 'by hand' WHERE id = 1")
            with connect(config, "ap", db) as conn, conn.cursor() as cur:
                cur.execute("SET SESSION sql_log_bin = 0")
                cur.execute("DELETE FROM t WHERE id = 2")
            before = verify(config, table=f"{db}.t", check_cache=False)
            assert not before.ok and len(before.row_details) == 2, before.to_json()

            dry = cdcsync(path, "--table", f"{db}.t", "--no-cache", "--repair", "--dry-run", "--prefer", "eu")
            assert dry.returncode == 1, dry.stdout + dry.stderr
            assert "2 rows to repair (dry run, nothing written)" in dry.stdout, dry.stdout
            assert rows(config, db, "us")[0] == (1, "by hand") and all(repairs(config, db, r) == [] for r in REGIONS)

            done = cdcsync(path, "--table", f"{db}.t", "--no-cache", "--repair", "--prefer", "eu", "--json")
            assert done.returncode == 0, done.stdout + done.stderr
            written = json.loads(done.stdout.strip().splitlines()[-1])["repairs"]
            assert sorted((r["key"]["id"], r["winner"], r["written_in"]) for r in written) == [(1, "eu", "us"),
                                                                                                (2, "eu", "ap")]
            wait_until(lambda: all(rows(config, db, r) == [(1, "one"), (2, "two"), (3, "three")] for r in REGIONS),
                       timeout=60, what="the repairs replicated")
            wait_quiescent(config, timeout=60)
            time.sleep(0.5)
            after = verify(config, table=f"{db}.t", check_cache=True)
            assert after.ok, after.to_json()
            for region in REGIONS:
                logged = repairs(config, db, region)
                won = {1: "remote" if region == "us" else "local", 2: "remote" if region == "ap" else "local"}
                assert [(r[0], r[1], json.loads(r[2])) for r in logged] == [
                    (region, won[1], {"id": 1}), (region, won[2], {"id": 2})], (region, logged)
            assert cdcsync(path, "--table", f"{db}.t").returncode == 0
    finally:
        for region in REGIONS:
            with connect(config, region) as conn, conn.cursor() as cur:
                cur.execute(f"DROP DATABASE {db}")
