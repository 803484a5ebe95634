"""Writes that change nothing (issue 10, case 1), on real servers with real producers and sinks.

MariaDB logs no row event for a matched row whose bytes stay the same. A clock trigger that ticked
there anyway made a region's clock move without anything being published: that region then saw
conflicts nobody else saw, kept its own value, and the regions diverged for good. Here: the
trigger ticks exactly when the server logs a row event; every no-op shape an application sends
(idempotent retries, `SET v = v`, `ON DUPLICATE KEY UPDATE id = id`, ORM saves, multi-row updates
where some rows already hold the value, a no-op then a real update in one transaction), followed
or accompanied by writes in other regions, ends with byte-identical regions and no conflict only
one region saw; stale triggers are reported; and `conflicts resolve` repairs a divergence from the
region that already holds the chosen value.
"""

from __future__ import annotations

import json
import random
import subprocess
import sys
import threading
from pathlib import Path

import pymysql
import pytest

from cdcsync.tools.clock_init import init_region
from common.metadata_tables import CONFLICT_LOG, ROW_CLOCKS
from consumers.db import conflict_log
from schemas.conflict_record import ConflictRecord, VersionImage
from schemas.row_version import value_hash
from schemas.vclock import VectorClock
from tests.conftest import REGIONS, config_for_test, connect
from tests.integration.test_convergence import Ack, RETRYABLE, final_state, losers, unaccounted
from tests.support.producer import pipeline, write_config
from tests.support.quiescence import wait_quiescent
from tests.support.verify import assert_verified

pytestmark = pytest.mark.integration

TABLE_DDL = "(id INT PRIMARY KEY, v VARCHAR(40), w INT, f FLOAT, d DOUBLE, c CHAR(8), ts TIMESTAMP(6) NULL)"


def _binlog_tables(cur: pymysql.cursors.Cursor, statements: list[str]) -> set[str]:
    """The tables whose rows the binlog holds for `statements` (run in one autocommit each)."""
    cur.execute("SHOW MASTER STATUS")
    file, pos = cur.fetchone()[:2]
    for statement in statements:
        cur.execute(statement)
    cur.execute(f"SHOW BINLOG EVENTS IN '{file}' FROM {pos}")
    return {info.split("(", 1)[1].rstrip(")") for _, _, kind, _, _, info in cur.fetchall() if kind == "Table_map"}


def test_update_trigger_ticks_exactly_when_the_server_logs_a_row_event(sandbox_config, unique, tmp_path) -> None:
    db = f"noop_{unique}"
    config = config_for_test(sandbox_config, prefix=f"t{unique}", include=[f"{db}.*"], tmp=tmp_path,
                             regions=["eu"])
    clocks = f"{config.meta_db}.{ROW_CLOCKS}"
    with connect(config, "eu") as conn, conn.cursor() as cur:
        cur.execute(f"CREATE DATABASE {db}")
        cur.execute(f"CREATE TABLE {db}.t {TABLE_DDL}")   # default collation: case-insensitive, PAD SPACE
    init_region(config, "eu")
    t = f"{db}.t"
    no_ops = [f"INSERT INTO {t} (id, v) VALUES (1, 'a') ON DUPLICATE KEY UPDATE v = VALUES(v)",
              f"INSERT INTO {t} (id, v) VALUES (1, 'zz') ON DUPLICATE KEY UPDATE id = id",
              f"UPDATE {t} SET v = v, w = w, f = f, d = d, c = c, ts = ts",
              f"UPDATE {t} SET d = -d",                 # 0.0 -> -0.0: the server stores 0 either way
              f"UPDATE {t} SET c = 'ab  '",             # CHAR pads: the same bytes as 'ab'
              f"UPDATE {t} SET f = 1.0000001", f"UPDATE {t} SET w = NULL"]
    changes = [f"UPDATE {t} SET v = 'A'",                # case only: a change under _ci
               f"UPDATE {t} SET v = 'A '",               # trailing space only: a change in a VARCHAR
               f"UPDATE {t} SET f = 1.0000002",          # FLOATs whose text is the same ('1')
               f"UPDATE {t} SET c = 'AB'", f"UPDATE {t} SET w = 0",
               f"UPDATE {t} SET ts = '2020-01-01 00:00:00.000001'", f"UPDATE {t} SET id = 2"]
    try:
        with connect(config, "eu") as conn, conn.cursor() as cur:
            assert _binlog_tables(cur, [f"INSERT INTO {t} (id, v, w, f, d, c) VALUES (1, 'a', NULL, 1.0000001, 0, "
                                        f"'ab')"]) == {t, clocks}
            for statement in no_ops:
                assert _binlog_tables(cur, [statement]) == set(), statement    # neither a row nor a clock
            for statement in changes:
                assert _binlog_tables(cur, [statement]) == {t, clocks}, statement
            cur.execute(f"SELECT pk, counters FROM {clocks} WHERE db = %s AND tbl = 't' ORDER BY pk", (db,))
            # Key 1: the insert and each change; its key change tombstones it (+1). Key 2 starts fresh:
            # a key change never carries the old key's counters (docs/clocks.md).
            assert [(pk, json.loads(c)) for pk, c in cur.fetchall()] == [("1:1", {"eu": len(changes) + 1}),
                                                                         ("1:2", {"eu": 1})]
    finally:
        _drop(config, db)


def test_stale_triggers_are_reported_until_init_runs(sandbox_config, unique, tmp_path) -> None:
    db = f"noop_{unique}"
    config = config_for_test(sandbox_config, prefix=f"t{unique}", include=[f"{db}.*"], tmp=tmp_path,
                             regions=["eu"])
    path = write_config(config, tmp_path / "c.toml")
    with connect(config, "eu") as conn, conn.cursor() as cur:
        cur.execute(f"CREATE DATABASE {db}")
        cur.execute(f"CREATE TABLE {db}.t (id INT PRIMARY KEY, v INT)")
    init_region(config, "eu")
    try:
        def run(*command: str) -> subprocess.CompletedProcess:
            return subprocess.run([sys.executable, "-m", "cdcsync", *command, "--config", str(path), "--json",
                                   "--timeout", "3"], capture_output=True, text=True, timeout=120)

        check = run("config", "check")
        assert '"check":"clock triggers","outcome":"ok"' in check.stdout, check.stdout
        assert "stale clock triggers" not in run("status").stdout
        with connect(config, "eu") as conn, conn.cursor() as cur:
            cur.execute(f"ALTER TABLE {db}.t ADD COLUMN extra INT")   # the UPDATE trigger does not compare it
        check, status = run("config", "check"), run("status")
        assert check.returncode == 1 and status.returncode == 1
        for out in (check.stdout, status.stdout):
            assert f"stale clock triggers {db}.cdcsync_t_au" in out, out
            assert "run `cdcsync init --region eu`" in out
        init_region(config, "eu")
        check = run("config", "check")
        assert '"check":"clock triggers","outcome":"ok"' in check.stdout, check.stdout
        assert "stale clock triggers" not in run("status").stdout
    finally:
        _drop(config, db)


def _drop(config, db: str) -> None:
    for region in config.regions:
        with connect(config, region) as conn, conn.cursor() as cur:
            cur.execute(f"DROP DATABASE IF EXISTS {db}")
            cur.execute(f"DELETE FROM {config.meta_db}.{ROW_CLOCKS} WHERE db = %s", (db,))
            cur.execute(f"DELETE FROM {config.meta_db}.{CONFLICT_LOG} WHERE db = %s", (db,))


def _each(config, db: str, sql: str, params=()) -> dict[str, list[tuple]]:
    found = {}
    for region in config.regions:
        with connect(config, region, db) as conn, conn.cursor() as cur:
            cur.execute(sql, params)
            found[region] = sorted(cur.fetchall())
    return found


def _run(config, region: str, db: str, *statements: tuple[str, tuple]) -> None:
    """`statements` in one transaction of `region`."""
    with connect(config, region, db) as conn:
        conn.begin()
        with conn.cursor() as cur:
            for sql, params in statements:
                cur.execute(sql, params)
        conn.commit()


def _same_everywhere(config, db: str, table: str) -> None:
    rows = _each(config, db, f"SELECT * FROM {table}")
    assert rows["eu"] == rows["us"] == rows["ap"], rows
    clocks = _each(config, db, f"SELECT pk, counters, deleted FROM {config.meta_db}.{ROW_CLOCKS} "
                               f"WHERE db = %s AND tbl = %s", (db, table))
    parsed = {r: sorted((pk, json.loads(c), d) for pk, c, d in rows) for r, rows in clocks.items()}
    assert parsed["eu"] == parsed["us"] == parsed["ap"], parsed


def no_op_shapes(config, db: str) -> None:
    """us sends every no-op shape, then eu updates each row. Before the fix us's clocks ticked
    unseen, eu's updates were concurrent there, us (first in region priority) kept its values: the
    regions diverged, and only us logged a conflict."""
    t = "shapes"
    _run(config, "eu", db, (f"INSERT INTO {t} (id, v, w) VALUES (1, 'v0', 0), (2, 'v0', 0), (3, 'v0', 0), "
                            f"(4, 'v0', 0), (5, 'm', 0), (6, 'v0', 0), (7, 'v0', 0)", ()))
    wait_quiescent(config)
    odku = f"INSERT INTO {t} (id, v, w) VALUES (1, 'v0', 0) ON DUPLICATE KEY UPDATE v = VALUES(v), w = VALUES(w)"
    _run(config, "us", db, (odku, ()))
    _run(config, "us", db, (odku, ()))                                                     # the client's retry
    _run(config, "us", db, (f"UPDATE {t} SET v = v WHERE id = 2", ()))
    _run(config, "us", db, (f"INSERT INTO {t} (id, v, w) VALUES (3, 'other', 9) ON DUPLICATE KEY UPDATE id = id", ()))
    _run(config, "us", db, (f"UPDATE {t} SET v = %s, w = %s WHERE id = %s", ("v0", 0, 4)))  # an ORM's save
    _run(config, "us", db, (f"UPDATE {t} SET v = 'm' WHERE id IN (5, 6)", ()))               # 5 holds it already
    _run(config, "us", db, (f"UPDATE {t} SET v = v WHERE id = 7", ()), (f"UPDATE {t} SET v = 'us-7' WHERE id = 7", ()))
    wait_quiescent(config)
    for key in range(1, 8):
        _run(config, "eu", db, (f"UPDATE {t} SET v = %s WHERE id = %s", (f"eu-{key}", key)))
    wait_quiescent(config)
    assert_verified(config, timeout=30)
    _same_everywhere(config, db, t)
    assert _each(config, db, f"SELECT v FROM {t}")["us"] == [(f"eu-{k}",) for k in range(1, 8)]
    logged = _each(config, db, f"SELECT COUNT(*) FROM {config.meta_db}.{CONFLICT_LOG} WHERE db = %s AND tbl = %s",
                   (db, t))
    assert logged == {r: [(0,)] for r in config.regions}   # no write was concurrent: no region saw a conflict


def retrying_clients(config, db: str, seed: int, acks: list[Ack], errors: list) -> None:
    """Per region two clients send the same statements (idempotent retries, no-op saves and real
    writes) on a few keys, in all regions at once."""
    t = "retries"

    def client(region: str, n: int) -> None:
        rng = random.Random(f"{seed}-{region}")          # both clients of a region: the same statements
        conn = connect(config, region, db)
        conn.autocommit(False)
        try:
            for i in range(40):
                key, token = rng.randrange(6), f"{region}-{i}"
                shape = rng.choice(["odku", "odku", "same", "idid", "update"])
                with conn.cursor() as cur:
                    try:
                        if shape == "odku":
                            cur.execute(f"INSERT INTO {t} (id, v) VALUES (%s, %s) ON DUPLICATE KEY UPDATE "
                                        f"v = VALUES(v)", (key, token))
                        elif shape == "same":
                            cur.execute(f"UPDATE {t} SET v = v WHERE id = %s", (key,))
                        elif shape == "idid":
                            cur.execute(f"INSERT INTO {t} (id, v) VALUES (%s, %s) ON DUPLICATE KEY UPDATE id = id",
                                        (key, token))
                        else:
                            cur.execute(f"UPDATE {t} SET v = v WHERE id = %s", (key,))
                            cur.execute(f"UPDATE {t} SET v = %s WHERE id = %s", (token, key))
                        cur.execute(f"SELECT counters, hlc_us FROM {config.meta_db}.{ROW_CLOCKS} WHERE db = %s "
                                    f"AND tbl = %s AND pk = %s", (db, t, f"1:{key}"))
                        found = cur.fetchone()
                        cur.execute(f"SELECT v FROM {t} WHERE id = %s", (key,))
                        value = cur.fetchone()
                        conn.commit()
                    except pymysql.err.OperationalError as err:
                        conn.rollback()
                        if err.args[0] in RETRYABLE:
                            continue
                        raise
                if found is not None and value is not None:
                    acks.append(Ack(region, key, "write", value[0],
                                    VectorClock(counters=json.loads(found[0]), hlc_us=found[1])))
        except BaseException as err:  # noqa: BLE001 - reported by the test thread
            errors.append(err)
        finally:
            conn.close()

    threads = [threading.Thread(target=client, args=(region, n)) for region in config.regions for n in (1, 2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)


def override_from_the_region_that_holds_the_value(config, path: Path, db: str) -> None:
    """A divergence (us differs, written around the pipeline) and a conflict record in eu whose
    chosen value eu already holds: `conflicts resolve --region eu` must still repair us."""
    t = "repair"
    _run(config, "eu", db, (f"INSERT INTO {t} (id, v) VALUES (1, 'keep')", ()))
    wait_quiescent(config)
    with connect(config, "us", db) as conn, conn.cursor() as cur:
        cur.execute("SET SESSION sql_log_bin = 0, @cdcsync_applying = 1")  # a divergence nothing publishes
        cur.execute(f"UPDATE {t} SET v = 'drifted' WHERE id = 1")
    with connect(config, "eu") as conn, conn.cursor() as cur:
        cur.execute(f"SELECT counters, hlc_us FROM {config.meta_db}.{ROW_CLOCKS} WHERE db = %s AND tbl = %s", (db, t))
        counters, hlc = cur.fetchone()
        kept = {"id": 1, "v": "keep"}
        local = VersionImage(values=kept, origin="eu", counters=json.loads(counters), hlc_us=hlc,
                             hash=value_hash(kept))
        remote = VersionImage(values={"id": 1, "v": "drifted"}, origin="us", counters={}, hlc_us=0,
                              hash=value_hash({"id": 1, "v": "drifted"}))
        record_id = conflict_log.insert(cur, config.meta_db, ConflictRecord(
            logged_at_us=1, region="eu", db=db, table=t, pk={"id": 1}, strategy="lww", winner="local",
            local=local, remote=remote, result=local), key="1:1")
    done = subprocess.run([sys.executable, "-m", "cdcsync", "conflicts", "resolve", str(record_id), "--config",
                           str(path), "--region", "eu", "--take", "local"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "us does not, so the override is written there" in done.stdout, done.stdout
    wait_quiescent(config)
    assert_verified(config, timeout=30)
    _same_everywhere(config, db, t)
    assert _each(config, db, f"SELECT v FROM {t}") == {r: [("keep",)] for r in config.regions}
    with connect(config, "eu") as conn, conn.cursor() as cur:
        cur.execute(f"SELECT COUNT(*) FROM {config.meta_db}.{CONFLICT_LOG} WHERE overrides = %s", (record_id,))
        assert cur.fetchone() == (1,)
    again = subprocess.run([sys.executable, "-m", "cdcsync", "conflicts", "resolve", str(record_id), "--config",
                            str(path), "--region", "eu", "--take", "local"], capture_output=True, text=True, timeout=60)
    assert again.returncode == 0 and "identical everywhere" in again.stdout, again.stdout + again.stderr


def test_no_op_writes_converge_and_conflict_logs_agree(sandbox_config, unique: str, tmp_path: Path) -> None:
    db = f"noop_{unique}"
    tables = {f"{db}.shapes": {"conflict_strategy": "region-priority", "region_priority": ["us", "ap", "eu"]},
              f"{db}.retries": {"conflict_strategy": "region-priority", "region_priority": ["us", "ap", "eu"]},
              f"{db}.repair": {"conflict_strategy": "lww"}}
    config = config_for_test(sandbox_config, prefix=f"t{unique}", include=[f"{db}.*"], tmp=tmp_path,
                             top={"tables": tables}, sink={"batch_max_ms": 50})
    path = write_config(config, tmp_path / "cdcsync.toml")
    for region in REGIONS:
        with connect(config, region) as conn, conn.cursor() as cur:
            cur.execute(f"CREATE DATABASE {db}")
            for table in ("shapes", "retries", "repair"):
                cur.execute(f"CREATE TABLE {db}.{table} {TABLE_DDL}")
        init_region(config, region)
    try:
        with pipeline(config, path, tmp_path) as procs:
            no_op_shapes(config, db)
            acks: list[Ack] = []
            errors: list[BaseException] = []
            retrying_clients(config, db, 7, acks, errors)
            assert not errors, errors
            wait_quiescent(config)
            assert_verified(config, timeout=30)
            _same_everywhere(config, db, "retries")
            assert not unaccounted(acks, final_state(config, db, "retries"), losers(config, db, "retries"))
            override_from_the_region_that_holds_the_value(config, path, db)
            assert all(p.alive() for p in procs), "a producer or sink stopped"
    finally:
        _drop(config, db)


def test_a_transaction_whose_clocks_do_not_pair_stops_the_producer(sandbox_config, unique, tmp_path) -> None:
    """Stale triggers (a column added after init, so the UPDATE trigger does not see it change): a
    transaction with one row change the trigger missed and one it clocked stops the producer, naming
    db, table, key, GTID and the fix; `--accept-unpaired GTID` lets that one transaction through."""
    from cdcsync.tools.status import region_status
    from tests.support.producer import ProducerProcess, wait_until

    db = f"noop_{unique}"
    config = config_for_test(sandbox_config, prefix=f"t{unique}", include=[f"{db}.*"], tmp=tmp_path,
                             regions=["eu"])
    path = write_config(config, tmp_path / "c.toml")
    with connect(config, "eu") as conn, conn.cursor() as cur:
        cur.execute(f"CREATE DATABASE {db}")
        cur.execute(f"CREATE TABLE {db}.t (id INT PRIMARY KEY, v INT)")
        cur.execute(f"INSERT INTO {db}.t VALUES (1, 0), (2, 0)")
    init_region(config, "eu")
    checkpoint = tmp_path / "checkpoints" / "eu" / "eu.json"
    try:
        with ProducerProcess(path, "eu", tmp_path / "producer.log") as producer:
            wait_until(checkpoint.exists, timeout=90, what="eu checkpoint")
            with connect(config, "eu") as conn, conn.cursor() as cur:
                cur.execute(f"ALTER TABLE {db}.t ADD COLUMN extra INT")
            _run(config, "eu", db, ("UPDATE t SET extra = 1 WHERE id = 1", ()), ("UPDATE t SET v = 1 WHERE id = 2", ()))
            assert producer.wait(60) != 0
            out = " ".join(producer.output().split())   # the error line is wrapped to the terminal
        assert f"{db}.t key '1:1': a row change (update) with no clock row" in out, out
        assert "run `cdcsync init`" in out and "--accept-unpaired" in out
        gtid = out.split("transaction ", 1)[1].split(" ", 1)[0]
        with ProducerProcess(path, "eu", tmp_path / "producer2.log", "--accept-unpaired", gtid) as producer:
            wait_until(lambda: region_status(config, "eu", timeout_s=3).behind_transactions == 0, timeout=60,
                       what="the producer past the accepted transaction")
            assert producer.alive(), producer.output()
            assert f"transaction {gtid}" in producer.output() and "accepted by --accept-unpaired" in producer.output()
            with connect(config, "eu") as conn, conn.cursor() as cur:   # a clock tick alone, by hand
                cur.execute(f"UPDATE {config.meta_db}.{ROW_CLOCKS} SET counters = JSON_SET(counters, '$.eu', 9), "
                            f"hlc_us = hlc_us + 1 WHERE db = %s AND tbl = 't' AND pk = '1:2'", (db,))
            assert producer.wait(60) != 0
            out = " ".join(producer.output().split())
        assert f"{db}.t key '1:2': a clock row with no row change" in out, out
        assert "stale clock triggers that tick on a write that changes nothing" in out
    finally:
        _drop(config, db)
