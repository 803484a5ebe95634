"""AUTO_INCREMENT in several writing regions (issue 10, case 6).

The sandbox gives each region its own `auto_increment_offset` (increment = number of regions), so
rows inserted at once in three regions get distinct ids and all of them reach every region. A setup
whose ids can collide is refused by the producer's preflight and `cdcsync config check` (or only
warned about, with `auto_increment_collisions = "warn"`).
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from cdcsync.tools.clock_init import init_region
from common.metadata_tables import CONFLICT_LOG, ROW_CLOCKS
from tests.conftest import REGIONS, config_for_test, connect
from tests.support.producer import ProducerProcess, pipeline, write_config
from tests.support.quiescence import wait_quiescent
from tests.support.verify import assert_verified

pytestmark = pytest.mark.integration

ROWS_PER_REGION = 30


def insert_rows(config, region: str, db: str, ids: dict[str, list[int]], errors: list) -> None:
    try:
        with connect(config, region, db) as conn, conn.cursor() as cur:
            for n in range(ROWS_PER_REGION):
                cur.execute("INSERT INTO orders (region, n) VALUES (%s, %s)", (region, n))
                ids[region].append(cur.lastrowid)
    except BaseException as err:  # noqa: BLE001 - reported by the test thread
        errors.append(err)


def test_sandbox_regions_generate_their_own_ids_and_concurrent_inserts_all_survive(sandbox_config, unique,
                                                                                    tmp_path) -> None:
    settings = {}
    for region in REGIONS:
        with connect(sandbox_config, region) as conn, conn.cursor() as cur:
            cur.execute("SELECT @@GLOBAL.auto_increment_increment, @@GLOBAL.auto_increment_offset")
            settings[region] = cur.fetchone()
    assert settings == {"eu": (3, 1), "us": (3, 2), "ap": (3, 3)}

    db = f"ai_{unique}"
    config = config_for_test(sandbox_config, prefix=f"t{unique}", include=[f"{db}.*"], tmp=tmp_path,
                             sink={"batch_max_ms": 50})
    path = write_config(config, tmp_path / "cdcsync.toml")
    for region in REGIONS:
        with connect(config, region) as conn, conn.cursor() as cur:
            cur.execute(f"CREATE DATABASE {db}")
            cur.execute(f"CREATE TABLE {db}.orders (id BIGINT AUTO_INCREMENT PRIMARY KEY, region VARCHAR(4), n INT)")
        init_region(config, region)
    try:
        with pipeline(config, path, tmp_path):
            ids: dict[str, list[int]] = {region: [] for region in REGIONS}
            errors: list[BaseException] = []
            threads = [threading.Thread(target=insert_rows, args=(config, region, db, ids, errors))
                       for region in REGIONS]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join(120)
            assert not errors, errors
            wait_quiescent(config)
            assert_verified(config, timeout=30)
        expected = {(ids[region][n], region, n) for region in REGIONS for n in range(ROWS_PER_REGION)}
        assert len({row[0] for row in expected}) == 3 * ROWS_PER_REGION           # no id generated twice
        for region in REGIONS:
            with connect(config, region, db) as conn, conn.cursor() as cur:
                cur.execute("SELECT id, region, n FROM orders")
                assert set(cur.fetchall()) == expected, region                   # every committed row, everywhere
                cur.execute(f"SELECT COUNT(*) FROM {config.meta_db}.{CONFLICT_LOG} WHERE db = %s", (db,))
                assert cur.fetchone() == (0,), region                            # and nobody lost a conflict
    finally:
        for region in REGIONS:
            with connect(config, region) as conn, conn.cursor() as cur:
                cur.execute(f"DROP DATABASE {db}")
                cur.execute(f"DELETE FROM {config.meta_db}.{ROW_CLOCKS} WHERE db = %s", (db,))
                cur.execute(f"DELETE FROM {config.meta_db}.{CONFLICT_LOG} WHERE db = %s", (db,))


def config_check(path: Path) -> tuple[int, dict[tuple[str, str], dict]]:
    done = subprocess.run([sys.executable, "-m", "cdcsync", "config", "check", "--config", str(path), "--json",
                           "--timeout", "3"], capture_output=True, text=True, timeout=120)
    results = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    return done.returncode, {(r["region"], r["check"]): r for r in results}


def test_colliding_offsets_are_refused_by_config_check_and_the_producer(sandbox_config, unique, tmp_path) -> None:
    db = f"aic_{unique}"
    config = config_for_test(sandbox_config, prefix=f"t{unique}", include=[f"{db}.*"], tmp=tmp_path)
    path = write_config(config, tmp_path / "cdcsync.toml")
    warn = write_config(config_for_test(sandbox_config, prefix=f"t{unique}", include=[f"{db}.*"], tmp=tmp_path,
                                        top={"auto_increment_collisions": "warn"}), tmp_path / "warn.toml")
    with connect(config, "us") as conn, conn.cursor() as cur:
        cur.execute(f"CREATE DATABASE {db}")
        cur.execute(f"CREATE TABLE {db}.orders (id BIGINT AUTO_INCREMENT PRIMARY KEY, v INT)")
        cur.execute("SELECT @@GLOBAL.auto_increment_offset")
        (offset,) = cur.fetchone()
        cur.execute("SET GLOBAL auto_increment_offset = 1")      # the same as eu's
    try:
        code, results = config_check(path)
        check = results[("us", "auto_increment")]
        assert code == 1 and check["outcome"] == "fail", results
        assert "regions eu, us share auto_increment_offset = 1" in check["detail"]
        assert f"{db}.orders" in check["detail"] and "auto_increment_offset = 1, 2, 3" in check["detail"]
        assert results[("eu", "auto_increment")]["outcome"] == "ok"            # eu replicates no such table

        producer = ProducerProcess(path, "us", tmp_path / "producer.log").start()
        assert producer.wait(60) == 1
        out = " ".join(producer.output().split())          # the console wraps long lines
        assert "share auto_increment_offset = 1" in out and "Traceback" not in out

        code, results = config_check(warn)
        assert results[("us", "auto_increment")]["outcome"] == "warn", results
    finally:
        with connect(config, "us") as conn, conn.cursor() as cur:
            cur.execute(f"SET GLOBAL auto_increment_offset = {int(offset)}")
            cur.execute(f"DROP DATABASE {db}")
