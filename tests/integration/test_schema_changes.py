"""Schema changes in a multi-active mesh (docs/schema-changes.md): drift is detected by
`cdcsync schema diff`, `config check` and `status`; a database sink whose target lacks a column
waits for it (that table's partitions held, nothing dead-lettered, the other tables flowing) and
resumes by itself once the target has it; a schema owner's ALTERs are applied everywhere in order
with the row changes; caches follow; DDL outside the owner is reported."""

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
from tests.support.producer import ProducerProcess, SinkProcess, wait_until, write_config

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


def test_schema_changes_under_concurrent_writes_in_every_region(sandbox_config, unique: str, tmp_path: Path) -> None:
    """One pipeline of three regions, every region writing `users` all along:

    - `notes` (no owner) altered in eu only: us and ap hold it (nothing dead-lettered, status and the
      gauge say "waiting for schema") while `users` keeps flowing, and resume by themselves once
      they have the column, regenerating their clock triggers;
    - `users` (owned by eu): eu's ADD COLUMN, MODIFY (widen) and ADD INDEX are applied by us's and
      ap's sinks in order with eu's row changes (eu's phones and longer names after each DDL apply
      only once it is there);
    - afterwards the schemas, the rows and the caches agree (each cache sink rewrote the rows it
      had cached before its region's ALTERs); then a destructive DROP COLUMN by the owner is refused
      and waits, reported.
    """
    db = f"sc_{unique}"
    users = f"{db}.users"
    config = config_for_test(sandbox_config, prefix=f"t{unique}", include=[f"{db}.*"], tmp=tmp_path,
                             sink={"schema_recheck_ms": 300, "batch_max_ms": 50}, snapshot="never",
                             top={"tables": {users: {"schema_owner": "eu"}}})
    path = write_config(config, tmp_path / "cdcsync.toml")
    regions = list(config.regions)
    create_database(config, regions, db, "CREATE TABLE {db}.users (id INT PRIMARY KEY, name VARCHAR(20), n INT)",
                    "CREATE TABLE {db}.notes (id INT PRIMARY KEY, body VARCHAR(20))")
    stop = threading.Event()
    errors: list[BaseException] = []
    port = free_port()

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

    procs = []
    try:
        for region in regions:
            init_region(config, region)
        for region in regions:
            procs.append(ProducerProcess(path, region, tmp_path / f"producer-{region}.log").start())
            procs.append(SinkProcess(path, region, "db", tmp_path / f"db-{region}.log",
                                     *(["--metrics-port", str(port)] if region == "us" else [])).start())
            procs.append(SinkProcess(path, region, "cache", tmp_path / f"cache-{region}.log").start())
        for region in regions:   # streaming from where each producer starts: write only once they do
            wait_until((tmp_path / "checkpoints" / region / f"{region}.json").exists, timeout=90,
                       what=f"{region} checkpoint")
        execute(config, "eu", db, "INSERT INTO users VALUES (1, 'a', 0), (2, 'b', 0), (3, 'c', 0), (4, 'd', 0), "
                                  "(5, 'e', 0)", "INSERT INTO notes VALUES (1, 'n1')")
        wait_until(lambda: all(rows(config, r, db, "notes") == {1: ("n1",)} for r in regions), timeout=60,
                   what="the first note everywhere")
        threads = [threading.Thread(target=write, args=(r, 1000 * (k + 1))) for k, r in enumerate(regions)]
        for thread in threads:
            thread.start()

        # -- notes altered in eu only: us and ap wait for it, users flows -------------------------------------
        execute(config, "eu", db, "ALTER TABLE notes ADD COLUMN tag VARCHAR(8) NULL",
                "INSERT INTO notes VALUES (2, 'n2', 't')", "UPDATE notes SET body = 'n1b' WHERE id = 1")
        # -- users altered by its owner, while every region writes it ---------------------------------------
        execute(config, "eu", db, "ALTER TABLE users ADD COLUMN phone VARCHAR(20) NULL",
                "INSERT INTO users VALUES (900, 'with a phone', 1, '555')")
        execute(config, "eu", db, "ALTER TABLE users MODIFY name VARCHAR(40)",
                "INSERT INTO users VALUES (901, 'a name longer than twenty', 1, NULL)")
        execute(config, "eu", db, "ALTER TABLE users ADD INDEX by_n (n)")
        for region in ("us", "ap"):
            wait_until(lambda region=region: 901 in rows(config, region, db, "users"), timeout=90,
                       what=f"users flowing in {region} past the owner's DDL")
            lines = region_status(config, region, timeout_s=5).schema_waits   # users may show a DDL marker wait
            [line] = [ln for ln in lines if ln.startswith(f"waiting for schema: {db}.notes")]
            assert "unknown column tag" in line, line
            assert set(rows(config, region, db, "notes")) == {1} and rows(config, region, db, "notes")[1] == ("n1",)
        assert (waiting_gauge(port, f"{db}.notes") or 0) >= 1
        stop.set()
        for thread in threads:
            thread.join()
        assert errors == []

        # -- us and ap catch up on notes: they resume by themselves -----------------------------------------
        for region in ("us", "ap"):
            execute(config, region, db, "ALTER TABLE notes ADD COLUMN tag VARCHAR(8) NULL")
        for region in ("us", "ap"):
            wait_until(lambda region=region: rows(config, region, db, "notes") == {1: ("n1b", None), 2: ("n2", "t")},
                       timeout=60, what=f"notes resumed in {region}")
        init_region(config, "eu")     # eu's own clock triggers (us's and ap's were regenerated by their sinks)
        assert_verified(config, check_cache=True, timeout=60)   # rows and caches, once every sink caught up
        assert waiting_gauge(port, f"{db}.notes") == 0
        assert mesh_drift(config) == ([], [])
        for region in ("us", "ap"):
            with connect(config, region) as conn, conn.cursor() as cur:
                cur.execute("SELECT kind FROM cdcsync.schema_ddl WHERE db = %s ORDER BY applied_at_us", (db,))
                assert [k for (k,) in cur.fetchall()] == ["additive"] * 3
                cur.execute("SELECT 1 FROM information_schema.STATISTICS WHERE TABLE_SCHEMA = %s "
                            "AND INDEX_NAME = 'by_n'", (db,))
                assert cur.fetchall(), f"{region} lacks the index"
            assert rows(config, region, db, "users")[901] == ("a name longer than twenty", 1, None)
            assert rows(config, region, db, "users")[900] == ("with a phone", 1, "555")
        for region in regions:
            assert read_dead_letters(config, region) == []
        assert region_status(config, "us", timeout_s=5).schema_waits == []

        # -- a destructive DDL by the owner is refused, and the table waits, reported -------------------------
        execute(config, "eu", db, "ALTER TABLE users DROP COLUMN phone")
        wait_until(lambda: any("refused" in line for line in region_status(config, "us", timeout_s=5).schema_waits),
                   timeout=60, what="the destructive DDL refused in us")
        assert "DROP COLUMN phone" in region_status(config, "us", timeout_s=5).schema_waits[0]
        assert "phone" in {c for (c,) in _columns(config, "us", db)}
        for proc in procs:
            assert proc.terminate() == 0, proc.output()
    finally:
        stop.set()
        for proc in procs:
            if proc.alive():
                proc.kill9()
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
