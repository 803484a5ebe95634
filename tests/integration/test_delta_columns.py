"""Delta columns end to end (docs/conflicts.md, "Delta columns"): N concurrent decrements of one row's
stock across 3 regions, while every region's pipeline runs and one database sink is killed (-9) and
restarted, end at exactly the sum in every database and cache. Real MariaDB, Tansu and Redis."""

from __future__ import annotations

import threading
import time
from decimal import Decimal

import pytest

from cdcsync.tools.clock_init import init_region
from cdcsync.tools.verify import verify
from tests.conftest import config_for_test, connect
from tests.support.producer import SinkProcess, pipeline, wait_until, write_config
from tests.support.quiescence import wait_quiescent

pytestmark = pytest.mark.integration

REGIONS = ("eu", "us", "ap")
START, WRITES_PER_REGION = 1000, 40


def rows(config, db: str, region: str) -> list[tuple]:
    with connect(config, region, db) as conn, conn.cursor() as cur:
        cur.execute("SELECT id, on_hand, reserved, label FROM inv ORDER BY id")
        return list(cur.fetchall())


def test_concurrent_decrements_in_three_regions_end_at_the_sum(sandbox_config, unique, tmp_path) -> None:
    db, prefix = f"dl_{unique}", f"dl{unique}"
    config = config_for_test(sandbox_config, prefix=prefix, include=[f"{db}.*"], tmp=tmp_path, snapshot="never",
                             checkpoint_interval_ms=100,
                             top={"tables": {f"{db}.inv": {"delta_columns": ["on_hand", "reserved"]}}})
    for region in REGIONS:
        with connect(config, region) as conn, conn.cursor() as cur:
            cur.execute(f"CREATE DATABASE {db}")
            cur.execute(f"CREATE TABLE {db}.inv (id INT PRIMARY KEY, on_hand INT NOT NULL, "
                        f"reserved DECIMAL(10,2) NOT NULL, label VARCHAR(20))")
        init_region(config, region)
    path = write_config(config, tmp_path / "cdcsync.toml")
    try:
        with pipeline(config, path, tmp_path) as procs:
            with connect(config, "eu", db) as conn, conn.cursor() as cur:
                cur.execute("INSERT INTO inv VALUES (1, %s, 0.00, 'new'), (2, 5, 0.00, 'other')", (START,))
            wait_until(lambda: all(len(rows(config, db, r)) == 2 for r in REGIONS), timeout=60, what="insert replicated")
            taken: dict[str, int] = {}
            reserved: dict[str, Decimal] = {}

            def decrement(region: str) -> None:
                total, held = 0, Decimal(0)
                with connect(config, region, db) as conn, conn.cursor() as cur:
                    for i in range(WRITES_PER_REGION):
                        amount = 1 + (i % 3)
                        cur.execute("UPDATE inv SET on_hand = on_hand - %s, reserved = reserved + 0.25, label = %s "
                                    "WHERE id = 1", (amount, f"{region}-{i}"))
                        total, held = total + amount, held + Decimal("0.25")
                        time.sleep(0.01)
                taken[region], reserved[region] = total, held

            threads = [threading.Thread(target=decrement, args=(r,)) for r in REGIONS]
            for thread in threads:
                thread.start()
            time.sleep(0.3)
            # A database sink killed mid-run: its uncommitted batch is read again after the restart.
            us_db = next(p for p in procs if p.argv[-4:] == ["--region", "us", "--sink", "db"])
            us_db.kill9()
            procs.remove(us_db)
            procs.append(SinkProcess(path, "us", "db", tmp_path / "db-us-2.log").start())
            for thread in threads:
                thread.join()
            wait_quiescent(config, timeout=120)
            time.sleep(1.0)
            wait_quiescent(config, timeout=60)
            expected_stock = START - sum(taken.values())
            expected_reserved = sum(reserved.values())
            tables = {r: rows(config, db, r) for r in REGIONS}
            logs = "\n".join(p.output()[-1500:] for p in procs if "db" in p.argv)
            assert all(t == tables["eu"] for t in tables.values()), f"regions differ: {tables}\n{logs}"
            row = tables["eu"][0]
            assert (row[1], row[2]) == (expected_stock, expected_reserved), (tables, taken)
            assert tables["eu"][1] == (2, 5, Decimal("0.00"), "other")
            report = verify(config, table=f"{db}.inv")
            assert report.ok, report
    finally:
        for region in REGIONS:
            with connect(config, region) as conn, conn.cursor() as cur:
                cur.execute(f"DROP DATABASE {db}")
