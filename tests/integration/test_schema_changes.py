"""Schema changes in a multi-active mesh (docs/schema-changes.md): drift is detected by
`cdcsync schema diff`, `config check` and `status`; a database sink whose target lacks a column
waits for it (that table's partitions held, nothing dead-lettered, the other tables flowing) and
resumes by itself once the target has it."""

from __future__ import annotations

import subprocess
import time
import sys
import threading
import urllib.request
from pathlib import Path

import orjson
import pytest

from cdcsync.tools.clock_init import init_region, trigger_states
from cdcsync.tools.dlq_reader import read_dead_letters
from cdcsync.tools.schema_drift import mesh_drift
from cdcsync.tools.status import region_status
from deploy.local.processes import free_port
from common import metadata_tables
from common.kafka import TopicCreator, client_settings
from consumers.db.sink import DatabaseSink
from consumers.dlq import DeadLetterPublisher
from consumers.metrics import SinkMetrics
from consumers.records import SourceRecord
from prometheus_client import CollectorRegistry
from schemas import messages
from schemas.codec import encode
from schemas.topics import TopicNames
from tests.conftest import config_for_test, connect, create_database
from tests.support.kafka import CreatingTopicIds
from tests.support.verify import assert_verified
from tests.support.producer import ProducerProcess, SinkProcess, pipeline, wait_until, write_config
from tests.support.quiescence import wait_quiescent

pytestmark = pytest.mark.integration


def cdcsync(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "cdcsync", *args], capture_output=True, text=True, timeout=120)


def test_schema_diff_names_each_difference_and_exits_1(sandbox_config, unique: str, tmp_path: Path) -> None:
    db = f"drift_{unique}"
    config = config_for_test(sandbox_config, prefix=f"t{unique}", include=[f"{db}.*"], tmp=tmp_path,
                             regions=["eu", "us"])
    path = write_config(config, tmp_path / "cdcsync.toml")
    create_database(config, ["eu", "us"], db, "CREATE TABLE {db}.users (id INT PRIMARY KEY, name VARCHAR(20))")
    try:
        for region in config.regions:
            init_region(config, region)
        same = cdcsync("schema", "diff", "--config", str(path))
        assert same.returncode == 0 and "no schema drift" in same.stdout, same.stdout + same.stderr
        with connect(config, "eu", db) as conn, conn.cursor() as cur:
            cur.execute("ALTER TABLE users ADD COLUMN phone VARCHAR(20) NULL, ADD UNIQUE KEY by_name (name)")
        found = cdcsync("schema", "diff", "--config", str(path), "--json")
        assert found.returncode == 1, found.stdout + found.stderr
        drift = {(d["aspect"], d["name"]): d["values"] for d in orjson.loads(found.stdout)["drift"]}
        assert drift[("column", "phone")]["us"] == "(absent)"
        assert drift[("column", "phone")]["eu"].startswith("varchar(20) NULL")
        assert drift[("key", "by_name")] == {"eu": "(name)", "us": "(absent)"}
        assert drift[("clock triggers", "")] == {"eu": "stale", "us": "current"}
        table = cdcsync("schema", "diff", "--config", str(path))
        assert table.returncode == 1 and "phone" in table.stdout and "by_name" in table.stdout
        checked = cdcsync("config", "check", "--config", str(path), "--json", "--timeout", "3")
        [result] = [r for r in map(orjson.loads, checked.stdout.splitlines()) if r["check"] == "schema drift"]
        assert result["outcome"] == "fail" and f"{db}.users: column phone differs" in result["detail"]
    finally:
        for region in config.regions:
            with connect(config, region) as conn, conn.cursor() as cur:
                cur.execute(f"DROP DATABASE {db}")


def rows(config, region: str, db: str, table: str) -> dict:
    with connect(config, region, db) as conn, conn.cursor() as cur:
        cur.execute(f"SELECT * FROM {table} ORDER BY 1")
        return {row[0]: row[1:] for row in cur.fetchall()}


def execute(config, region: str, db: str, *statements: str) -> None:
    with connect(config, region, db) as conn, conn.cursor() as cur:
        for statement in statements:
            cur.execute(statement)


def waiting_gauge(port: int, table: str) -> float | None:
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10).read().decode()
    line = f'cdcsync_sink_waiting_for_schema{{region="us",table="{table}"}} '
    found = [ln for ln in text.splitlines() if ln.startswith(line)]
    return float(found[0][len(line):]) if found else None


def test_alter_in_one_region_holds_the_table_in_the_other_until_it_catches_up(sandbox_config, unique: str,
                                                                               tmp_path: Path) -> None:
    db = f"wait_{unique}"
    config = config_for_test(sandbox_config, prefix=f"t{unique}", include=[f"{db}.*"], tmp=tmp_path,
                             regions=["eu", "us"], sink={"schema_recheck_ms": 300})
    path = write_config(config, tmp_path / "cdcsync.toml")
    create_database(config, ["eu", "us"], db, "CREATE TABLE {db}.users (id INT PRIMARY KEY, name VARCHAR(20))",
                    "CREATE TABLE {db}.notes (id INT PRIMARY KEY, body VARCHAR(20))")
    port = free_port()
    procs = []
    try:
        for region in config.regions:
            init_region(config, region)
        for region in config.regions:
            procs.append(ProducerProcess(path, region, tmp_path / f"producer-{region}.log").start())
        procs.append(SinkProcess(path, "eu", "db", tmp_path / "db-eu.log").start())
        procs.append(SinkProcess(path, "us", "db", tmp_path / "db-us.log", "--metrics-port", str(port)).start())
        for region in config.regions:
            procs.append(SinkProcess(path, region, "cache", tmp_path / f"cache-{region}.log").start())
        execute(config, "eu", db, "INSERT INTO users VALUES (1, 'a'), (2, 'b')", "INSERT INTO notes VALUES (1, 'n1')")
        execute(config, "us", db, "INSERT INTO users VALUES (101, 'x')")
        wait_until(lambda: set(rows(config, "us", db, "users")) == set(rows(config, "eu", db, "users")) == {1, 2, 101},
                   timeout=90, what="the first rows in both regions")

        execute(config, "eu", db, "ALTER TABLE users ADD COLUMN phone VARCHAR(20) NULL")
        execute(config, "eu", db, "INSERT INTO users VALUES (3, 'c', '555')", "UPDATE users SET name = 'a2' WHERE id = 1",
                "INSERT INTO notes VALUES (2, 'n2')")
        execute(config, "us", db, "INSERT INTO users VALUES (102, 'y')", "UPDATE users SET name = 'x2' WHERE id = 101")
        # us cannot hold eu's users events: that table waits, notes flows, and us's writes reach eu
        # (where phone takes its DEFAULT).
        wait_until(lambda: set(rows(config, "us", db, "notes")) == {1, 2}, timeout=60, what="notes flowing in us")
        wait_until(lambda: region_status(config, "us", timeout_s=5).schema_waits != [], timeout=60,
                   what="us waiting for schema")
        wait_until(lambda: rows(config, "eu", db, "users").get(102) == ("y", None), timeout=60, what="us to eu")
        [line] = region_status(config, "us", timeout_s=5).schema_waits
        assert line.startswith(f"waiting for schema: {db}.users") and "unknown column phone" in line, line
        assert (waiting_gauge(port, f"{db}.users") or 0) >= 1
        assert set(rows(config, "us", db, "users")) == {1, 2, 101, 102} and rows(config, "us", db, "users")[1] == ("a",)
        assert read_dead_letters(config, "us") == []

        execute(config, "us", db, "ALTER TABLE users ADD COLUMN phone VARCHAR(20) NULL")
        wait_until(lambda: rows(config, "us", db, "users") == rows(config, "eu", db, "users"), timeout=60,
                   what="us catching up after its own ALTER")
        assert rows(config, "us", db, "users") == {1: ("a2", None), 2: ("b", None), 3: ("c", "555"), 101: ("x2", None),
                                                    102: ("y", None)}
        wait_until(lambda: region_status(config, "us", timeout_s=5).schema_waits == [], timeout=30, what="wait cleared")
        assert waiting_gauge(port, f"{db}.users") == 0
        assert read_dead_letters(config, "us") == []
        with connect(config, "us") as conn:    # the sink regenerated us's stale triggers on resuming
            assert trigger_states(config, "us", conn)[(db, "users")] == "current"
        init_region(config, "eu")
        assert mesh_drift(config) == ([], [])
        # Each cache sink saw its region's ALTER on `_schema` and rewrote the rows it had cached
        # without `phone`: caches and databases agree.
        assert_verified(config, check_cache=True, timeout=30)
        for proc in procs:
            assert proc.terminate() == 0, proc.output()
    finally:
        for proc in procs:
            if proc.alive():
                proc.kill9()
        for region in config.regions:
            with connect(config, region) as conn, conn.cursor() as cur:
                cur.execute(f"DROP DATABASE {db}")


def change_records(config, db: str, table: str, rows: list[dict], types: dict[str, str]) -> list[SourceRecord]:
    """eu's inserts of `rows`, one transaction each, on partition 0 of eu's topic of the table."""
    topic = TopicNames.of(config).changes("eu", db, table)
    out = []
    for offset, row in enumerate(rows):
        txn = messages.TxnInfo("eu", "eu", 1, f"1-1-{offset + 1}", f"t{offset}", 1_700_000_000_000_000 + offset)
        message = messages.change(txn, "bin.000001", 4 + offset, db, table, "insert", {"id": row["id"]}, None,
                                  row, types)
        message["txn_last"] = True
        out.append(SourceRecord.from_message(topic, 0, offset, messages.message_key(message, None, b""),
                                             encode(message)))
    return out


def test_a_value_too_long_for_the_target_waits_until_the_column_is_widened(sandbox_config, unique: str,
                                                                            tmp_path: Path) -> None:
    """Error 1406 at the apply (eu widened VARCHAR(4) to VARCHAR(16), us has not): the rows before it
    are applied, its partition is held from it on, nothing is dead-lettered; once us widens the
    column the recheck lets it go and the held rows apply."""
    db = f"widen_{unique}"
    config = config_for_test(sandbox_config, prefix=f"t{unique}", include=[f"{db}.*"], tmp=tmp_path,
                             regions=["eu", "us"])
    create_database(config, ["us"], db, "CREATE TABLE {db}.t (id INT PRIMARY KEY, v VARCHAR(4))")
    kafka = config.kafka_for("us")
    dlq_topic = TopicNames.of(config).dlq("us")
    TopicCreator(kafka).ensure(dlq_topic)
    with connect(config, "us") as conn:
        metadata_tables.ensure(conn, config.meta_db)
    sink = DatabaseSink(config, "us", DeadLetterPublisher(client_settings(kafka), dlq_topic, region="us", sink="db"),
                        SinkMetrics("us", CollectorRegistry()), topic_ids=CreatingTopicIds(kafka))
    records = change_records(config, db, "t", [{"id": 1, "v": "ok"}, {"id": 2, "v": "much longer"},
                                               {"id": 3, "v": "x"}], {"id": "int", "v": "varchar(16)"})
    try:
        sink.write_batch(records)
        assert rows(config, "us", db, "t") == {1: ("ok",)}
        assert sink.holds is not None and [h.offset for h in sink.holds.holds.values()] == [1]
        assert sink.holds.take_new() == {records[1].tp: 1}
        assert sink.holds.recheck(force=True) == []                 # the target did not change
        with connect(config, "us") as conn, conn.cursor() as cur:
            [wait] = metadata_tables.read_schema_waits(cur, config.meta_db)
        assert (wait.table, wait.offset, wait.source_region) == (f"{db}.t", 1, "eu")
        assert wait.reason.startswith("1406 data too long")
        execute(config, "us", db, "ALTER TABLE t MODIFY v VARCHAR(16)")
        assert sink.holds.recheck(force=True) == [records[1].tp]
        sink.write_batch(records[1:])                               # the source delivers them again
        assert rows(config, "us", db, "t") == {1: ("ok",), 2: ("much longer",), 3: ("x",)}
        with connect(config, "us") as conn, conn.cursor() as cur:
            assert metadata_tables.read_schema_waits(cur, config.meta_db) == []
        assert read_dead_letters(config, "us") == []
    finally:
        sink.close()
        with connect(config, "us") as conn, conn.cursor() as cur:
            cur.execute(f"DROP DATABASE {db}")


def test_cache_rebuild_force_rewrites_rows_cached_before_a_column_was_added(sandbox_config, unique: str,
                                                                           tmp_path: Path) -> None:
    from common.redis_connect import redis_client
    from consumers.cache.rebuild import rebuild_cache
    from schemas.cache_layout import decode_row

    db = f"force_{unique}"
    config = config_for_test(sandbox_config, prefix=f"t{unique}", include=[f"{db}.*"], tmp=tmp_path, regions=["eu"])
    create_database(config, ["eu"], db, "CREATE TABLE {db}.t (id INT PRIMARY KEY, v VARCHAR(8))")
    client = redis_client(config.region("eu").redis)
    key = f"{config.prefix}:{db}.t:[1]"
    try:
        init_region(config, "eu")
        execute(config, "eu", db, "INSERT INTO t VALUES (1, 'a')")   # clocked: the trigger writes {eu: 1}
        rebuild_cache(config, "eu")
        assert decode_row(client.hgetall(key)) == {"id": 1, "v": "a"}
        execute(config, "eu", db, "ALTER TABLE t ADD COLUMN phone VARCHAR(8) NOT NULL DEFAULT '-'")
        rebuild_cache(config, "eu")                                   # same clock: kept as it was
        assert decode_row(client.hgetall(key)) == {"id": 1, "v": "a"}
        forced = cdcsync("cache", "rebuild", "--config", str(write_config(config, tmp_path / "c.toml")),
                         "--region", "eu", "--force")
        assert forced.returncode == 0, forced.stdout + forced.stderr
        assert decode_row(client.hgetall(key)) == {"id": 1, "v": "a", "phone": "-"}
    finally:
        for k in client.scan_iter(f"{config.prefix}:*"):
            client.delete(k)
        client.close()
        with connect(config, "eu") as conn, conn.cursor() as cur:
            cur.execute(f"DROP DATABASE {db}")
            cur.execute(f"DELETE FROM {config.meta_db}.row_clocks WHERE db = %s", (db,))


def test_ddl_in_a_region_that_does_not_own_the_table_is_reported(sandbox_config, unique: str, tmp_path: Path) -> None:
    db = f"owner_{unique}"
    config = config_for_test(sandbox_config, prefix=f"t{unique}", include=[f"{db}.*"], tmp=tmp_path,
                             regions=["eu", "us"], top={"tables": {f"{db}.t": {"schema_owner": "eu"}}})
    path = write_config(config, tmp_path / "cdcsync.toml")
    create_database(config, ["us"], db, "CREATE TABLE {db}.t (id INT PRIMARY KEY, v INT)",
                    "CREATE TABLE {db}.free (id INT PRIMARY KEY)")
    port = free_port()
    producer = ProducerProcess(path, "us", tmp_path / "producer.log", "--metrics-port", str(port)).start()
    try:
        wait_until((tmp_path / "checkpoints" / "us" / "us.json").exists, timeout=90, what="checkpoint")
        execute(config, "us", db, "ALTER TABLE free ADD COLUMN w INT", "ALTER TABLE t ADD COLUMN w INT")
        wait_until(lambda: "is not replicated: its schema_owner is eu" in producer.output(), timeout=30,
                   what="the report")
        out = " ".join(producer.output().split())
        assert f"DDL of {db}.t at" in out and f"DDL of {db}.free" not in out
        metrics = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10).read().decode()
        assert f'cdcsync_producer_ddl_not_replicated_total{{region="us",table="{db}.t"}} 1.0' in metrics
        assert producer.terminate() == 0, producer.output()
    finally:
        if producer.alive():
            producer.kill9()
        with connect(config, "us") as conn, conn.cursor() as cur:
            cur.execute(f"DROP DATABASE {db}")


def test_the_schema_owners_ddl_is_applied_everywhere_in_order_under_concurrent_writes(
        sandbox_config, unique: str, tmp_path: Path) -> None:
    """eu owns `users`: its ADD COLUMN, MODIFY (widen) and ADD INDEX, run while every region writes,
    are applied by us's and ap's sinks in order with eu's row changes (eu's longer names and phones
    after each DDL apply only once it is there), the regions and caches agree afterwards, nothing
    is dead-lettered; a destructive DROP COLUMN is refused and the table waits, reported."""
    db = f"own_{unique}"
    table = f"{db}.users"
    config = config_for_test(sandbox_config, prefix=f"t{unique}", include=[f"{db}.*"], tmp=tmp_path,
                             sink={"schema_recheck_ms": 300, "batch_max_ms": 50}, snapshot="never",
                             top={"tables": {table: {"schema_owner": "eu"}}})
    path = write_config(config, tmp_path / "cdcsync.toml")
    regions = list(config.regions)
    create_database(config, regions, db, "CREATE TABLE {db}.users (id INT PRIMARY KEY, name VARCHAR(20), n INT)")
    stop = threading.Event()
    errors: list[BaseException] = []

    def write(region: str, base: int) -> None:
        try:
            with connect(config, region, db, autocommit=True) as conn, conn.cursor() as cur:
                i = 0
                while not stop.is_set():
                    i += 1
                    cur.execute("INSERT INTO users (id, name, n) VALUES (%s, %s, %s)", (base + i, f"{region}{i}", i))
                    cur.execute("UPDATE users SET name = %s, n = n + 1 WHERE id = %s", (f"{region}u{i}", 1 + i % 5))
                    time.sleep(0.01)
        except BaseException as err:  # noqa: BLE001 - reported by the test
            errors.append(err)

    try:
        for region in regions:
            init_region(config, region)
        execute(config, "eu", db, "INSERT INTO users VALUES (1, 'a', 0), (2, 'b', 0), (3, 'c', 0), (4, 'd', 0), "
                                  "(5, 'e', 0)")
        with pipeline(config, path, tmp_path):
            threads = [threading.Thread(target=write, args=(r, 1000 * (k + 1))) for k, r in enumerate(regions)]
            for thread in threads:
                thread.start()
            time.sleep(1.0)
            execute(config, "eu", db, "ALTER TABLE users ADD COLUMN phone VARCHAR(20) NULL")
            execute(config, "eu", db, "INSERT INTO users VALUES (900, 'with a phone', 1, '555')")
            time.sleep(0.5)
            execute(config, "eu", db, "ALTER TABLE users MODIFY name VARCHAR(40)")
            execute(config, "eu", db, "INSERT INTO users VALUES (901, 'a name longer than twenty', 1, NULL)")
            time.sleep(0.5)
            execute(config, "eu", db, "ALTER TABLE users ADD INDEX by_n (n)")
            time.sleep(1.0)
            stop.set()
            for thread in threads:
                thread.join()
            assert errors == []
            init_region(config, "eu")     # the owner's own clock triggers (the sinks did the others')
            wait_quiescent(config, timeout=120)
            assert mesh_drift(config) == ([], [])
            for region in ("us", "ap"):
                with connect(config, region) as conn, conn.cursor() as cur:
                    cur.execute("SELECT kind, statement FROM cdcsync.schema_ddl WHERE db = %s ORDER BY applied_at_us",
                                (db,))
                    assert [k for k, _ in cur.fetchall()] == ["additive"] * 3
                    cur.execute("SELECT 1 FROM information_schema.STATISTICS WHERE TABLE_SCHEMA = %s "
                                "AND INDEX_NAME = 'by_n'", (db,))
                    assert cur.fetchall(), f"{region} lacks the index"
                assert rows(config, region, db, "users")[901] == ("a name longer than twenty", 1, None)
                assert read_dead_letters(config, region) == []
            assert_verified(config, check_cache=True, timeout=60)

            execute(config, "eu", db, "ALTER TABLE users DROP COLUMN phone")
            wait_until(lambda: any("refused" in line for line in region_status(config, "us", timeout_s=5).schema_waits),
                       timeout=60, what="the destructive DDL refused in us")
            assert "DROP COLUMN phone" in region_status(config, "us", timeout_s=5).schema_waits[0]
            assert "phone" in {c for (c,) in _columns(config, "us", db)}
    finally:
        stop.set()
        for region in regions:
            with connect(config, region) as conn, conn.cursor() as cur:
                cur.execute(f"DROP DATABASE {db}")
                cur.execute(f"DELETE FROM {config.meta_db}.row_clocks WHERE db = %s", (db,))
                cur.execute(f"DELETE FROM {config.meta_db}.schema_ddl WHERE db = %s", (db,))
                cur.execute(f"DELETE FROM {config.meta_db}.schema_waits WHERE db = %s", (db,))


def _columns(config, region: str, db: str) -> list[tuple[str]]:
    with connect(config, region) as conn, conn.cursor() as cur:
        cur.execute("SELECT COLUMN_NAME FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = %s", (db,))
        return list(cur.fetchall())
