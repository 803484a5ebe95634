"""column-lww end to end (docs/conflicts.md, "column-lww"): concurrent updates of different columns of
one row in eu and us both survive in all 3 regions; the same column resolves by last writer on that
column; a delete beats a later concurrent update. The writes are made before any sink runs, so they
are concurrent for sure. Real MariaDB, Tansu and Redis."""

from __future__ import annotations

import orjson
import pytest

from cdcsync.tools.clock_init import init_region, stale_triggers
from cdcsync.tools.verify import verify
from consumers.db import conflict_log
from consumers.db.trigger_refresh import refresh_clock_triggers
from tests.conftest import config_for_test, connect
from tests.support.producer import SinkProcess, pipeline, write_config
from tests.support.quiescence import wait_quiescent

pytestmark = pytest.mark.integration

REGIONS = ("eu", "us", "ap")


def rows(config, db: str, region: str) -> list[tuple]:
    with connect(config, region, db) as conn, conn.cursor() as cur:
        cur.execute("SELECT id, title, body, n FROM doc ORDER BY id")
        return list(cur.fetchall())


def col_stamps(config, db: str, region: str) -> dict[int, dict]:
    with connect(config, region) as conn, conn.cursor() as cur:
        cur.execute(f"SELECT pk, col_stamps FROM {config.meta_db}.row_clocks WHERE db = %s", (db,))
        return {int(pk.split(":")[1]): orjson.loads(text) for pk, text in cur.fetchall()}


def write(config, db: str, region: str, sql: str) -> None:
    with connect(config, region, db) as conn, conn.cursor() as cur:
        cur.execute(sql)
        conn.commit()


def test_concurrent_updates_of_different_columns_both_survive(sandbox_config, unique, tmp_path) -> None:
    db, prefix = f"cl_{unique}", f"cl{unique}"
    config = config_for_test(sandbox_config, prefix=prefix, include=[f"{db}.*"], tmp=tmp_path, snapshot="never",
                             checkpoint_interval_ms=100,
                             top={"tables": {f"{db}.doc": {"conflict_strategy": "column-lww"}}})
    for region in REGIONS:   # rows older than cdcsync (no clocks yet), the same in every region
        with connect(config, region) as conn, conn.cursor() as cur:
            cur.execute(f"CREATE DATABASE {db}")
            cur.execute(f"CREATE TABLE {db}.doc (id INT PRIMARY KEY, title VARCHAR(20), body VARCHAR(20), n INT)")
            cur.execute(f"INSERT INTO {db}.doc VALUES (1, 't0', 'b0', 0), (2, 't0', 'b0', 0), (3, 't0', 'b0', 0)")
            conn.commit()
        init_region(config, region)
    path = write_config(config, tmp_path / "cdcsync.toml")
    try:
        with pipeline(config, path, tmp_path, sinks=()) as procs:
            # eu and us write without seeing each other: no sink runs yet.
            write(config, db, "eu", "UPDATE doc SET title = 'eu-title' WHERE id = 1")
            write(config, db, "eu", "UPDATE doc SET n = 1 WHERE id = 2")
            write(config, db, "eu", "DELETE FROM doc WHERE id = 3")
            write(config, db, "us", "UPDATE doc SET body = 'us-body' WHERE id = 1")
            write(config, db, "us", "UPDATE doc SET n = 2 WHERE id = 2")       # later: us wins column n
            write(config, db, "us", "UPDATE doc SET title = 'us-late' WHERE id = 3")   # after the delete
            # ap too (so its topic exists before the sinks subscribe): a third column of row 2.
            write(config, db, "ap", "UPDATE doc SET body = 'ap-body' WHERE id = 2")
            procs.extend(SinkProcess(path, region, sink, tmp_path / f"{sink}-{region}.log").start()
                         for region in REGIONS for sink in ("db", "cache"))
            wait_quiescent(config, timeout=120)
            tables = {r: rows(config, db, r) for r in REGIONS}
            logs = "\n".join(p.output()[-1500:] for p in procs if "db" in p.argv)
            assert all(t == tables["eu"] for t in tables.values()), f"regions differ: {tables}\n{logs}"
            assert tables["eu"] == [(1, "eu-title", "us-body", 0), (2, "t0", "ap-body", 2)], tables
            report = verify(config, table=f"{db}.doc")
            assert report.ok, report
            for region in ("eu", "us"):
                with connect(config, region) as conn:
                    records = conflict_log.query(conn, config.meta_db, table=f"{db}.doc")
                other = "us" if region == "eu" else "eu"
                by_key = {r.pk["id"]: r for r in records if r.remote.origin == other}
                assert by_key[1].strategy == "column-lww" and by_key[1].winner == "merged"
                assert by_key[1].columns == {"body" if region == "eu" else "title": "remote"}, by_key[1]
                assert by_key[2].columns == {"n": "remote" if region == "eu" else "local"}, by_key[2]
            for region in REGIONS:   # eu's and us's own stamps come from their triggers, the rest from sinks
                stamps = col_stamps(config, db, region)
                assert stamps[1]["c"]["title"][1] == "eu" and stamps[1]["c"]["body"][1] == "us", stamps
                assert stamps[1]["i"] == [-1, ""], stamps   # older than its stamps: inserted at the lowest
                # The tombstone: eu's delete, and us's later update of title kept as a ghost value.
                assert stamps[3]["d"][1] == "eu" and stamps[3]["g"] == {"title": "us-late"}, stamps
        # After an ALTER, the sink's trigger refresh keeps the per-column stamps (as `init` installs them).
        write(config, db, "eu", "ALTER TABLE doc ADD COLUMN tag VARCHAR(10)")
        state = refresh_clock_triggers(config.region("eu").mysql, meta_db=config.meta_db, region="eu", db=db,
                                       table="doc", column_stamps=True)
        with connect(config, "eu") as conn:
            assert state == "replaced" and stale_triggers(config, "eu", conn) == ([], []), state
        write(config, db, "eu", "UPDATE doc SET tag = 'x' WHERE id = 1")
        assert col_stamps(config, db, "eu")[1]["c"]["tag"][1] == "eu"
    finally:
        for region in REGIONS:
            with connect(config, region) as conn, conn.cursor() as cur:
                cur.execute(f"DROP DATABASE {db}")
