"""The clock triggers' time is the server's real clock in UTC, and a version stamped too far in the
future stops the database sink instead of winning every tie."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from cdcsync.tools.clock_init import init_region
from common.metadata_tables import ROW_CLOCKS
from tests.conftest import config_for_test, connect, create_database
from tests.support.producer import ProducerProcess, SinkProcess, wait_until, write_config

pytestmark = pytest.mark.integration


def hlc_of(config, conn, db: str, key: str) -> int:
    with conn.cursor() as cur:
        cur.execute(f"SELECT hlc_us FROM {config.meta_db}.{ROW_CLOCKS} WHERE db = %s AND tbl = 't' AND pk = %s",
                    (db, key))
        return int(cur.fetchone()[0])


def test_trigger_time_ignores_session_time_zone_and_set_timestamp(sandbox_config, unique: str,
                                                                  tmp_path: Path) -> None:
    db = f"ct_{unique}"
    config = config_for_test(sandbox_config, prefix=f"t{unique}", include=[f"{db}.*"], tmp=tmp_path,
                             regions=["eu"])
    create_database(config, ["eu"], db, "CREATE TABLE {db}.t (id INT PRIMARY KEY, v INT)")
    init_region(config, "eu")
    try:
        with connect(config, "eu", db) as conn, conn.cursor() as cur:
            # A writer in another zone, its statement time pinned an hour back (as a replayed statement
            # or a test harness does): neither may move the row's time.
            cur.execute("SET time_zone = '+05:00', timestamp = UNIX_TIMESTAMP() - 3600")
            cur.execute("INSERT INTO t VALUES (1, 1), (2, 2)")
            cur.execute("UPDATE t SET v = 10 WHERE id = 1")
            cur.execute("DELETE FROM t WHERE id = 2")
            now_us = time.time_ns() // 1000
            for key in ("1:1", "1:2"):
                assert abs(hlc_of(config, conn, db, key) - now_us) < 30_000_000, key
            cur.execute("SELECT @@session.time_zone")
            assert cur.fetchone() == ("+05:00",)        # the writer's zone is restored
    finally:
        with connect(config, "eu") as conn, conn.cursor() as cur:
            cur.execute(f"DROP DATABASE {db}")
            cur.execute(f"DELETE FROM {config.meta_db}.{ROW_CLOCKS} WHERE db = %s", (db,))


def test_a_version_from_the_future_stops_the_db_sink(sandbox_config, unique: str, tmp_path: Path) -> None:
    db = f"cs_{unique}"
    regions = ["eu", "us"]
    config = config_for_test(sandbox_config, prefix=f"t{unique}", include=[f"{db}.*"], tmp=tmp_path,
                             regions=regions, sink={"batch_max_ms": 50, "max_clock_skew_ms": 60000},
                             snapshot="never")
    create_database(config, regions, db, "CREATE TABLE {db}.t (id INT PRIMARY KEY, v VARCHAR(20))")
    for region in regions:
        init_region(config, region)
    path = write_config(config, tmp_path / "cdcsync.toml")
    try:
        with ProducerProcess(path, "eu", tmp_path / "producer.log"), \
                SinkProcess(path, "us", "db", tmp_path / "sink.log") as sink:
            wait_until((tmp_path / "checkpoints" / "eu" / "eu.json").exists, timeout=90, what="checkpoint")
            with connect(config, "eu", db) as conn, conn.cursor() as cur:
                # eu's server clock an hour ahead: the row and the clock its trigger would write.
                future = time.time_ns() // 1000 + 3600 * 1_000_000
                cur.execute("SET @cdcsync_applying = 1")
                conn.begin()
                cur.execute("INSERT INTO t VALUES (1, 'from-the-future')")
                cur.execute(f"INSERT INTO {config.meta_db}.{ROW_CLOCKS} (db, tbl, pk_hash, pk, counters, hlc_us, "
                            f"deleted, origin) VALUES (%s, 't', UNHEX(SHA2('1:1', 256)), '1:1', '{{\"eu\": 1}}', "
                            f"%s, 0, 'eu')", (db, future))
                conn.commit()
            wait_until(lambda: not sink.alive(), timeout=60, what="the db sink to stop")
            assert sink.wait() != 0
            assert "ahead of this host's clock" in sink.output() and "max_clock_skew_ms" in sink.output()
        with connect(config, "us", db) as conn, conn.cursor() as cur:
            cur.execute("SELECT COUNT(*) FROM t")
            assert cur.fetchone() == (0,)                 # not applied, and not skipped: offset uncommitted
    finally:
        for region in regions:
            with connect(config, region) as conn, conn.cursor() as cur:
                cur.execute(f"DROP DATABASE {db}")
                cur.execute(f"DELETE FROM {config.meta_db}.{ROW_CLOCKS} WHERE db = %s", (db,))
